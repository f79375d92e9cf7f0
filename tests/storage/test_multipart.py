"""The staged multipart engine over the built-in backends (no HTTP involved).

Mirrors ``storage/multipart.py`` and ``storage/staged_multipart.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from s3proxy.storage.backend import (
    NoSuchBucket,
    NoSuchKey,
    ObjectInfo,
    ObjectMetadata,
    PutBody,
    StorageBackend,
)
from s3proxy.storage.builtin import LocalSettings, make_local, make_memory
from s3proxy.storage.multipart import (
    NAMESPACE,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
    Part,
    SweepResult,
    Upload,
    engine_for,
    multipart_etag,
    sweep_all,
)
from s3proxy.storage.staged_multipart import StagedMultipart, new_upload_id, upload_time
from s3proxy.testing.backend_contract import read_key


@pytest.fixture(params=["memory", "local"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageBackend]:
    if request.param == "memory":
        backend = make_memory(None)
    else:
        backend = make_local(LocalSettings(path=str(tmp_path)))
    await backend.start()
    await backend.create_bucket("bkt")
    yield backend
    await backend.close()


@pytest.fixture
def engine(backend: StorageBackend) -> StagedMultipart:
    chosen = engine_for(backend)
    assert isinstance(chosen, StagedMultipart)  # no native engine on built-in backends
    return chosen


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def part_body(data: bytes) -> PutBody:
    return PutBody(
        chunks=_chunks(data),
        finish=lambda: ObjectMetadata(etag=hashlib.md5(data).hexdigest(), checksums={"X": "1"}),
    )


def no_checksums(upload: Upload, parts: list[Part]) -> dict[str, str]:
    return {}


async def staged(backend: StorageBackend) -> list[str]:
    """Every object in the bucket's private multipart area."""
    return [
        e.key async for e in backend.list("bkt", namespace=NAMESPACE) if isinstance(e, ObjectInfo)
    ]


async def visible(backend: StorageBackend) -> list[str]:
    return [e.key async for e in backend.list("bkt") if isinstance(e, ObjectInfo)]


async def test_upload_round_trip(backend: StorageBackend, engine: StagedMultipart) -> None:
    meta = ObjectMetadata(etag="", content_type="text/plain", user_metadata={"a": "b"})
    upload = await engine.create("bkt", "dir/obj", meta, "CRC32", "COMPOSITE")
    again = await StagedMultipart(backend).upload("bkt", "dir/obj", upload.upload_id)
    assert (again.checksum_algorithm, again.checksum_type) == ("CRC32", "COMPOSITE")
    assert again.metadata.user_metadata == {"a": "b"}
    assert abs(again.initiated.timestamp() - time.time()) < 60

    data = [b"a" * 3000, b"b" * 2500, b"c" * 7]
    for number, chunk in zip((1, 2, 3), data, strict=True):
        part = await engine.put_part(upload, number, part_body(chunk))
        assert (part.number, part.size) == (number, len(chunk))
    parts = [p async for p in engine.parts(upload)]
    assert [p.number for p in parts] == [1, 2, 3]
    assert [p.number async for p in engine.parts(upload, after=1)] == [2, 3]
    # Nothing staged is visible as a client key.
    assert await visible(backend) == []

    info = await engine.complete(
        upload, [(p.number, f'"{p.etag}"') for p in parts], 2000, no_checksums
    )
    assert info.etag == multipart_etag(parts)
    assert info.etag.endswith("-3")
    head = await backend.head("bkt", "dir/obj")
    assert head.metadata.part_sizes == [3000, 2500, 7]
    assert head.metadata.content_type == "text/plain"
    assert await read_key(backend, "bkt", "dir/obj") == b"".join(data)
    assert await staged(backend) == []
    with pytest.raises(NoSuchUpload):
        await engine.upload("bkt", "dir/obj", upload.upload_id)


async def test_complete_subset_and_replaced_part(
    backend: StorageBackend, engine: StagedMultipart
) -> None:
    upload = await engine.create("bkt", "k", ObjectMetadata(etag=""))
    await engine.put_part(upload, 1, part_body(b"old" * 1000))
    one = await engine.put_part(upload, 1, part_body(b"new" * 1000))
    await engine.put_part(upload, 2, part_body(b"unused"))
    three = await engine.put_part(upload, 3, part_body(b"end"))
    await engine.complete(upload, [(1, one.etag), (3, three.etag)], 10, no_checksums)
    assert await read_key(backend, "bkt", "k") == b"new" * 1000 + b"end"
    # The part left out of the object is discarded with the rest.
    assert await staged(backend) == []


async def test_complete_errors_change_nothing(
    backend: StorageBackend, engine: StagedMultipart
) -> None:
    upload = await engine.create("bkt", "k", ObjectMetadata(etag=""))
    p1 = await engine.put_part(upload, 1, part_body(b"x" * 100))
    p2 = await engine.put_part(upload, 2, part_body(b"y" * 100))
    cases: list[tuple[list[tuple[int, str]], type[Exception]]] = [
        ([(2, p2.etag), (1, p1.etag)], InvalidPartOrder),
        ([(1, p1.etag), (1, p1.etag)], InvalidPartOrder),
        ([(1, p1.etag), (3, p2.etag)], InvalidPart),
        ([(1, p2.etag), (2, p2.etag)], InvalidPart),
        ([(1, p1.etag), (2, p2.etag)], EntityTooSmall),
    ]
    for requested, error in cases:
        with pytest.raises(error):
            await engine.complete(upload, requested, 101, no_checksums)
    assert await visible(backend) == []
    assert len(await staged(backend)) == 3  # record and both parts
    # The last part may be small; the others only need the configured minimum.
    await engine.complete(upload, [(1, p1.etag), (2, p2.etag)], 100, no_checksums)
    assert await read_key(backend, "bkt", "k") == b"x" * 100 + b"y" * 100


async def test_part_replaced_during_complete_aborts_the_write(
    backend: StorageBackend, engine: StagedMultipart
) -> None:
    upload = await engine.create("bkt", "k", ObjectMetadata(etag=""))
    p1 = await engine.put_part(upload, 1, part_body(b"1" * 5000))
    p2 = await engine.put_part(upload, 2, part_body(b"2" * 10))
    real_concat = engine._concat

    async def concat_after_replace(upload: Upload, parts: list[Part]) -> AsyncIterator[bytes]:
        # Validation has passed; a client re-uploads part 2 before it is read.
        await engine.put_part(upload, 2, part_body(b"changed"))
        async for chunk in real_concat(upload, parts):
            yield chunk

    engine._concat = concat_after_replace  # type: ignore[method-assign]
    with pytest.raises(InvalidPart):
        await engine.complete(upload, [(1, p1.etag), (2, p2.etag)], 1, no_checksums)
    with pytest.raises(NoSuchKey):
        await backend.head("bkt", "k")
    assert (await engine.upload("bkt", "k", upload.upload_id)).upload_id == upload.upload_id


async def test_wrong_key_or_id_is_no_such_upload(engine: StagedMultipart) -> None:
    upload = await engine.create("bkt", "k", ObjectMetadata(etag=""))
    for key, upload_id in [("other", upload.upload_id), ("k", "nope"), ("k", new_upload_id())]:
        with pytest.raises(NoSuchUpload):
            await engine.upload("bkt", key, upload_id)
    with pytest.raises(NoSuchBucket):
        await engine.upload("missing-bucket", "k", upload.upload_id)


async def test_abort_removes_everything(backend: StorageBackend, engine: StagedMultipart) -> None:
    upload = await engine.create("bkt", "k", ObjectMetadata(etag=""))
    for n in range(1, 30):
        await engine.put_part(upload, n, part_body(b"p"))
    await engine.abort(upload)
    assert await staged(backend) == []
    with pytest.raises(NoSuchUpload):
        await engine.upload("bkt", "k", upload.upload_id)


async def test_upload_listing_order_prefix_delimiter_markers(engine: StagedMultipart) -> None:
    keys = ["a", "a!", "a/1", "a/2", "b", "é", "a"]
    ids = []
    for key in keys:
        ids.append((await engine.create("bkt", key, ObjectMetadata(etag=""))).upload_id)

    async def ls(**kw: str) -> list[str | tuple[str, str]]:
        return [
            e if isinstance(e, str) else (e.key, e.upload_id)
            async for e in engine.uploads("bkt", **kw)
        ]

    # Key order (UTF-8 bytes), then initiation order within a key.
    expected = [("a", ids[0]), ("a", ids[6]), ("a!", ids[1])]
    expected += [("a/1", ids[2]), ("a/2", ids[3]), ("b", ids[4]), ("é", ids[5])]
    assert await ls() == expected
    assert await ls(prefix="a/") == [("a/1", ids[2]), ("a/2", ids[3])]
    assert await ls(delimiter="/") == [*expected[:3], "a/", *expected[5:]]
    assert await ls(key_marker="a") == expected[2:]
    assert await ls(key_marker="a", upload_id_marker=ids[0]) == expected[1:]
    assert await ls(key_marker="a/", delimiter="/") == expected[5:]
    assert await ls(prefix="zzz") == []


async def test_sweep_removes_expired_and_stray_parts(
    backend: StorageBackend, engine: StagedMultipart
) -> None:
    old = await engine.create("bkt", "old", ObjectMetadata(etag=""))
    await engine.put_part(old, 1, part_body(b"1"))
    # A part whose record is gone (e.g. it landed while its upload was completed).
    stray = await engine.create("bkt", "stray", ObjectMetadata(etag=""))
    await engine.put_part(stray, 1, part_body(b"3"))
    await backend.delete("bkt", f"u/{b'stray'.hex()}/{stray.upload_id}", namespace=NAMESPACE)
    await asyncio.sleep(0.01)
    fresh = await engine.create("bkt", "fresh", ObjectMetadata(etag=""))
    await engine.put_part(fresh, 1, part_body(b"2"))

    assert await engine.sweep("bkt", max_age=3600) == SweepResult(0, 0)
    # Ages are judged from the upload id: "now" is when "fresh" began.
    result = await engine.sweep("bkt", max_age=0.005, now=upload_time(fresh.upload_id))
    assert result == SweepResult(uploads=1, parts=2)
    remaining = await staged(backend)
    assert len(remaining) == 2
    assert all(fresh.upload_id in name for name in remaining)

    assert await sweep_all(backend, max_age=0) == SweepResult(uploads=1, parts=1)
    assert await staged(backend) == []


async def test_delete_bucket_takes_staged_uploads(
    backend: StorageBackend, engine: StagedMultipart
) -> None:
    upload = await engine.create("bkt", "k", ObjectMetadata(etag=""))
    await engine.put_part(upload, 1, part_body(b"data"))
    # In-progress uploads do not keep the bucket from being empty (as in S3).
    await backend.delete_bucket("bkt")
    await backend.create_bucket("bkt")
    assert await staged(backend) == []
    with pytest.raises(NoSuchUpload):
        await engine.upload("bkt", "k", upload.upload_id)


def test_upload_ids_sort_by_time() -> None:
    first, second = new_upload_id(1000.0), new_upload_id(1000.5)
    assert first < second
    assert upload_time(first) == pytest.approx(1000.0)
