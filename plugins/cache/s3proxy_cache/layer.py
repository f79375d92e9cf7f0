"""CacheLayer: a StorageBackend that serves reads of small objects (and every object's
metadata) from Redis and passes everything else to the backend it wraps.

Semantics stay those of the backend: a cached read calls the request's ``plan`` with
the cached ``ObjectInfo`` (so 304/412/416/206 come out exactly as uncached) and slices
the cached bytes; a write or delete through the proxy invalidates the key after it
committed (see ``store.py`` for why a concurrent reader cannot put old data back).
Private namespaces (multipart staging) are never cached. When Redis fails the layer
logs once, serves from the backend, and remembers the invalidations it could not make;
it makes them before it trusts Redis again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import metrics

from s3proxy.storage.backend import (
    BucketInfo,
    Capabilities,
    GetResult,
    ObjectInfo,
    PutBody,
    PutMode,
    ReadPlan,
    StorageBackend,
)
from s3proxy_cache.settings import CacheSettings
from s3proxy_cache.store import Found, RedisEntries, Ref, Unavailable

log = logging.getLogger("s3proxy.cache")

_meter = metrics.get_meter("s3proxy.cache")
hits = _meter.create_counter(
    "s3proxy.cache.hits", unit="{request}", description="Reads served from the cache"
)
misses = _meter.create_counter(
    "s3proxy.cache.misses", unit="{request}", description="Reads the cache sent to the backend"
)
errors = _meter.create_counter(
    "s3proxy.cache.errors",
    unit="{request}",
    description="Cache operations that could not use Redis (failed, or skipped while it is down)",
)

#: Invalidations kept for retry while Redis is down; past this, reads skip the cache
#: for one TTL instead (every entry that could be stale has expired by then).
MAX_PENDING = 10_000

_GET = {"operation": "get"}
_HEAD = {"operation": "head"}
_INVALIDATE = {"operation": "invalidate"}


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Health:
    """Whether to use Redis now, and the invalidations still owed to it."""

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.pending: dict[Ref, None] = {}
        self._down_until = 0.0
        self._no_reads_until = 0.0
        self._down = False

    def usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def readable(self) -> bool:
        return not self.pending and time.monotonic() >= self._no_reads_until

    def failed(self, exc: Unavailable) -> None:
        self._down_until = time.monotonic() + self.settings.retry_after
        if not self._down:
            self._down = True
            log.warning(
                "cache: Redis at %s is unavailable (%s); serving from the backend, "
                "trying again every %gs",
                self.settings.redacted_url(),
                exc,
                self.settings.retry_after,
            )

    def succeeded(self) -> None:
        if self._down:
            self._down = False
            log.info("cache: Redis at %s is available again", self.settings.redacted_url())

    def owe(self, refs: tuple[Ref, ...]) -> None:
        for ref in refs:
            self.pending[ref] = None
        if len(self.pending) > MAX_PENDING:
            self.pending.clear()
            self._no_reads_until = time.monotonic() + self.settings.ttl
            log.warning(
                "cache: more than %d invalidations could not reach Redis; "
                "not reading from the cache for %gs",
                MAX_PENDING,
                self.settings.ttl,
            )


class CacheLayer:
    """Wraps ``inner``; see the module docstring. Built once per worker."""

    def __init__(
        self, inner: StorageBackend, settings: CacheSettings, store: RedisEntries | None = None
    ) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.capabilities: Capabilities = inner.capabilities
        self.settings = settings
        self.store = store or RedisEntries(settings)
        self.health = Health(settings)

    # -- plumbing ------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Backend extras (readiness probes, ...). A native multipart engine writes the
        # final object without ``put``, so its ``complete`` must invalidate too.
        if name.startswith("__") or name == "inner":
            raise AttributeError(name)
        attr = getattr(self.inner, name)
        if name == "multipart_engine" and callable(attr):
            return lambda: _InvalidatingEngine(attr(), self)
        return attr

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        try:
            await self.store.close()
        finally:
            await self.inner.close()

    async def check_ready(self) -> None:
        # Redis being down degrades to uncached reads; it does not make us unready.
        await self.inner.check_ready()

    def _cached(self, bucket: str, namespace: str) -> bool:
        return namespace == "" and self.settings.caches_bucket(bucket)

    async def _lookup(self, ref: Ref, key: str, labels: dict[str, str]) -> Found | None:
        """The entry and generation, or None when Redis is not to be used."""
        if not self.health.usable():
            errors.add(1, labels)
            return None
        try:
            if self.health.pending:
                await self._settle()
            if not self.health.readable():
                errors.add(1, labels)
                return None
            found = await self.store.lookup(ref, key)
        except Unavailable as exc:
            errors.add(1, labels)
            self.health.failed(exc)
            return None
        self.health.succeeded()
        return found

    async def _settle(self) -> None:
        """Make the invalidations that failed earlier (raises Unavailable)."""
        refs = tuple(self.health.pending)
        await self.store.invalidate(*refs)
        for ref in refs:
            self.health.pending.pop(ref, None)

    async def _insert(
        self, ref: Ref, found: Found, info: ObjectInfo, body: bytes | None, labels: dict[str, str]
    ) -> None:
        try:
            await self.store.insert(ref, found, info, body)
        except Unavailable as exc:
            errors.add(1, labels)
            self.health.failed(exc)

    async def _invalidate(self, bucket: str, key: str) -> None:
        ref = self.store.ref(self.name, bucket, key)
        if self.health.usable():
            try:
                if self.health.pending:
                    await self._settle()
                await self.store.invalidate(ref)
            except Unavailable as exc:
                self.health.failed(exc)
            else:
                self.health.succeeded()
                return
        errors.add(1, _INVALIDATE)
        self.health.owe((ref,))

    # -- reads ---------------------------------------------------------------------------

    async def head(self, bucket: str, key: str, *, namespace: str = "") -> ObjectInfo:
        if not self._cached(bucket, namespace):
            return await self.inner.head(bucket, key, namespace=namespace)
        ref = self.store.ref(self.name, bucket, key)
        found = await self._lookup(ref, key, _HEAD)
        if found is not None and found.entry is not None:
            hits.add(1, _HEAD)
            return found.entry.info()
        if found is None:
            return await self.inner.head(bucket, key)
        misses.add(1, _HEAD)
        info = await self.inner.head(bucket, key)
        await self._insert(ref, found, info, None, _HEAD)
        return info

    async def get(
        self, bucket: str, key: str, plan: ReadPlan | None = None, *, namespace: str = ""
    ) -> GetResult:
        if not self._cached(bucket, namespace):
            return await self.inner.get(bucket, key, plan, namespace=namespace)
        ref = self.store.ref(self.name, bucket, key)
        found = await self._lookup(ref, key, _GET)
        if found is None:
            return await self.inner.get(bucket, key, plan)
        if found.entry is not None:
            served = await self._serve(ref, found, plan)
            if served is not None:
                hits.add(1, _GET)
                return served
        misses.add(1, _GET)
        return await self._read_through(bucket, key, plan, ref, found)

    async def _serve(self, ref: Ref, found: Found, plan: ReadPlan | None) -> GetResult | None:
        """Answer from the entry, or None when it lacks the bytes the plan wants."""
        assert found.entry is not None and found.raw is not None
        entry = found.entry
        info = entry.info()
        # Exactly what the backend would do: the plan decides (and may refuse).
        try:
            start, end = plan(info) if plan is not None else (0, info.size)
        except Exception:
            hits.add(1, _GET)  # answered (304/412/416) from the cache
            raise
        if start >= end:
            return GetResult(info=info, body=_once(b""), range=(start, end))
        data = entry.inline
        if data is None and entry.body_apart:
            try:
                data = await self.store.body(ref, found.raw)
            except Unavailable as exc:
                errors.add(1, _GET)
                self.health.failed(exc)
                return None
        if data is None or len(data) != info.size:
            return None
        return GetResult(info=info, body=_once(data[start:end]), range=(start, end))

    async def _read_through(
        self, bucket: str, key: str, plan: ReadPlan | None, ref: Ref, found: Found
    ) -> GetResult:
        limit = self.settings.max_object_size
        seen: dict[str, Any] = {}

        def whole(info: ObjectInfo) -> tuple[int, int]:
            # Learn what the client asks for, but read a small object whole to cache it.
            seen.clear()
            seen["info"] = info
            wanted = plan(info) if plan is not None else (0, info.size)
            seen["wanted"] = wanted
            if info.size <= limit and wanted[0] < wanted[1]:
                seen["whole"] = True
                return (0, info.size)
            return wanted

        try:
            result = await self.inner.get(bucket, key, whole)
        except Exception:
            if "info" in seen and "wanted" not in seen and found.entry is None:
                # The plan refused (304/412/416): the object's metadata is still good.
                await self._insert(ref, found, seen["info"], None, _GET)
            raise
        info, (start, end) = result.info, seen["wanted"]
        if not seen.get("whole"):
            # Large, or no bytes wanted: cache the metadata, unless the entry was there
            # already and only lacked this (large) object's bytes.
            if found.entry is None:
                await self._insert(ref, found, info, None, _GET)
            return result
        data = b"".join([chunk async for chunk in result.body])
        if result.range == (0, info.size) and len(data) == info.size:
            await self._insert(ref, found, info, data, _GET)
            return GetResult(info=info, body=_once(data[start:end]), range=(start, end))
        # A layer below answered another range than the plan asked for: pass it on.
        return GetResult(info=info, body=_once(data), range=result.range)

    # -- writes --------------------------------------------------------------------------

    async def put(
        self,
        bucket: str,
        key: str,
        body: PutBody,
        *,
        namespace: str = "",
        mode: PutMode = "overwrite",
        if_match: str | None = None,
    ) -> ObjectInfo:
        if not self._cached(bucket, namespace):
            return await self.inner.put(
                bucket, key, body, namespace=namespace, mode=mode, if_match=if_match
            )
        try:
            return await self.inner.put(bucket, key, body, mode=mode, if_match=if_match)
        finally:
            # After the commit (or a failure that may have committed): from here on no
            # reader can insert what it read before.
            await self._invalidate(bucket, key)

    async def delete(self, bucket: str, key: str, *, namespace: str = "") -> None:
        if not self._cached(bucket, namespace):
            return await self.inner.delete(bucket, key, namespace=namespace)
        try:
            await self.inner.delete(bucket, key)
        finally:
            await self._invalidate(bucket, key)

    # -- passed through ------------------------------------------------------------------

    async def list_buckets(self) -> list[BucketInfo]:
        return await self.inner.list_buckets()

    async def create_bucket(self, bucket: str) -> None:
        await self.inner.create_bucket(bucket)

    async def head_bucket(self, bucket: str) -> BucketInfo:
        return await self.inner.head_bucket(bucket)

    async def delete_bucket(self, bucket: str) -> None:
        await self.inner.delete_bucket(bucket)

    def list(
        self,
        bucket: str,
        prefix: str = "",
        start_after: str = "",
        delimiter: str = "",
        *,
        namespace: str = "",
    ) -> AsyncIterator[ObjectInfo | str]:
        return self.inner.list(bucket, prefix, start_after, delimiter, namespace=namespace)


class _InvalidatingEngine:
    """A backend's native multipart engine whose Complete invalidates the final key."""

    def __init__(self, engine: Any, layer: CacheLayer) -> None:
        self._engine = engine
        self._layer = layer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def complete(self, upload: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self._engine.complete(upload, *args, **kwargs)
        finally:
            if self._layer._cached(upload.bucket, ""):
                await self._layer._invalidate(upload.bucket, upload.key)
