"""CacheLayer around the memory backend passes the backend contract: every read after a
write sees the write, whatever the cache held."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from s3proxy_cache.layer import CacheLayer

from plugins.cache.tests.conftest import RedisServer, cache_settings
from s3proxy.storage.backend import (
    GetResult,
    ObjectInfo,
    ReadPlan,
    StorageBackend,
    StorageError,
)
from s3proxy.storage.builtin import make_memory
from s3proxy.testing.backend_contract import BackendContract


class TestCachedMemory(BackendContract):
    @pytest.fixture
    async def backend(self, redis_server: RedisServer) -> AsyncIterator[StorageBackend]:
        layer = CacheLayer(make_memory(None), cache_settings(redis_server))
        await layer.start()
        yield layer
        await layer.close()


class TestCachedMemoryLargeBodies(BackendContract):
    """Bodies of several MiB are cached too (stored apart from the metadata)."""

    @pytest.fixture
    async def backend(self, redis_server: RedisServer) -> AsyncIterator[StorageBackend]:
        settings = cache_settings(redis_server, max_object_size=64 * 1024 * 1024)
        layer = CacheLayer(make_memory(None), settings)
        await layer.start()
        yield layer
        await layer.close()


class ReadTwice(CacheLayer):
    """Every read is preceded by one that fills the cache: the contract then runs on
    cache hits."""

    async def head(self, bucket: str, key: str, *, namespace: str = "") -> ObjectInfo:
        with contextlib.suppress(StorageError):
            await super().head(bucket, key, namespace=namespace)
        return await super().head(bucket, key, namespace=namespace)

    async def get(
        self, bucket: str, key: str, plan: ReadPlan | None = None, *, namespace: str = ""
    ) -> GetResult:
        with contextlib.suppress(Exception):
            first = await super().get(bucket, key, namespace=namespace)
            async for _ in first.body:
                pass
        return await super().get(bucket, key, plan, namespace=namespace)


class TestCachedMemoryHits(BackendContract):
    @pytest.fixture
    async def backend(self, redis_server: RedisServer) -> AsyncIterator[StorageBackend]:
        layer = ReadTwice(make_memory(None), cache_settings(redis_server))
        await layer.start()
        yield layer
        await layer.close()
