"""JSON log lines (direct and through logging) and the in-process request metrics."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from s3proxy import observability
from s3proxy.observability import (
    Counter,
    Histogram,
    log_fields,
    operation_var,
    request_id_var,
    setup_logging,
)


@pytest.fixture
def json_stream() -> Iterator[io.StringIO]:
    setup_logging("info", "json")
    handler = observability._json_handler
    assert handler is not None
    stream = io.StringIO()
    old = handler.setStream(stream)
    yield stream
    handler.setStream(old)


def _entries(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_direct_line_matches_the_logging_one(json_stream: io.StringIO) -> None:
    request_id_var.set("ABCDEF0123456789")
    operation_var.set("GetObject")
    audit = logging.getLogger("s3proxy.audit")
    fields: dict[str, object] = {"status": 404, "key": "a%2Fb ü", "bucket": None}
    log_fields(audit, "GetObject /b/a%2Fb 404", fields)
    # Another handler on the way (here on the audit logger): a normal record.
    extra = logging.NullHandler()
    audit.addHandler(extra)
    try:
        log_fields(audit, "GetObject /b/a%2Fb 404", fields)
    finally:
        audit.removeHandler(extra)
    direct, logged = _entries(json_stream)
    assert direct.pop("timestamp") and logged.pop("timestamp")
    assert direct == logged
    assert direct == {
        "level": "info",
        "logger": "s3proxy.audit",
        "message": "GetObject /b/a%2Fb 404",
        "request_id": "ABCDEF0123456789",
        "operation": "GetObject",
        "status": 404,
        "key": "a%2Fb ü",
        "bucket": None,
    }


def test_direct_lines_respect_the_level(json_stream: io.StringIO) -> None:
    audit = logging.getLogger("s3proxy.audit")
    audit.setLevel(logging.WARNING)
    try:
        log_fields(audit, "hidden", {})
    finally:
        audit.setLevel(logging.NOTSET)
    log_fields(audit, "shown", {})
    assert [e["message"] for e in _entries(json_stream)] == ["shown"]


def test_text_format_goes_through_logging(caplog: pytest.LogCaptureFixture) -> None:
    setup_logging("info", "text")
    assert observability._json_handler is None
    with caplog.at_level(logging.INFO, logger="s3proxy.audit"):
        log_fields(logging.getLogger("s3proxy.audit"), "PutObject /b/k 200", {"status": 200})
    (record,) = [r for r in caplog.records if r.name == "s3proxy.audit"]
    assert record.getMessage() == "PutObject /b/k 200"
    assert getattr(record, "fields", None) == {"status": 200}


def _samples(*instruments: Counter | Histogram) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(observability._Collector(instruments))
    text = generate_latest(registry).decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_counter_and_histogram_exposition() -> None:
    counter = Counter("t_requests", "requests", ("operation",))
    counter.add(1, "GetObject")
    counter.add(2, "GetObject")
    counter.add(5, "PutObject")
    histogram = Histogram("t_duration_seconds", "duration", ("op",), (0.01, 0.1, 1))
    for value in (0.005, 0.01, 0.05, 2.0):
        histogram.record(value, "x")
    samples = _samples(counter, histogram)
    assert sorted(samples["t_requests_total"], key=lambda s: s[1]) == [
        ({"operation": "GetObject"}, 3.0),
        ({"operation": "PutObject"}, 5.0),
    ]
    buckets = {labels["le"]: value for labels, value in samples["t_duration_seconds_bucket"]}
    # Cumulative, upper bounds inclusive (0.01 falls in le="0.01").
    assert buckets == {"0.01": 2.0, "0.1": 3.0, "1": 3.0, "+Inf": 4.0}
    assert samples["t_duration_seconds_count"] == [({"op": "x"}, 4.0)]
    assert samples["t_duration_seconds_sum"] == [({"op": "x"}, pytest.approx(2.065))]
