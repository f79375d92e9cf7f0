"""Telemetry: request ids, logging (JSON lines or human text, with the request id and
trace ids on every line), OpenTelemetry metrics exposed in Prometheus format, and
tracing exported over OTLP when enabled.

Metric labels stay low-cardinality: operation, method, status class, backend; never
keys, and bucket names only on spans when configured.
"""

from __future__ import annotations

import bisect
import contextvars
import itertools
import logging
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
from opentelemetry import metrics, trace
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

# Instruments on the global meter (no-ops until setup_telemetry() installs a provider)
# for events that are rare next to requests; plugins add theirs the same way.
_meter = metrics.get_meter("s3proxy")
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


class Counter:
    """A sum per combination of label values."""

    def __init__(self, name: str, description: str, labels: tuple[str, ...]) -> None:
        self.name, self.description, self.labels = name, description, labels
        self.values: dict[tuple[str, ...], float] = {}

    def add(self, amount: float, *label_values: str) -> None:
        values = self.values
        values[label_values] = values.get(label_values, 0) + amount

    def families(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.description, labels=self.labels)
        for label_values, total in list(self.values.items()):
            family.add_metric(label_values, total)
        yield family


class Histogram:
    """Bucket counts and a sum per combination of label values (explicit buckets)."""

    def __init__(
        self, name: str, description: str, labels: tuple[str, ...], bounds: tuple[float, ...]
    ) -> None:
        self.name, self.description, self.labels = name, description, labels
        self.bounds = bounds
        # Per label values: one count per bucket (the last is +Inf), then the sum.
        self.values: dict[tuple[str, ...], list[float]] = {}

    def record(self, value: float, *label_values: str) -> None:
        entry = self.values.get(label_values)
        if entry is None:
            entry = self.values[label_values] = [0] * (len(self.bounds) + 2)
        entry[bisect.bisect_left(self.bounds, value)] += 1
        entry[-1] += value

    def families(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.description, labels=self.labels)
        edges = [f"{b:g}" for b in self.bounds] + ["+Inf"]
        for label_values, entry in list(self.values.items()):
            cumulative = list(itertools.accumulate(entry[:-1]))
            family.add_metric(
                label_values, list(zip(edges, cumulative, strict=True)), sum_value=entry[-1]
            )
        yield family


class Gauge:
    """A value read at scrape time from whoever keeps it (no labels)."""

    def __init__(self, name: str, description: str) -> None:
        self.name, self.description = name, description
        self.read: Callable[[], float] = lambda: 0.0

    def families(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.description, value=self.read())


class _Collector:
    """Exposes the per-request metrics to the Prometheus registry at scrape time."""

    def __init__(self, instruments: tuple[Counter | Histogram | Gauge, ...]) -> None:
        self.instruments = instruments

    def collect(self) -> Iterator[Metric]:
        for instrument in self.instruments:
            yield from instrument.families()


# Semantic-conventions buckets for http.server.request.duration, in seconds.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_telemetry_ready = False

# Per-request measurements: the OTel SDK spends ~10-15 us on each (a Measurement object,
# attribute hashing, view matching), about a tenth of a small request's whole cost, so
# these aggregate in plain dicts and are exposed by one collector in the same registry.
request_duration = Histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP server requests",
    ("http_request_method", "http_response_status_code", "http_route", "s3_operation"),
    _DURATION_BUCKETS,
)
requests_total = Counter(
    "s3proxy_requests", "S3 requests by operation and status class", ("operation", "status_class")
)
bytes_received = Counter(
    "s3proxy_received_bytes", "Request body bytes read from clients", ("operation",)
)
bytes_sent = Counter("s3proxy_sent_bytes", "Response body bytes sent to clients", ("operation",))
auth_failures = Counter("s3proxy_auth_failures", "Requests refused by authentication", ())
backend_duration = Histogram(
    "s3proxy_backend_duration_seconds",
    "Duration of storage backend calls",
    ("backend", "operation"),
    _DURATION_BUCKETS,
)
active_requests = Gauge("http_server_active_requests", "Requests in flight")
_REQUEST_METRICS = (
    request_duration,
    requests_total,
    bytes_received,
    bytes_sent,
    auth_failures,
    backend_duration,
    active_requests,
)


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
    from opentelemetry.sdk.resources import Resource
    from prometheus_client import REGISTRY

    resource = Resource.create({"service.name": "s3proxy"})
    metrics.set_meter_provider(
        MeterProvider(metric_readers=[PrometheusMetricReader()], resource=resource)
    )
    REGISTRY.register(_Collector(_REQUEST_METRICS))
    if tracing:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)
        # Endpoint, headers and protocol come from the standard OTEL_EXPORTER_OTLP_* vars.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)


def tracing_active() -> bool:
    """Was a tracer provider installed when the app was built (``refresh_tracing``)?
    Without one every span is a no-op, and callers skip extracting trace context and
    entering span context managers."""
    return _tracing


def refresh_tracing() -> None:
    """Look up the tracer provider once (the lookup reads the environment each time)."""
    global _tracing
    _tracing = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


_tracing = False


def prometheus_text() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
operation_var: contextvars.ContextVar[str] = contextvars.ContextVar("operation", default="")


def new_request_id() -> str:
    """16 upper-case hex characters, the shape of an S3 request id."""
    return secrets.token_hex(8).upper()


def _context() -> tuple[str, str, str, str]:
    """(request id, trace id, span id, operation) of the code running now."""
    trace_id = span_id = ""
    if tracing_active():
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            trace_id, span_id = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
    return request_id_var.get(), trace_id, span_id, operation_var.get()


_CONTEXT_FIELDS = ("request_id", "trace_id", "span_id", "operation")


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id, record.trace_id, record.span_id, record.operation = _context()
        return True


def _enc_hook(value: object) -> str:
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (msgspec: a request logs at least one line, so the
    encoder's cost counts)."""

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._second = -1
        self._prefix = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # strftime once a second
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((created - second) * 1000):03d}+00:00"

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        context: tuple[str, ...],
        fields: dict[str, object] | None,
    ) -> str:
        entry: dict[str, object] = {
            "timestamp": self._timestamp(created),
            "level": level,
            "logger": logger,
            "message": message,
        }
        for name, value in zip(_CONTEXT_FIELDS, context, strict=True):
            if value:
                entry[name] = value
        if fields:
            entry.update(fields)
        return self._encoder.encode(entry).decode()

    def format(self, record: logging.LogRecord) -> str:
        context = tuple(getattr(record, name, "") for name in _CONTEXT_FIELDS)
        extra = getattr(record, "fields", None)
        fields = dict(extra) if isinstance(extra, dict) else {}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        level, message = record.levelname.lower(), record.getMessage()
        return self.line(record.created, level, record.name, message, context, fields)


def log_fields(logger: logging.Logger, message: str, fields: dict[str, object]) -> None:
    """``logger.info(message)`` with extra fields (JSON keys of the line).

    When the JSON handler set up here is the only handler on the logger's way to the
    root (the normal case), the line is encoded and written directly: a LogRecord and
    the filter and handler calls cost ~10 us, about a tenth of a refused request. Any
    other handler (a test's log capture, a custom logging setup) gets a normal record.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _json_handler
    node: logging.Logger | None = logger
    while handler is not None and node is not None:
        if node.parent is None:
            if node.handlers != [handler] or node.filters:
                handler = None
        elif node.handlers or node.filters or not node.propagate:
            handler = None
        node = node.parent
    if handler is None:
        logger.info("%s", message, extra={"fields": fields})
        return
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    text = formatter.line(time.time(), "info", logger.name, message, _context(), fields)
    with handler.lock:  # type: ignore[union-attr]
        try:
            handler.stream.write(text + "\n")
            handler.flush()
        except Exception:  # as logging does: a broken log stream must not fail requests
            handler.handleError(logging.makeLogRecord({"msg": message}))


_json_handler: logging.StreamHandler[Any] | None = None


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure the root logger once per process (idempotent)."""
    # No caller, thread or process lookups per record: no format uses them (the logging
    # HOWTO's "Optimization" section), and a request logs at least once.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
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
    global _json_handler
    _json_handler = handler if fmt == "json" else None
    root.setLevel(level.upper())
    # Keep third-party chatter at warning unless we debug.
    if level != "debug":
        for noisy in ("granian.access", "httpx", "botocore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
