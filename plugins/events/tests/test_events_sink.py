"""WebhookSink in-process against a real loopback receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
from typing import Any

import msgspec
import pytest
from s3proxy_events.settings import EventsSettings, parse_webhooks
from s3proxy_events.sink import WebhookSink

from plugins.events.tests.conftest import WAIT, Receiver
from s3proxy import events
from s3proxy.events import S3Event
from s3proxy.testing.emulators import free_port


def event(key: str = "k", name: str = events.OBJECT_CREATED_PUT, bucket: str = "bkt") -> S3Event:
    return S3Event(name=name, bucket=bucket, key=key, request_id="RID", region="us-east-1", size=3)


def sink_for(webhooks: str, **settings: Any) -> WebhookSink:
    fast = {"backoff": 0.0, "max_backoff": 0.0, "timeout": 5.0}
    return WebhookSink(
        EventsSettings(webhooks=parse_webhooks(webhooks), **{**fast, **settings})  # type: ignore[arg-type]
    )


async def drained(sink: WebhookSink) -> None:
    async with asyncio.timeout(WAIT):
        await sink.drain()


async def test_posts_the_s3_document(receiver: Receiver) -> None:
    sink = sink_for(receiver.url("/in"))
    sent = event("dir/a b.txt")
    sink.publish(sent)
    await drained(sink)
    [got] = receiver.received
    assert got.path == "/in"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-s3proxy-event"] == "ObjectCreated:Put"
    assert "x-s3proxy-signature" not in got.headers
    assert got.json() == msgspec.json.decode(msgspec.json.encode(sent.document()))
    assert got.record["s3"]["object"]["key"] == "dir/a+b.txt"
    await sink.close()


async def test_order_is_kept_per_webhook(receiver: Receiver) -> None:
    sink = sink_for(receiver.url())
    for i in range(20):
        sink.publish(event(f"k{i:02d}"))
    await drained(sink)
    assert [r.record["s3"]["object"]["key"] for r in receiver.received] == [
        f"k{i:02d}" for i in range(20)
    ]
    await sink.close()


async def test_retried_until_accepted(receiver: Receiver) -> None:
    receiver.respond_with(500, 503)
    sink = sink_for(receiver.url(), max_attempts=5)
    sink.publish(event())
    await drained(sink)
    attempts = receiver.received
    assert len(attempts) == 3  # two refusals, then delivered once
    assert attempts[0].body == attempts[1].body == attempts[2].body
    await sink.close()


async def test_retry_after_429_but_not_after_400(receiver: Receiver) -> None:
    receiver.respond_with(429, 400)
    sink = sink_for(receiver.url(), max_attempts=5)
    sink.publish(event("a"))
    sink.publish(event("b"))
    await drained(sink)
    keys = [r.record["s3"]["object"]["key"] for r in receiver.received]
    assert keys == ["a", "a", "b"]  # "a": 429 then 400 (given up); "b": 200
    await sink.close()


async def test_receiver_down_bounded_attempts(caplog: pytest.LogCaptureFixture) -> None:
    sink = sink_for(f"http://127.0.0.1:{free_port()}/hook", max_attempts=3, timeout=1.0)
    for i in range(4):
        sink.publish(event(f"k{i}"))  # returns at once: nothing is delivered inline
    await drained(sink)
    delivery = sink.deliveries[0]
    assert delivery.idle and not delivery.queue
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per failing spell, not per event
    assert "after 3 attempt(s)" in warnings[0].getMessage()
    await sink.close()


async def test_recovery_is_logged(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="s3proxy.events")
    receiver.respond_with(500, 500)
    sink = sink_for(receiver.url(), max_attempts=2)
    sink.publish(event("lost"))
    sink.publish(event("kept"))
    await drained(sink)
    assert [r.record["s3"]["object"]["key"] for r in receiver.received] == ["lost"] * 2 + ["kept"]
    assert any("accepts events again" in r.getMessage() for r in caplog.records)
    await sink.close()


@pytest.mark.parametrize(
    ("overflow", "kept"),
    [("drop-oldest", ["k7", "k8", "k9"]), ("drop-newest", ["k0", "k1", "k2"])],
)
async def test_queue_is_bounded(receiver: Receiver, overflow: str, kept: list[str]) -> None:
    sink = sink_for(receiver.url(), queue_size=3, overflow=overflow)
    # publish() never yields, so the delivery task has not taken anything yet.
    for i in range(10):
        sink.publish(event(f"k{i}"))
    assert len(sink.deliveries[0].queue) == 3
    await drained(sink)
    assert [r.record["s3"]["object"]["key"] for r in receiver.received] == kept
    await sink.close()


async def test_filters(receiver: Receiver) -> None:
    hooks = ",".join(
        [
            receiver.url("/all"),
            receiver.url("/removed") + " events=s3:ObjectRemoved:*",
            receiver.url("/photos") + " bucket=photos|pics-* prefix=img/ suffix=.jpg",
        ]
    )
    sink = sink_for(hooks)
    sink.publish(event("img/a.jpg", bucket="photos"))
    sink.publish(event("img/b.png", bucket="photos"))
    sink.publish(event("img/c.jpg", bucket="pics-2024"))
    sink.publish(event("doc/d.jpg", bucket="photos"))
    sink.publish(event("img/e.jpg", name=events.OBJECT_REMOVED_DELETE, bucket="other"))
    await drained(sink)
    by_path: dict[str, list[str]] = {}
    for r in receiver.received:
        by_path.setdefault(r.path, []).append(r.record["s3"]["object"]["key"])
    assert sorted(by_path["/all"]) == [
        "doc/d.jpg",
        "img/a.jpg",
        "img/b.png",
        "img/c.jpg",
        "img/e.jpg",
    ]
    assert by_path["/removed"] == ["img/e.jpg"]
    assert by_path["/photos"] == ["img/a.jpg", "img/c.jpg"]
    await sink.close()


async def test_signature(receiver: Receiver) -> None:
    sink = sink_for(receiver.url(), secret="s3cr3t")
    sink.publish(event())
    await drained(sink)
    [got] = receiver.received
    expected = hmac.new(b"s3cr3t", got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-s3proxy-signature"] == f"sha256={expected}"
    await sink.close()


async def test_a_slow_webhook_does_not_hold_up_another(receiver: Receiver) -> None:
    slow = Receiver()
    slow.gate = threading.Event()  # answers only when the test says so
    sink = sink_for(f"{slow.url()},{receiver.url()}", timeout=WAIT)
    sink.publish(event())
    async with asyncio.timeout(WAIT):
        await sink.deliveries[1].wait_idle()
    assert len(receiver.received) == 1
    assert not sink.deliveries[0].idle  # still waiting for the slow one
    slow.gate.set()
    await drained(sink)
    assert len(slow.received) == 1
    slow.close()
    await sink.close()


def test_publish_outside_the_event_loop_queues(receiver: Receiver) -> None:
    sink = sink_for(receiver.url())
    sink.publish(event("early"))  # no running loop: queued, task started later

    async def later() -> None:
        sink.publish(event("late"))
        await drained(sink)
        await sink.close()

    asyncio.run(later())
    assert [r.record["s3"]["object"]["key"] for r in receiver.received] == ["early", "late"]


async def test_publish_never_raises(receiver: Receiver) -> None:
    class Broken(S3Event):
        def document(self) -> dict[str, Any]:
            raise RuntimeError("boom")

    sink = sink_for(receiver.url())
    sink.publish(Broken(name="ObjectCreated:Put", bucket="b", key="k", request_id="r", region="x"))
    sink.publish(event("fine"))
    await drained(sink)
    assert [r.record["s3"]["object"]["key"] for r in receiver.received] == ["fine"]
    await sink.close()
