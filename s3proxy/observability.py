"""Telemetry: request ids, logging (JSON lines or human text, with the request id and
trace ids on every line), OpenTelemetry metrics exposed in Prometheus format, and
tracing exported over OTLP when enabled.

Metric labels stay low-cardinality: operation, method, status class, backend; never
keys, and bucket names only on spans when configured.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import sys
from datetime import UTC, datetime

from opentelemetry import metrics, trace

# Instruments on the global meter: no-ops until setup_telemetry() installs a provider.
_meter = metrics.get_meter("s3proxy")
auth_failures = _meter.create_counter(
    "s3proxy.auth.failures", unit="{request}", description="Requests refused by authentication"
)
request_duration = _meter.create_histogram(
    "http.server.request.duration", unit="s", description="Duration of HTTP server requests"
)
active_requests = _meter.create_up_down_counter(
    "http.server.active_requests", unit="{request}", description="Requests in flight"
)
requests_total = _meter.create_counter(
    "s3proxy.requests", unit="{request}", description="S3 requests by operation and status class"
)
bytes_received = _meter.create_counter(
    "s3proxy.received", unit="By", description="Request body bytes read from clients"
)
bytes_sent = _meter.create_counter(
    "s3proxy.sent", unit="By", description="Response body bytes sent to clients"
)
backend_duration = _meter.create_histogram(
    "s3proxy.backend.duration", unit="s", description="Duration of storage backend calls"
)
backend_errors = _meter.create_counter(
    "s3proxy.backend.errors", unit="{call}", description="Storage backend calls that failed"
)
multipart_uploads = _meter.create_counter(
    "s3proxy.multipart.uploads",
    unit="{upload}",
    description="Multipart upload events (created, completed, aborted); in progress = "
    "created - completed - aborted",
)
rejected_requests = _meter.create_counter(
    "s3proxy.requests.rejected",
    unit="{request}",
    description="Requests refused by a limit (rate, concurrency, size, timeout)",
)

# Semantic-conventions buckets for http.server.request.duration, in seconds.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_telemetry_ready = False


def setup_telemetry(tracing: bool) -> None:
    """Install the meter provider (Prometheus reader) and, if asked, OTLP tracing.

    Once per process; stores are per worker, and so is telemetry. Tracing is off by
    default: the global tracer then stays a no-op and costs next to nothing.
    """
    global _telemetry_ready
    if _telemetry_ready:
        return
    _telemetry_ready = True
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": "s3proxy"})
    views = [
        View(
            instrument_name=name,
            aggregation=ExplicitBucketHistogramAggregation(_DURATION_BUCKETS),
        )
        for name in ("http.server.request.duration", "s3proxy.backend.duration")
    ]
    metrics.set_meter_provider(
        MeterProvider(metric_readers=[PrometheusMetricReader()], resource=resource, views=views)
    )
    if tracing:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)
        # Endpoint, headers and protocol come from the standard OTEL_EXPORTER_OTLP_* vars.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)


def prometheus_text() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
operation_var: contextvars.ContextVar[str] = contextvars.ContextVar("operation", default="")


def new_request_id() -> str:
    """16 upper-case hex characters, the shape of an S3 request id."""
    return secrets.token_hex(8).upper()


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.operation = operation_var.get()
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid else ""
        record.span_id = f"{ctx.span_id:016x}" if ctx.is_valid else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "trace_id", "span_id", "operation"):
            value = getattr(record, name, "")
            if value:
                entry[name] = value
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure the root logger once per process (idempotent)."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_s3proxy", False):
            root.removeHandler(old)
    handler._s3proxy = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Keep third-party chatter at warning unless we debug.
    if level != "debug":
        for noisy in ("granian.access", "httpx", "botocore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
