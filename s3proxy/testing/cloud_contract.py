"""The backend contract for backends over one cloud bucket (s3proxy-aws/-azure/-gcp).

Same tests as ``BackendContract``; two things differ:

- a backend in the ``single`` layout has exactly one bucket, so ``bucket`` yields it
  (emptied afterwards) instead of creating one;
- clouds cap object names at 1024 bytes, and the prefix and escaping count against
  that: a key that no longer fits must fail with KeyTooLongForBackend and leave nothing
  behind, one that fits must round-trip.

It adds the write conditions for bodies below and above the backend's buffer limit
(give the backend a small ``buffer_limit`` so that both paths are exercised).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from s3proxy.storage.backend import (
    NoSuchBucket,
    NoSuchKey,
    ObjectInfo,
    PreconditionFailed,
    StorageBackend,
)
from s3proxy.storage.obstore_errors import KeyTooLongForBackend
from s3proxy.testing.backend_contract import (
    BackendContract,
    entries,
    make_body,
    new_bucket_name,
    read_key,
)


async def _empty(backend: StorageBackend, bucket: str) -> None:
    with contextlib.suppress(NoSuchBucket):
        async for entry in backend.list(bucket):
            assert isinstance(entry, ObjectInfo)
            await backend.delete(bucket, entry.key)


class CloudBackendContract(BackendContract):
    @pytest_asyncio.fixture
    async def bucket(self, backend: StorageBackend) -> AsyncIterator[str]:
        if not backend.capabilities.dynamic_buckets:
            [only] = await backend.list_buckets()
            yield only.name
            await _empty(backend, only.name)
            return
        name = new_bucket_name()
        await backend.create_bucket(name)
        yield name
        await _empty(backend, name)
        with contextlib.suppress(NoSuchBucket):
            await backend.delete_bucket(name)

    @pytest.mark.parametrize("unit", ["k", "é", "/", "\x01", "d/"])
    async def test_max_length_keys(self, backend: StorageBackend, bucket: str, unit: str) -> None:
        key = unit * (1024 // len(unit.encode()))
        try:
            await backend.put(bucket, key, make_body(b"long"))
        except KeyTooLongForBackend:
            assert await entries(backend, bucket) == []
            return
        assert await read_key(backend, bucket, key) == b"long"
        assert await entries(backend, bucket) == [key]
        await backend.delete(bucket, key)
        assert await entries(backend, bucket) == []

    @pytest.mark.parametrize("size", [100, 2 * 1024 * 1024 + 1])
    async def test_conditional_writes(
        self, backend: StorageBackend, bucket: str, size: int
    ) -> None:
        data = os.urandom(size)
        await backend.put(bucket, "c", make_body(data), mode="create")
        with pytest.raises(PreconditionFailed):
            await backend.put(bucket, "c", make_body(b"other"), mode="create")
        etag = (await backend.head(bucket, "c")).etag
        with pytest.raises(PreconditionFailed):
            await backend.put(bucket, "c", make_body(b"other"), if_match='"not-the-etag"')
        with pytest.raises(NoSuchKey):
            await backend.put(bucket, "missing", make_body(data), if_match="*")
        replaced = await backend.put(bucket, "c", make_body(data[::-1]), if_match=etag)
        assert await read_key(backend, bucket, "c") == data[::-1]
        assert (await backend.head(bucket, "c")).etag == replaced.etag
        await backend.put(bucket, "c", make_body(data), if_match="*")
        assert await read_key(backend, bucket, "c") == data
        # Nothing staged is left where clients could see it.
        assert await entries(backend, bucket) == ["c"]
