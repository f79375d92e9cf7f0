"""The contract every ``StorageBackend`` must pass, written once for all backends.

A backend package subclasses ``BackendContract`` and provides a started backend::

    from s3proxy.testing.backend_contract import BackendContract

    class TestMyBackend(BackendContract):
        @pytest_asyncio.fixture
        async def backend(self) -> AsyncIterator[StorageBackend]:
            backend = make_my_backend(...)
            await backend.start()
            yield backend
            await backend.close()

Each test gets a fresh empty bucket from the ``bucket`` fixture; a backend without
dynamic buckets overrides ``bucket`` (yielding an empty bucket) and the bucket
lifecycle tests skip themselves.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Any, NamedTuple

import pytest
import pytest_asyncio

from s3proxy.storage.backend import (
    BucketAlreadyExists,
    BucketNotEmpty,
    GetResult,
    NoSuchBucket,
    NoSuchKey,
    ObjectInfo,
    ObjectMetadata,
    PreconditionFailed,
    PutBody,
    StorageBackend,
)

MiB = 1024 * 1024

# Keys S3 accepts that path-based stores do not, or that look like internal names.
AWKWARD_KEYS = [
    *("a", "a/b", "a0", "a//b", "a/", "dir/", "/lead", "../x", "./y", "x/../z"),
    *("é", "日本/語", "😀", "%", "%%", "%2F", "a%b", "%%!bucket", "%%!!bucket", "%%>x"),
    *("x!o", "x#1", "+ ?#&=", "\x01ctl", "tab\there", "new\nline", "\x7f\u0085"),
]


class Prefix(NamedTuple):
    """A common prefix in a listing (objects are shown as plain keys)."""

    name: str


class Boom(Exception):
    pass


async def _chunks(parts: list[bytes], fail: bool = False) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    if fail:
        raise Boom("body failed midway")


def make_body(
    *parts: bytes, fail_body: bool = False, fail_finish: bool = False, **meta: Any
) -> PutBody:
    """A PutBody whose metadata carries the MD5 of the data as ETag."""
    etag = '"' + hashlib.md5(b"".join(parts)).hexdigest() + '"'

    def finish() -> ObjectMetadata:
        if fail_finish:
            raise Boom("digest mismatch")
        return ObjectMetadata(etag=etag, **meta)

    return PutBody(chunks=_chunks(list(parts), fail_body), finish=finish)


async def read(result: GetResult) -> bytes:
    return b"".join([chunk async for chunk in result.body])


async def read_key(backend: StorageBackend, bucket: str, key: str) -> bytes:
    return await read(await backend.get(bucket, key))


async def entries(backend: StorageBackend, bucket: str, **kw: str) -> list[str | Prefix]:
    return [
        e.key if isinstance(e, ObjectInfo) else Prefix(e) async for e in backend.list(bucket, **kw)
    ]


Lister = Callable[..., Coroutine[Any, Any, list[str | Prefix]]]


def utf8_sorted(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode())


def new_bucket_name() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


class BackendContract:
    """Subclass and provide a ``backend`` fixture yielding a started StorageBackend."""

    pytestmark = pytest.mark.asyncio

    @pytest_asyncio.fixture
    async def bucket(self, backend: StorageBackend) -> AsyncIterator[str]:
        name = new_bucket_name()
        await backend.create_bucket(name)
        yield name
        with contextlib.suppress(NoSuchBucket):
            async for entry in backend.list(name):
                assert isinstance(entry, ObjectInfo)
                await backend.delete(name, entry.key)
            await backend.delete_bucket(name)

    @staticmethod
    def dynamic(backend: StorageBackend) -> None:
        if not backend.capabilities.dynamic_buckets:
            pytest.skip("backend has a fixed set of buckets")

    # -- buckets -------------------------------------------------------------------

    async def test_check_ready(self, backend: StorageBackend) -> None:
        await backend.check_ready()

    async def test_bucket_lifecycle(self, backend: StorageBackend) -> None:
        self.dynamic(backend)
        name = new_bucket_name()
        with pytest.raises(NoSuchBucket):
            await backend.head_bucket(name)
        await backend.create_bucket(name)
        info = await backend.head_bucket(name)
        assert info.name == name
        assert isinstance(info.created, datetime)
        assert name in [b.name for b in await backend.list_buckets()]
        # An empty bucket exists, and lists nothing, until deleted.
        assert await entries(backend, name) == []
        await backend.delete_bucket(name)
        with pytest.raises(NoSuchBucket):
            await backend.head_bucket(name)
        assert name not in [b.name for b in await backend.list_buckets()]
        with pytest.raises(NoSuchBucket):
            await entries(backend, name)

    async def test_create_existing_bucket(self, backend: StorageBackend, bucket: str) -> None:
        self.dynamic(backend)
        await backend.put(bucket, "k", make_body(b"data"))
        with pytest.raises(BucketAlreadyExists):
            await backend.create_bucket(bucket)
        assert await read_key(backend, bucket, "k") == b"data"

    async def test_delete_missing_bucket(self, backend: StorageBackend) -> None:
        self.dynamic(backend)
        with pytest.raises(NoSuchBucket):
            await backend.delete_bucket(new_bucket_name())

    async def test_delete_non_empty_bucket(self, backend: StorageBackend, bucket: str) -> None:
        self.dynamic(backend)
        await backend.put(bucket, "dir/", make_body(b""))
        with pytest.raises(BucketNotEmpty):
            await backend.delete_bucket(bucket)
        assert await entries(backend, bucket) == ["dir/"]
        await backend.delete(bucket, "dir/")
        await backend.delete_bucket(bucket)
        with pytest.raises(NoSuchBucket):
            await backend.head_bucket(bucket)

    async def test_recreated_bucket_is_empty(self, backend: StorageBackend, bucket: str) -> None:
        self.dynamic(backend)
        await backend.put(bucket, "k", make_body(b"data"))
        await backend.delete(bucket, "k")
        await backend.delete_bucket(bucket)
        await backend.create_bucket(bucket)
        assert await entries(backend, bucket) == []

    async def test_list_buckets_sorted(self, backend: StorageBackend) -> None:
        self.dynamic(backend)
        base = new_bucket_name()
        names = [f"{base}-b", f"{base}-a", f"{base}-c"]
        for name in names:
            await backend.create_bucket(name)
        listed = [b.name for b in await backend.list_buckets()]
        assert listed == sorted(listed)
        assert [n for n in listed if n.startswith(base)] == sorted(names)
        for name in names:
            await backend.delete_bucket(name)

    # -- put / head / get ----------------------------------------------------------

    async def test_put_head_get_round_trip(self, backend: StorageBackend, bucket: str) -> None:
        meta: dict[str, Any] = {
            "content_type": "text/plain; charset=utf-8",
            "content_encoding": "gzip",
            "content_disposition": 'attachment; filename="a.txt"',
            "content_language": "en",
            "cache_control": "max-age=60",
            "expires": "Thu, 01 Jan 2037 00:00:00 GMT",
            "user_metadata": {"color": "blue", "note": "é ünïcode"},
            "checksums": {"crc32": "AAAAAA=="},
            "storage_class": "STANDARD",
        }
        body = make_body(b"hello ", b"world", **meta)
        expected = body.finish()
        put = await backend.put(bucket, "dir/obj.txt", body)
        assert (put.key, put.size, put.etag) == ("dir/obj.txt", 11, expected.etag)

        head = await backend.head(bucket, "dir/obj.txt")
        assert (head.key, head.size, head.metadata) == ("dir/obj.txt", 11, expected)
        assert isinstance(head.last_modified, datetime)

        got = await backend.get(bucket, "dir/obj.txt")
        assert (got.info.size, got.info.metadata, got.range) == (11, expected, (0, 11))
        assert await read(got) == b"hello world"

    async def test_get_with_plan(self, backend: StorageBackend, bucket: str) -> None:
        await backend.put(bucket, "k", make_body(b"0123456789"))
        seen: list[ObjectInfo] = []

        def plan(info: ObjectInfo) -> tuple[int, int]:
            seen.append(info)
            return 2, 5

        got = await backend.get(bucket, "k", plan)
        assert [i.size for i in seen] == [10]
        assert got.range == (2, 5)
        assert got.info.size == 10
        assert await read(got) == b"234"

    async def test_plan_can_refuse(self, backend: StorageBackend, bucket: str) -> None:
        await backend.put(bucket, "k", make_body(b"data"))

        def plan(info: ObjectInfo) -> tuple[int, int]:
            raise PreconditionFailed()

        with pytest.raises(PreconditionFailed):
            await backend.get(bucket, "k", plan)

    async def test_empty_object(self, backend: StorageBackend, bucket: str) -> None:
        info = await backend.put(bucket, "empty", make_body())
        assert info.size == 0
        assert (await backend.head(bucket, "empty")).size == 0
        got = await backend.get(bucket, "empty")
        assert got.info.size == 0
        assert await read(got) == b""

    async def test_large_object_streams(self, backend: StorageBackend, bucket: str) -> None:
        data = os.urandom(6 * MiB + 123)
        parts = [data[i : i + 700_001] for i in range(0, len(data), 700_001)]
        assert (await backend.put(bucket, "big", make_body(*parts))).size == len(data)

        assert await read_key(backend, bucket, "big") == data

        start, end = MiB - 10, 5 * MiB + 10
        ranged = await backend.get(bucket, "big", lambda info: (start, end))
        assert ranged.range == (start, end)
        assert await read(ranged) == data[start:end]

    async def test_missing_bucket(self, backend: StorageBackend) -> None:
        name = new_bucket_name()
        with pytest.raises(NoSuchBucket):
            await backend.put(name, "k", make_body(b"data"))
        with pytest.raises(NoSuchBucket):
            await backend.head(name, "k")
        with pytest.raises(NoSuchBucket):
            await backend.get(name, "k")
        with pytest.raises(NoSuchBucket):
            await backend.delete(name, "k")

    async def test_missing_key(self, backend: StorageBackend, bucket: str) -> None:
        await backend.put(bucket, "a/b", make_body(b"data"))
        for key in ["nope", "a", "a/", "a/b/c"]:
            with pytest.raises(NoSuchKey):
                await backend.head(bucket, key)
            with pytest.raises(NoSuchKey):
                await backend.get(bucket, key)

    @pytest.mark.parametrize("failure", ["fail_body", "fail_finish"])
    async def test_failed_put_changes_nothing(
        self, backend: StorageBackend, bucket: str, failure: str
    ) -> None:
        await backend.put(bucket, "k", make_body(b"old", user_metadata={"v": "1"}))
        for key in ["k", "new"]:
            with pytest.raises(Boom):
                await backend.put(bucket, key, make_body(b"x" * 1000, **{failure: True}))
        assert await read_key(backend, bucket, "k") == b"old"
        assert (await backend.head(bucket, "k")).metadata.user_metadata == {"v": "1"}
        with pytest.raises(NoSuchKey):
            await backend.head(bucket, "new")
        assert await entries(backend, bucket) == ["k"]

    async def test_overwrite_replaces(self, backend: StorageBackend, bucket: str) -> None:
        await backend.put(bucket, "k", make_body(b"first", user_metadata={"a": "1"}))
        body = make_body(b"second!", content_type="text/plain")
        await backend.put(bucket, "k", body)
        head = await backend.head(bucket, "k")
        assert head.size == 7
        assert head.metadata == body.finish()
        assert await read_key(backend, bucket, "k") == b"second!"
        assert await entries(backend, bucket) == ["k"]

    async def test_delete(self, backend: StorageBackend, bucket: str) -> None:
        await backend.put(bucket, "a", make_body(b"1"))
        await backend.put(bucket, "a/b", make_body(b"2"))
        await backend.delete(bucket, "a")
        with pytest.raises(NoSuchKey):
            await backend.head(bucket, "a")
        await backend.delete(bucket, "a")  # idempotent
        await backend.delete(bucket, "never-existed")
        assert await read_key(backend, bucket, "a/b") == b"2"
        assert await entries(backend, bucket) == ["a/b"]

    # -- keys ----------------------------------------------------------------------

    async def test_awkward_keys(self, backend: StorageBackend, bucket: str) -> None:
        for i, key in enumerate(AWKWARD_KEYS):
            await backend.put(bucket, key, make_body(str(i).encode()))
        for i, key in enumerate(AWKWARD_KEYS):
            assert (await backend.head(bucket, key)).key == key
            assert await read_key(backend, bucket, key) == str(i).encode(), key
        assert await entries(backend, bucket) == utf8_sorted(AWKWARD_KEYS)

    @pytest.mark.parametrize("unit", ["k", "é", "/", "\x01", "d/"])
    async def test_max_length_keys(self, backend: StorageBackend, bucket: str, unit: str) -> None:
        key = unit * (1024 // len(unit.encode()))
        await backend.put(bucket, key, make_body(b"long"))
        assert await read_key(backend, bucket, key) == b"long"
        assert await entries(backend, bucket) == [key]
        await backend.delete(bucket, key)
        assert await entries(backend, bucket) == []

    async def test_internal_objects_are_hidden(self, backend: StorageBackend, bucket: str) -> None:
        # Keys that look like the proxy's own names are ordinary keys, and deleting
        # them leaves the bucket itself alone.
        names = ["%%!bucket", "%%!!bucket", "%%!", "%%>", "a/%%!!x"]
        for key in names:
            await backend.put(bucket, key, make_body(b"x"))
        assert await entries(backend, bucket) == utf8_sorted(names)
        for key in names:
            await backend.delete(bucket, key)
        assert await entries(backend, bucket) == []
        await backend.head_bucket(bucket)

    # -- list ----------------------------------------------------------------------

    @staticmethod
    async def fill(backend: StorageBackend, bucket: str, keys: list[str]) -> Lister:
        """Put each key (its name as data); returns a lister for the bucket."""
        for key in keys:
            await backend.put(bucket, key, make_body(key.encode()))
        return functools.partial(entries, backend, bucket)

    async def test_list_entries_carry_metadata(self, backend: StorageBackend, bucket: str) -> None:
        body = make_body(b"12345", content_type="x/y")
        await backend.put(bucket, "k", body)
        [entry] = [e async for e in backend.list(bucket)]
        assert isinstance(entry, ObjectInfo)
        assert (entry.key, entry.size, entry.etag) == ("k", 5, body.finish().etag)

    async def test_list_prefix(self, backend: StorageBackend, bucket: str) -> None:
        keys = ["p", "pho", "phone", "photos/2024/a.jpg", "photos/b.jpg", "other", "a//b", "a/"]
        ls = await self.fill(backend, bucket, keys)
        assert await ls(prefix="ph") == ["pho", "phone", "photos/2024/a.jpg", "photos/b.jpg"]
        assert await ls(prefix="photos/") == ["photos/2024/a.jpg", "photos/b.jpg"]
        assert await ls(prefix="photos/2") == ["photos/2024/a.jpg"]
        assert await ls(prefix="a/") == ["a/", "a//b"]
        assert await ls(prefix="a//") == ["a//b"]
        assert await ls(prefix="zzz") == []

    async def test_list_start_after(self, backend: StorageBackend, bucket: str) -> None:
        ls = await self.fill(backend, bucket, ["a", "a/b", "a0", "b", "é"])
        assert await ls(start_after="a") == ["a/b", "a0", "b", "é"]
        assert await ls(start_after="a/a") == ["a/b", "a0", "b", "é"]
        assert await ls(start_after="b") == ["é"]
        assert await ls(start_after="é") == []
        assert await ls(prefix="a", start_after="a/b") == ["a0"]

    async def test_list_delimiter(self, backend: StorageBackend, bucket: str) -> None:
        # More keys under one prefix than a backend is likely to fetch in one batch.
        many = [f"b/{i:03}" for i in range(70)]
        keys = ["a", "a/b", "a/c/d", "a/c/e", "a0", "c", "d//x", *many]
        ls = await self.fill(backend, bucket, keys)
        P = Prefix
        assert await ls(delimiter="/") == ["a", P("a/"), "a0", P("b/"), "c", P("d/")]
        assert await ls(prefix="a/", delimiter="/") == ["a/b", P("a/c/")]
        assert await ls(prefix="a", delimiter="/") == ["a", P("a/"), "a0"]
        assert await ls(prefix="d/", delimiter="/") == [P("d//")]
        assert await ls(prefix="b/", delimiter="/") == many

    async def test_list_other_delimiter(self, backend: StorageBackend, bucket: str) -> None:
        ls = await self.fill(backend, bucket, ["x-1-a", "x-1-b", "x-2", "x/3", "y"])
        assert await ls(delimiter="-") == [Prefix("x-"), "x/3", "y"]
        assert await ls(prefix="x-", delimiter="-") == [Prefix("x-1-"), "x-2"]

    async def test_start_after_common_prefix(self, backend: StorageBackend, bucket: str) -> None:
        ls = await self.fill(backend, bucket, ["a/1", "a/2", "b/1", "b/2", "c"])
        assert await ls(delimiter="/", start_after="a/") == [Prefix("b/"), "c"]
        assert await ls(delimiter="/", start_after="b/") == ["c"]

    # -- private namespaces (e.g. staged multipart parts) ---------------------------

    async def test_namespace_is_private(self, backend: StorageBackend, bucket: str) -> None:
        await backend.put(bucket, "k", make_body(b"client"))
        await backend.put(bucket, "k", make_body(b"private"), namespace="mpu")
        await backend.put(bucket, "p/1", make_body(b"part"), namespace="mpu")
        # Same key, separate objects; the client area shows none of the private ones.
        assert await read_key(backend, bucket, "k") == b"client"
        assert await read(await backend.get(bucket, "k", namespace="mpu")) == b"private"
        assert await entries(backend, bucket) == ["k"]
        with pytest.raises(NoSuchKey):
            await backend.head(bucket, "p/1")
        listed = [
            e.key async for e in backend.list(bucket, namespace="mpu") if isinstance(e, ObjectInfo)
        ]
        assert listed == ["k", "p/1"]
        ns = [e async for e in backend.list(bucket, prefix="p/", delimiter="/", namespace="mpu")]
        assert [e.key for e in ns if isinstance(e, ObjectInfo)] == ["p/1"]
        await backend.delete(bucket, "k", namespace="mpu")
        assert await read_key(backend, bucket, "k") == b"client"
        with pytest.raises(NoSuchKey):
            await backend.head(bucket, "k", namespace="mpu")

    async def test_namespace_leaves_bucket_empty_and_goes_with_it(
        self, backend: StorageBackend, bucket: str
    ) -> None:
        self.dynamic(backend)
        await backend.put(bucket, "u/upload", make_body(b"x"), namespace="mpu")
        await backend.delete_bucket(bucket)
        with pytest.raises(NoSuchBucket):
            await backend.head(bucket, "u/upload", namespace="mpu")
        await backend.create_bucket(bucket)
        assert [e async for e in backend.list(bucket, namespace="mpu")] == []
