"""The native object format (cloud backends) against the backend contract, over MemoryStore.

MemoryStore keeps attributes like a cloud does, so the format's logic is covered here
without an emulator; the cloud plugins run the same contract against their emulators.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator

import obstore
import pytest
from obstore.store import MemoryStore

from s3proxy.storage import native_meta
from s3proxy.storage.backend import NoSuchBucket, ObjectInfo, ObjectMetadata, StorageBackend
from s3proxy.storage.native import NativeObstoreBackend
from s3proxy.storage.native_meta import PLAIN_RULES, S3_RULES
from s3proxy.storage.obstore_errors import KeyTooLongForBackend
from s3proxy.storage.routing import BucketConfigured
from s3proxy.testing.backend_contract import make_body, read_key
from s3proxy.testing.cloud_contract import CloudBackendContract

SINGLE = "the-bucket"


def native(store: MemoryStore, *, single: bool = False, **kw: object) -> NativeObstoreBackend:
    return NativeObstoreBackend(
        "native-memory",
        lambda: store,
        rules=PLAIN_RULES,
        bucket=SINGLE if single else None,
        **{"buffer_limit": 1024 * 1024, "max_path_bytes": 10**6, **kw},  # type: ignore[arg-type]
    )


class TestNativeFolders(CloudBackendContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[StorageBackend]:
        backend = native(MemoryStore())
        await backend.start()
        yield backend
        await backend.close()


class TestNativeSingle(CloudBackendContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[StorageBackend]:
        backend = native(MemoryStore(), single=True)
        await backend.start()
        yield backend
        await backend.close()

    @pytest.fixture
    async def bucket(self, backend: StorageBackend) -> AsyncIterator[str]:
        yield SINGLE
        with contextlib.suppress(NoSuchBucket):
            async for entry in backend.list(SINGLE):
                assert isinstance(entry, ObjectInfo)
                await backend.delete(SINGLE, entry.key)


# -- format details -----------------------------------------------------------------------


async def test_objects_are_native() -> None:
    store = MemoryStore()
    backend = native(store, single=True)
    await backend.start()
    body = make_body(b"hello", content_type="text/plain", user_metadata={"color": "blue"})
    await backend.put(SINGLE, "dir/file.txt", body)
    # Other tools see the plain bytes at the plain key, with native attributes.
    res = await obstore.get_async(store, "dir/file.txt")
    assert bytes(await res.bytes_async()) == b"hello"
    assert res.attributes["Content-Type"] == "text/plain"
    assert res.attributes["color"] == "blue"


async def test_foreign_objects_are_served() -> None:
    store = MemoryStore()
    await obstore.put_async(
        store, "a/b.csv", b"x,y\n", attributes={"Content-Type": "text/csv", "Owner": "ops"}
    )
    backend = native(store, single=True)
    await backend.start()
    info = await backend.head(SINGLE, "a/b.csv")
    assert info.size == 4
    assert info.metadata.content_type == "text/csv"
    assert info.metadata.user_metadata == {"owner": "ops"}
    assert info.etag == native_meta.unquote_etag(
        (await obstore.head_async(store, "a/b.csv"))["e_tag"]
    )
    assert [e.key async for e in backend.list(SINGLE) if isinstance(e, ObjectInfo)] == ["a/b.csv"]
    assert await read_key(backend, SINGLE, "a/b.csv") == b"x,y\n"


async def test_streamed_put_keeps_metadata_in_a_record() -> None:
    store = MemoryStore()
    backend = native(store, single=True, buffer_limit=10)
    await backend.start()
    data = b"0123456789" * 10
    meta = {"content_type": "text/plain", "user_metadata": {"k": "v"}}
    body = make_body(data[:50], data[50:], **meta)
    put = await backend.put(SINGLE, "big", body)
    assert put.etag == body.finish().etag
    assert (await backend.head(SINGLE, "big")).metadata == body.finish()
    records = [m["path"] async for batch in obstore.list(store, "%%!!meta") for m in batch]
    assert len(records) == 1
    # Overwriting the key with a small object, then deleting it, removes the record.
    await backend.put(SINGLE, "big", make_body(b"small"))
    assert (await backend.head(SINGLE, "big")).etag == f'"{hashlib.md5(b"small").hexdigest()}"'
    await backend.delete(SINGLE, "big")
    assert [m async for batch in obstore.list(store, "%%!!meta") for m in batch] == []


async def test_metadata_a_cloud_cannot_hold_round_trips() -> None:
    backend = native(MemoryStore(), single=True)
    await backend.start()
    meta = {
        "content_disposition": 'attachment; filename="ü.txt"',
        "user_metadata": {"x-hyphen": "ok", "uni": "é", "s3proxy": "mine", "big": "v" * 3000},
        "expires": "Thu, 01 Jan 2037 00:00:00 GMT",
    }
    body = make_body(b"data", **meta)
    await backend.put(SINGLE, "k", body)
    assert (await backend.head(SINGLE, "k")).metadata == body.finish()


def test_s3_etag_rule() -> None:
    md5 = hashlib.md5(b"x").hexdigest()
    # S3/GCS: a 32-hex backend ETag is the S3 ETag; a multipart one defers to the stored.
    assert native_meta.s3_etag(S3_RULES, md5, f'"{md5}"') == md5
    assert native_meta.s3_etag(S3_RULES, md5, '"abc-3"') == md5
    assert native_meta.s3_etag(S3_RULES, "", '"abc-3"') == "abc-3"
    # Azure-like: opaque backend ETags only stand in for objects the proxy did not write.
    assert native_meta.s3_etag(PLAIN_RULES, md5, '"0x8D1"') == md5
    assert native_meta.s3_etag(PLAIN_RULES, "", '"0x8D1"') == "0x8D1"


def test_inline_attributes_respect_the_budget() -> None:
    small = ObjectMetadata(etag="e", user_metadata={"a": "b"})
    assert native_meta.encode(small, S3_RULES) is not None
    full = ObjectMetadata(etag="e", user_metadata={"a": "b" * 2040})
    assert native_meta.encode(full, S3_RULES) is None


async def test_key_longer_than_the_cloud_allows() -> None:
    backend = native(MemoryStore(), single=True, max_path_bytes=1024, prefix_bytes=100)
    await backend.start()
    with pytest.raises(KeyTooLongForBackend):
        await backend.put(SINGLE, "k" * 1000, make_body(b"x"))
    await backend.put(SINGLE, "k" * 900, make_body(b"x"))


async def test_single_bucket_is_configuration() -> None:
    backend = native(MemoryStore(), single=True)
    await backend.start()
    assert [b.name for b in await backend.list_buckets()] == [SINGLE]
    with pytest.raises(BucketConfigured):
        await backend.create_bucket("other")
    with pytest.raises(BucketConfigured):
        await backend.delete_bucket(SINGLE)
    with pytest.raises(NoSuchBucket):
        await backend.head_bucket("other")
