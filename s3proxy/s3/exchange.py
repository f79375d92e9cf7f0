"""One request's record: what the audit line, the metrics and the span say about it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from opentelemetry import trace

from s3proxy.observability import (
    bytes_received,
    bytes_sent,
    log_fields,
    request_duration,
    requests_total,
)

audit_log = logging.getLogger("s3proxy.audit")
_STATUS_CLASS = {n: f"{n}xx" for n in range(1, 6)}


@dataclass(slots=True)
class Exchange:
    """What the audit log records about one request."""

    request_id: str
    method: str
    resource: str
    client: str
    started: float = field(default_factory=time.perf_counter)
    operation: str = ""
    bucket: str | None = None
    key: str | None = None
    principal: str = "-"
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    #: Whether the request body was read to its end (or there was none).
    body_done: bool = False
    #: The S3 error code and message answered, if any.
    error: str = ""
    error_message: str = ""


def record(exchange: Exchange, span: trace.Span, span_bucket: bool) -> None:
    """The request's metrics, and its span's name and attributes."""
    op = exchange.operation or "Unknown"
    route = "/" if exchange.bucket is None else "/{bucket}"
    if exchange.key is not None:
        route = "/{bucket}/{key}"
    status = exchange.status
    request_duration.record(
        time.perf_counter() - exchange.started, exchange.method, str(status), route, op
    )
    requests_total.add(1, op, _STATUS_CLASS.get(status // 100, "other"))
    if exchange.bytes_in:
        bytes_received.add(exchange.bytes_in, op)
    if exchange.bytes_out:
        bytes_sent.add(exchange.bytes_out, op)
    if span.is_recording():
        span.update_name(f"{exchange.method} {route}")
        span.set_attribute("http.request.method", exchange.method)
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("s3.operation", op)
        span.set_attribute("s3.request_id", exchange.request_id)
        if exchange.bucket and span_bucket:
            span.set_attribute("s3.bucket", exchange.bucket)
        if status >= 500:
            span.set_status(trace.StatusCode.ERROR)


def audit(exchange: Exchange) -> None:
    """One line per request on its own logger, so it can be routed separately."""
    fields: dict[str, object] = {
        "principal": exchange.principal,
        "bucket": exchange.bucket,
        "key": exchange.key,
        "status": exchange.status,
        "bytes_in": exchange.bytes_in,
        "bytes_out": exchange.bytes_out,
        "duration_ms": round((time.perf_counter() - exchange.started) * 1000, 3),
        "client": exchange.client,
    }
    if exchange.error:
        fields["error"] = exchange.error
        fields["error_message"] = exchange.error_message
    message = f"{exchange.operation or exchange.method} {exchange.resource} {exchange.status}"
    log_fields(audit_log, message, fields)
