"""CacheLayer in-process, around the memory backend, against a real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from s3proxy_cache import layer as layer_mod
from s3proxy_cache.layer import CacheLayer
from s3proxy_cache.settings import CacheSettings
from s3proxy_cache.store import INLINE_LIMIT, RedisEntries, Unavailable

from plugins.cache.tests.conftest import RedisServer, cache_settings
from s3proxy.s3.conditions import NotModified, check_read
from s3proxy.s3.errors import S3Error
from s3proxy.s3.ranges import parse_range
from s3proxy.storage.backend import (
    GetResult,
    NoSuchKey,
    ObjectInfo,
    ObjectMetadata,
    PreconditionFailed,
    PutBody,
    StorageBackend,
)
from s3proxy.storage.builtin import make_memory
from s3proxy.storage.multipart import engine_for
from s3proxy.testing.backend_contract import make_body, read

pytestmark = pytest.mark.asyncio

BUCKET = "b"


class Counting:
    """Delegates to a backend and counts the reads that reach it."""

    def __init__(self, inner: StorageBackend) -> None:
        self.inner = inner
        self.gets = 0
        self.heads = 0
        #: Set to make the next ``get`` wait (after reading) until it is released.
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, *args: Any, **kwargs: Any) -> GetResult:
        self.gets += 1
        result: GetResult = await self.inner.get(*args, **kwargs)
        if self.hold is not None:
            hold, self.hold = self.hold, None
            data = await read(result)  # the bytes of the version current now
            self.holding.set()
            await hold.wait()
            result.body = _once(data)
        return result

    async def head(self, *args: Any, **kwargs: Any) -> ObjectInfo:
        self.heads += 1
        info: ObjectInfo = await self.inner.head(*args, **kwargs)
        return info


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class FlakyEntries(RedisEntries):
    """RedisEntries that fail every call while ``down``."""

    down = False

    async def _run(self, coro: Any) -> Any:
        if self.down:
            coro.close()
            raise Unavailable("ConnectionError: injected")
        return await super()._run(coro)


@pytest.fixture
async def inner() -> AsyncIterator[Counting]:
    backend = make_memory(None)
    await backend.start()
    await backend.create_bucket(BUCKET)
    yield Counting(backend)
    await backend.close()


def layer_for(inner: Counting, settings: CacheSettings, flaky: bool = False) -> CacheLayer:
    store = FlakyEntries(settings) if flaky else RedisEntries(settings)
    return CacheLayer(inner, settings, store)  # type: ignore[arg-type]


@pytest.fixture
async def layer(inner: Counting, redis_server: RedisServer) -> AsyncIterator[CacheLayer]:
    cached = layer_for(inner, cache_settings(redis_server))
    yield cached
    await cached.store.close()


def quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


def s3_plan(headers: dict[str, str], with_body: bool = True) -> Any:
    """The plan the GetObject/HeadObject handler passes (conditions, then the range)."""

    def plan(info: ObjectInfo) -> tuple[int, int]:
        check_read(headers, info)
        selected = parse_range(headers.get("range"), info.size)
        if not with_body:
            return (0, 0)
        return selected or (0, info.size)

    return plan


async def outcome(backend: StorageBackend, key: str, headers: dict[str, str]) -> Any:
    """What a read looks like to the S3 layer: the result, or the refusal."""
    try:
        result = await backend.get(BUCKET, key, s3_plan(headers))
    except NotModified as nm:
        return ("304", nm.info.etag)
    except S3Error as exc:
        return (exc.code, exc.status)
    info = result.info
    return (result.range, await read(result), info.etag, info.size, info.last_modified)


async def test_second_read_is_a_hit(layer: CacheLayer, inner: Counting) -> None:
    await layer.put(BUCKET, "k", make_body(b"hello world", content_type="text/plain"))
    first = await layer.get(BUCKET, "k")
    second = await layer.get(BUCKET, "k")
    assert await read(first) == await read(second) == b"hello world"
    assert inner.gets == 1
    assert second.info.metadata.content_type == "text/plain"
    assert second.info.etag == first.info.etag
    assert second.info.last_modified == first.info.last_modified
    assert (await layer.head(BUCKET, "k")).size == 11
    assert inner.heads == 0


async def test_head_is_cached_for_any_size(inner: Counting, redis_server: RedisServer) -> None:
    layer = layer_for(inner, cache_settings(redis_server, max_object_size=4))
    await layer.put(BUCKET, "big", make_body(b"0123456789"))
    assert (await layer.head(BUCKET, "big")).size == 10
    assert (await layer.head(BUCKET, "big")).size == 10
    assert inner.heads == 1
    # A HEAD request reaches the backend as a get with an empty plan: served too.
    assert (await layer.get(BUCKET, "big", lambda info: (0, 0))).info.size == 10
    assert inner.gets == 0
    # The body of an object above the limit is never cached.
    for _ in range(3):
        assert await read(await layer.get(BUCKET, "big")) == b"0123456789"
    assert inner.gets == 3
    await layer.store.close()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"range": "bytes=0-4"},
        {"range": "bytes=6-"},
        {"range": "bytes=-3"},
        {"range": "bytes=3-3"},
        {"range": "bytes=100-200"},
        {"range": "bytes=5-2"},
        {"if-none-match": "ETAG"},
        {"if-none-match": '"other"'},
        {"if-match": '"other"'},
        {"if-match": "ETAG", "range": "bytes=1-2"},
        {"if-modified-since": "FUTURE"},
        {"if-modified-since": "PAST"},
        {"if-unmodified-since": "PAST"},
        {"if-none-match": "ETAG", "if-modified-since": "PAST"},
    ],
)
@pytest.mark.parametrize("size", [11, INLINE_LIMIT + 5])
async def test_conditionals_and_ranges_as_uncached(
    layer: CacheLayer, inner: Counting, headers: dict[str, str], size: int
) -> None:
    data = bytes(i % 251 for i in range(size))
    await layer.put(BUCKET, "obj", make_body(data))
    info = await inner.inner.head(BUCKET, "obj")
    stamps = {
        "ETAG": quoted(info.etag),
        "FUTURE": (info.last_modified + timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "PAST": (info.last_modified - timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S GMT"),
    }
    headers = {k: stamps.get(v, v) for k, v in headers.items()}
    expected = await outcome(inner.inner, "obj", headers)
    cold = await outcome(layer, "obj", headers)  # a miss (or metadata only)
    await layer.get(BUCKET, "obj")  # now the whole object is cached
    before = inner.gets
    warm = await outcome(layer, "obj", headers)
    assert cold == expected
    assert warm == expected
    assert inner.gets == before  # the warm one was served from Redis


async def test_put_and_delete_invalidate(layer: CacheLayer, inner: Counting) -> None:
    await layer.put(BUCKET, "k", make_body(b"one"))
    assert await read(await layer.get(BUCKET, "k")) == b"one"
    await layer.put(BUCKET, "k", make_body(b"two"))
    assert await read(await layer.get(BUCKET, "k")) == b"two"
    assert (await layer.head(BUCKET, "k")).size == 3
    await layer.delete(BUCKET, "k")
    with pytest.raises(NoSuchKey):
        await layer.get(BUCKET, "k")
    with pytest.raises(NoSuchKey):
        await layer.head(BUCKET, "k")


async def test_failed_conditional_put_leaves_a_correct_cache(layer: CacheLayer) -> None:
    await layer.put(BUCKET, "k", make_body(b"one"))
    assert await read(await layer.get(BUCKET, "k")) == b"one"
    with pytest.raises(PreconditionFailed):
        await layer.put(BUCKET, "k", make_body(b"two"), mode="create")
    assert await read(await layer.get(BUCKET, "k")) == b"one"


async def test_reader_cannot_put_back_what_a_write_replaced(
    layer: CacheLayer, inner: Counting
) -> None:
    await layer.put(BUCKET, "k", make_body(b"old"))
    inner.hold = release = asyncio.Event()
    reader = asyncio.create_task(layer.get(BUCKET, "k"))
    await inner.holding.wait()  # the reader has read "old" from the backend
    await layer.put(BUCKET, "k", make_body(b"new"))  # commits and invalidates
    release.set()
    # A read concurrent with the write may return either version...
    assert await read(await reader) == b"old"
    # ...but the old one must not be left in the cache.
    gets = inner.gets
    assert await read(await layer.get(BUCKET, "k")) == b"new"
    assert inner.gets == gets + 1
    assert await read(await layer.get(BUCKET, "k")) == b"new"
    assert inner.gets == gets + 1


async def test_namespaces_are_never_cached(
    layer: CacheLayer, inner: Counting, redis_server: RedisServer
) -> None:
    await layer.put(BUCKET, "part", make_body(b"staged"), namespace="mpu")
    for _ in range(2):
        result = await layer.get(BUCKET, "part", namespace="mpu")
        assert await read(result) == b"staged"
        await layer.head(BUCKET, "part", namespace="mpu")
    assert (inner.gets, inner.heads) == (2, 2)
    client = aioredis.Redis.from_url(redis_server.url)
    assert await client.keys(f"{layer.settings.key_prefix}:*") == []
    await client.aclose()


async def test_bucket_globs(inner: Counting, redis_server: RedisServer) -> None:
    layer = layer_for(inner, cache_settings(redis_server, buckets=["static-*"]))
    await inner.inner.create_bucket("static-a")
    for bucket in ("static-a", BUCKET):
        await layer.put(bucket, "k", make_body(b"x"))
        await layer.get(bucket, "k")
        await layer.get(bucket, "k")
    assert inner.gets == 3  # two for the uncached bucket, one for the cached
    await layer.store.close()


async def test_body_stored_apart_is_checked_against_its_metadata(
    layer: CacheLayer, inner: Counting
) -> None:
    data = b"y" * (INLINE_LIMIT + 1)
    await layer.put(BUCKET, "k", make_body(data))
    await layer.get(BUCKET, "k")
    result = await layer.get(BUCKET, "k", lambda info: (1, 4))
    assert (result.range, await read(result)) == ((1, 4), b"yyy")
    assert inner.gets == 1


async def test_conditional_miss_caches_metadata(layer: CacheLayer, inner: Counting) -> None:
    await layer.put(BUCKET, "k", make_body(b"abc"))
    etag = quoted((await inner.inner.head(BUCKET, "k")).etag)
    with pytest.raises(NotModified):
        await layer.get(BUCKET, "k", s3_plan({"if-none-match": etag}))
    with pytest.raises(NotModified):
        await layer.get(BUCKET, "k", s3_plan({"if-none-match": etag}))
    assert inner.gets == 1


async def test_redis_down_falls_through_and_recovers(
    inner: Counting, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="s3proxy.cache")
    layer = layer_for(inner, cache_settings(redis_server, retry_after=0), flaky=True)
    store = layer.store
    assert isinstance(store, FlakyEntries)
    await layer.put(BUCKET, "k", make_body(b"v1"))
    assert await read(await layer.get(BUCKET, "k")) == b"v1"  # cached
    store.down = True
    for _ in range(3):
        assert await read(await layer.get(BUCKET, "k")) == b"v1"
    # A write while Redis is down cannot invalidate: it is owed...
    await layer.put(BUCKET, "k", make_body(b"v2"))
    assert layer.health.pending
    store.down = False
    # ...and settled before the cache is read again: no stale v1.
    assert await read(await layer.get(BUCKET, "k")) == b"v2"
    assert not layer.health.pending
    gets = inner.gets
    assert await read(await layer.get(BUCKET, "k")) == b"v2"
    assert inner.gets == gets  # cached again
    unavailable = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(unavailable) == 1
    assert any("available again" in r.getMessage() for r in caplog.records)
    await store.close()


async def test_too_many_owed_invalidations_stop_reads_for_a_ttl(
    inner: Counting, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layer_mod, "MAX_PENDING", 5)
    layer = layer_for(inner, cache_settings(redis_server, retry_after=0), flaky=True)
    store = layer.store
    assert isinstance(store, FlakyEntries)
    await layer.put(BUCKET, "k", make_body(b"v1"))
    await layer.get(BUCKET, "k")
    store.down = True
    for i in range(6):
        await layer._invalidate(BUCKET, f"other-{i}")
    store.down = False
    gets = inner.gets
    await layer.get(BUCKET, "k")
    await layer.get(BUCKET, "k")
    assert inner.gets == gets + 2  # not read from the cache for a TTL
    await store.close()


async def test_redis_not_listening(inner: Counting) -> None:
    # A port nobody listens on: every request still succeeds, from the backend.
    from s3proxy.testing.emulators import free_port

    settings = CacheSettings(url=f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    layer = CacheLayer(inner, settings)  # type: ignore[arg-type]
    await layer.put(BUCKET, "k", make_body(b"data"))
    assert await read(await layer.get(BUCKET, "k")) == b"data"
    assert (await layer.head(BUCKET, "k")).size == 4
    await layer.delete(BUCKET, "k")
    with pytest.raises(NoSuchKey):
        await layer.get(BUCKET, "k")
    await layer.store.close()


async def test_staged_multipart_complete_invalidates(layer: CacheLayer) -> None:
    await layer.put(BUCKET, "mpu", make_body(b"before"))
    assert await read(await layer.get(BUCKET, "mpu")) == b"before"
    engine = engine_for(layer)  # type: ignore[arg-type]
    upload = await engine.create(BUCKET, "mpu", ObjectMetadata(etag=""))
    etag = hashlib.md5(b"after").hexdigest()  # as the S3 layer stores it: unquoted
    body = PutBody(chunks=_once(b"after"), finish=lambda: ObjectMetadata(etag=etag))
    part = await engine.put_part(upload, 1, body)
    await engine.complete(upload, [(1, part.etag)], 0, lambda u, parts: {})
    assert await read(await layer.get(BUCKET, "mpu")) == b"after"


async def test_native_multipart_engine_complete_invalidates(layer: CacheLayer) -> None:
    class Engine:
        completed: list[str] = []

        async def complete(self, upload: Any, *args: Any, **kwargs: Any) -> str:
            self.completed.append(upload.key)
            return "done"

        def other(self) -> str:
            return "passed through"

    class Upload:
        bucket, key = BUCKET, "native"

    layer.inner.multipart_engine = Engine  # type: ignore[attr-defined]
    await layer.put(BUCKET, "native", make_body(b"v1"))
    await layer.get(BUCKET, "native")
    # Replace the object behind the cache's back, as a native Complete would.
    await layer.inner.put(BUCKET, "native", make_body(b"v2"))  # type: ignore[attr-defined]
    assert await read(await layer.get(BUCKET, "native")) == b"v1"
    engine = engine_for(layer)  # type: ignore[arg-type]
    assert await engine.complete(Upload(), [], 0, None) == "done"  # type: ignore[arg-type]
    assert engine.other() == "passed through"  # type: ignore[attr-defined]
    assert await read(await layer.get(BUCKET, "native")) == b"v2"


async def test_entry_survives_round_trip_of_all_metadata(layer: CacheLayer) -> None:
    body = make_body(
        b"payload",
        content_type="application/x-test",
        content_encoding="gzip",
        content_disposition="attachment",
        content_language="de",
        cache_control="no-cache",
        expires="Thu, 01 Jan 2037 00:00:00 GMT",
        user_metadata={"a": "1", "ü": "ß"},
        checksums={"CRC32": "AAAAAA=="},
        storage_class="STANDARD_IA",
        part_sizes=[4, 3],
        layers={"transform": "zstd"},
    )
    await layer.put(BUCKET, "meta", body)
    uncached = await layer.get(BUCKET, "meta")
    cached = await layer.get(BUCKET, "meta")
    assert cached.info == uncached.info
    assert cached.info.last_modified.tzinfo is not None
    assert abs(cached.info.last_modified - datetime.now(UTC)) < timedelta(days=1)
    assert hashlib.md5(await read(cached)).hexdigest() == cached.info.etag.strip('"')
