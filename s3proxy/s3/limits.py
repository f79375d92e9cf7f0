"""Request limits: per-client rate, concurrency shedding, sizes and body idle timeout.

All checks happen before the backend is touched, and answer with S3-shaped errors
(``SlowDown`` 503 with ``Retry-After``, ``EntityTooLarge``, ``RequestTimeout``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any

from s3proxy.config import LimitsConfig
from s3proxy.s3.errors import S3Error

# Clients tracked by the rate limiter; the least recently seen are forgotten first.
MAX_TRACKED_CLIENTS = 10_000


class RateLimiter:
    """Token bucket per client address."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, client: str) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            retry = max(1, math.ceil((1 - tokens) / self.rate))
            raise slow_down(retry, "Rate limit exceeded for this client.")
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._buckets.popitem(last=False)


def slow_down(retry_after: int, message: str) -> S3Error:
    return S3Error("SlowDown", message, headers=[("retry-after", str(retry_after))])


class Limits:
    """The per-worker state of every limit."""

    def __init__(self, cfg: LimitsConfig) -> None:
        self.cfg = cfg
        self.in_flight = 0
        self.rate = (
            RateLimiter(cfg.rate_per_client, cfg.rate_burst) if cfg.rate_per_client else None
        )

    def admit(
        self,
        client_host: str,
        raw_path: bytes,
        query: bytes,
        headers: Mapping[str, str],
        header_bytes: int,
    ) -> None:
        """Refuse a request before any work is done for it."""
        cfg = self.cfg
        # in_flight already counts this request.
        if cfg.max_concurrent_requests and self.in_flight > cfg.max_concurrent_requests:
            raise slow_down(1, "Too many requests in progress; try again.")
        if self.rate is not None:
            self.rate.check(client_host)
        if cfg.max_url_bytes and len(raw_path) + len(query) > cfg.max_url_bytes:
            raise S3Error("InvalidURI", "The request URI is too long.")
        if cfg.max_header_bytes and header_bytes > cfg.max_header_bytes:
            raise S3Error("RequestHeaderSectionTooLarge")
        if cfg.max_object_size:
            # aws-chunked framing makes Content-Length exceed the object: prefer the
            # decoded length when the client declares one.
            declared = headers.get("x-amz-decoded-content-length") or headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > cfg.max_object_size:
                raise S3Error("EntityTooLarge", extra={"MaxSizeAllowed": str(cfg.max_object_size)})

    def body(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Time out a body that stalls for longer than ``body_idle_timeout``."""
        if not self.cfg.body_idle_timeout:
            return chunks
        return _idle_timeout(chunks, self.cfg.body_idle_timeout)


class _Watchdog:
    """Cancels the task waiting for a body chunk once it has waited ``seconds``.

    One timer per request, rather than an ``asyncio.timeout`` per chunk (~8 us each):
    the timer checks when it fires whether a wait is still under way, and since when.
    The task is looked up per wait: the consumer (obstore, for one) may pull each chunk
    from a task of its own.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.loop = asyncio.get_running_loop()
        self.since: float | None = None
        self.task: asyncio.Task[Any] | None = None
        self.fired = False
        self.timer = self.loop.call_later(seconds, self._check)

    def _check(self) -> None:
        now = self.loop.time()
        if self.since is None:
            self.timer = self.loop.call_later(self.seconds, self._check)
        elif now - self.since >= self.seconds and self.task is not None:
            self.fired = True
            self.task.cancel()
        else:
            self.timer = self.loop.call_at(self.since + self.seconds, self._check)


async def _idle_timeout(chunks: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    dog = _Watchdog(seconds)
    try:
        while True:
            dog.since, dog.task = dog.loop.time(), asyncio.current_task()
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if not dog.fired:
                    raise
                assert dog.task is not None
                dog.task.uncancel()
                raise S3Error(
                    "RequestTimeout",
                    "Your socket connection to the server was not read from or written to "
                    "within the timeout period.",
                ) from None
            dog.since = None
            yield chunk
    finally:
        dog.timer.cancel()
