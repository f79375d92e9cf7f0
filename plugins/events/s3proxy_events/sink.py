"""WebhookSink: S3 event notifications POSTed to webhooks, off the request path.

``publish`` (called by the request that made the change) only filters and enqueues.
Each webhook has its own bounded queue and one delivery task per worker, started on the
first event: events reach a webhook one at a time, in the order they were published,
and a slow or failing webhook holds up no other. An event is retried with exponential
backoff on connection errors, timeouts, 408, 429 and 5xx answers, up to
``max_attempts``; other answers (3xx, 4xx) fail it at once. Outcomes are counted on the
OTel global meter: ``s3proxy.events.delivered``, ``.failed``, ``.dropped`` (queue
full) and ``.retries``, labelled by webhook.

Delivery is at most once per attempt and at least once overall only while the worker
lives: events still queued when a worker stops are lost (see README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import importlib.metadata
import logging
import random
from collections import deque

import httpx
import msgspec
from opentelemetry import metrics

from s3proxy.events import S3Event
from s3proxy_events.settings import EventsSettings, Webhook

log = logging.getLogger("s3proxy.events")

_meter = metrics.get_meter("s3proxy.events")
delivered = _meter.create_counter(
    "s3proxy.events.delivered", unit="{event}", description="Events a webhook accepted (2xx)"
)
failed = _meter.create_counter(
    "s3proxy.events.failed",
    unit="{event}",
    description="Events given up after the last attempt or a permanent refusal",
)
dropped = _meter.create_counter(
    "s3proxy.events.dropped", unit="{event}", description="Events dropped: the queue was full"
)
retries = _meter.create_counter(
    "s3proxy.events.retries", unit="{attempt}", description="Delivery attempts after the first"
)

_RETRY_STATUS = {408, 429}
try:
    _USER_AGENT = f"s3proxy-events/{importlib.metadata.version('s3proxy-events')}"
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
    _USER_AGENT = "s3proxy-events"


class _Retry(Exception):
    """This attempt failed in a way worth trying again."""


class _Refused(Exception):
    """The webhook answered with a status that retrying will not change."""


class Delivery:
    """One webhook: its queue and the task that empties it."""

    def __init__(self, hook: Webhook, settings: EventsSettings) -> None:
        self.hook = hook
        self.settings = settings
        self.labels = {"webhook": hook.label}
        self.queue: deque[tuple[str, bytes]] = deque()
        #: Events taken from the queue and not finished yet (0 or 1).
        self.in_flight = 0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._failing = False

    @property
    def idle(self) -> bool:
        return not self.queue and not self.in_flight

    def enqueue(self, name: str, body: bytes) -> None:
        if len(self.queue) >= self.settings.queue_size:
            dropped.add(1, self.labels)
            if self.settings.overflow == "drop-newest":
                return
            self.queue.popleft()
        self.queue.append((name, body))
        self._start()
        if self._wake is not None and self._idle is not None:
            self._idle.clear()
            self._wake.set()

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # published outside the event loop: the next publish starts it
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        self._wake, self._idle = asyncio.Event(), asyncio.Event()
        self._task = loop.create_task(self._run(), name=f"s3proxy-events {self.hook.label}")

    async def wait_idle(self) -> None:
        if not self.idle and self._idle is not None:
            await self._idle.wait()

    async def _run(self) -> None:
        assert self._wake is not None and self._idle is not None
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        timeout = httpx.Timeout(self.settings.timeout)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            while True:
                while not self.queue:
                    self._idle.set()
                    self._wake.clear()
                    await self._wake.wait()
                name, body = self.queue.popleft()
                self.in_flight = 1
                try:
                    await self._deliver(client, name, body)
                except Exception:  # never let one event end the task
                    log.exception("events: delivery to %s crashed", self.hook.label)
                    failed.add(1, self.labels)
                finally:
                    self.in_flight = 0

    async def _deliver(self, client: httpx.AsyncClient, name: str, body: bytes) -> None:
        delay, problem, attempt = self.settings.backoff, "", 0
        for attempt in range(1, self.settings.max_attempts + 1):
            if attempt > 1:
                retries.add(1, self.labels)
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, self.settings.max_backoff)
            try:
                await self._post(client, name, body)
            except _Retry as exc:
                problem = str(exc)
                continue
            except _Refused as exc:
                problem = str(exc)
                break
            delivered.add(1, self.labels)
            if self._failing:
                self._failing = False
                log.info("events: webhook %s accepts events again", self.hook.label)
            return
        failed.add(1, self.labels)
        if not self._failing:
            # Once per failing spell, not once per event: the counter has the rest.
            self._failing = True
            log.warning(
                "events: webhook %s failed (%s); gave up on a %s event after %d attempt(s)",
                self.hook.label,
                problem,
                name,
                attempt,
            )

    async def _post(self, client: httpx.AsyncClient, name: str, body: bytes) -> None:
        headers = {
            "content-type": "application/json",
            "user-agent": _USER_AGENT,
            "x-s3proxy-event": name,
        }
        if self.settings.secret:
            digest = hmac.new(self.settings.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["x-s3proxy-signature"] = f"sha256={digest}"
        try:
            resp = await client.post(self.hook.url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # connection refused, timeouts, protocol errors
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        if resp.is_success:
            return
        problem = f"HTTP {resp.status_code}"
        if resp.status_code in _RETRY_STATUS or resp.status_code >= 500:
            raise _Retry(problem)
        raise _Refused(problem)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class WebhookSink:
    """The ``EventSink`` the plugin returns: fans events out to its webhooks."""

    def __init__(self, settings: EventsSettings) -> None:
        self.settings = settings
        self.deliveries = [Delivery(hook, settings) for hook in settings.webhooks]
        self._publish_failed = False

    def publish(self, event: S3Event) -> None:
        """Enqueue ``event`` for every webhook whose filters match; never blocks or raises."""
        try:
            targets = [d for d in self.deliveries if d.hook.matches(event)]
            if not targets:
                return
            body = msgspec.json.encode(event.document())
            for delivery in targets:
                delivery.enqueue(event.name, body)
        except Exception:  # the request that made the change has succeeded: keep it so
            if not self._publish_failed:
                self._publish_failed = True
                log.exception("events: could not enqueue an event")
            dropped.add(1, {"webhook": "*"})

    async def drain(self) -> None:
        """Wait until every queue is empty and nothing is in flight (bound it with
        ``asyncio.timeout``)."""
        for delivery in self.deliveries:
            await delivery.wait_idle()

    async def close(self) -> None:
        """Deliver what is queued (for at most ``timeout`` seconds), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.timeout):
                await self.drain()
        for delivery in self.deliveries:
            await delivery.close()
