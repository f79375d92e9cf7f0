"""Spans: a server span per request with the route template, backend child spans, and
W3C traceparent honoured; log lines carry the trace id. Runs the app in-process."""

from __future__ import annotations

import logging

import pytest
from litestar.testing import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from s3proxy.app import create_app
from s3proxy.config import Config, TelemetryConfig

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    return memory


def test_spans_and_log_correlation(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = Config(backend="memory", telemetry=TelemetryConfig(span_bucket_attribute=True))
    with TestClient(create_app(cfg)) as client:
        assert client.put("/traced").status_code == 200
        exporter.clear()
        with caplog.at_level(logging.INFO, logger="s3proxy"):
            resp = client.get(
                "/traced/secret/key.txt",
                headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"},
            )
        assert resp.status_code == 404
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind == trace.SpanKind.SERVER]
    assert len(server) == 1
    span = server[0]
    assert span.name == "GET /{bucket}/{key}"
    assert span.attributes["http.route"] == "/{bucket}/{key}"
    assert span.attributes["s3.operation"] == "GetObject"
    assert span.attributes["s3.bucket"] == "traced"
    assert span.attributes["http.response.status_code"] == 404
    assert "secret/key.txt" not in str(dict(span.attributes))
    # Continues the caller's trace.
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT
    children = [s for s in spans if s.kind == trace.SpanKind.CLIENT]
    assert children and all(c.parent.span_id == span.context.span_id for c in children)
    assert {c.name for c in children} >= {"backend.get"}
    # The request's audit line, which names the NoSuchKey error, is tied to the trace.
    audit = [getattr(r, "fields", {}) for r in caplog.records if r.name == "s3proxy.audit"]
    assert [f["error"] for f in audit if "error" in f] == ["NoSuchKey"]
    records = [r for r in caplog.records if r.name == "s3proxy.audit" and "error" in r.fields]
    assert getattr(records[0], "trace_id", "") == TRACE_ID
