"""Conditional writes (put mode="create" / if_match) on the built-in backends.

The body iterators here pause on events, so the checks made at commit time (not only
the ones before the upload) are exercised deterministically.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from s3proxy.storage.backend import (
    ConditionalRequestConflict,
    NoSuchKey,
    ObjectMetadata,
    PreconditionFailed,
    PutBody,
    StorageBackend,
)
from s3proxy.storage.builtin import LocalSettings, make_local, make_memory
from s3proxy.testing.backend_contract import read_key

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["memory", "local"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageBackend]:
    made = (
        make_memory(None)
        if request.param == "memory"
        else make_local(LocalSettings(path=str(tmp_path)))
    )
    await made.start()
    await made.create_bucket("b")
    yield made
    await made.close()


def body(data: bytes) -> PutBody:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    return PutBody(chunks(), lambda: ObjectMetadata(etag=hashlib.md5(data).hexdigest()))


class Paused:
    """A body that stops after its first chunk until released."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    def body(self) -> PutBody:
        async def chunks() -> AsyncIterator[bytes]:
            # Pulled only after the backend's checks before the upload have passed.
            self.started.set()
            await self.release.wait()
            yield self.data

        return PutBody(chunks(), lambda: ObjectMetadata(etag=hashlib.md5(self.data).hexdigest()))


def etag(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def test_create_only(backend: StorageBackend) -> None:
    await backend.put("b", "k", body(b"first"), mode="create")
    with pytest.raises(PreconditionFailed):
        await backend.put("b", "k", body(b"second"), mode="create")
    assert await read_key(backend, "b", "k") == b"first"


async def test_if_match(backend: StorageBackend) -> None:
    with pytest.raises(NoSuchKey):
        await backend.put("b", "k", body(b"x"), if_match="*")
    await backend.put("b", "k", body(b"v1"))
    with pytest.raises(PreconditionFailed):
        await backend.put("b", "k", body(b"v2"), if_match=etag(b"other"))
    await backend.put("b", "k", body(b"v2"), if_match=etag(b"v1"))
    await backend.put("b", "k", body(b"v3"), if_match="*")
    assert await read_key(backend, "b", "k") == b"v3"


async def test_create_race_first_commit_wins(backend: StorageBackend) -> None:
    slow = Paused(b"slow")
    task = asyncio.create_task(backend.put("b", "k", slow.body(), mode="create"))
    await slow.started.wait()
    await backend.put("b", "k", body(b"fast"), mode="create")
    slow.release.set()
    with pytest.raises(PreconditionFailed) as exc:
        await task
    assert type(exc.value) is PreconditionFailed
    assert await read_key(backend, "b", "k") == b"fast"
    assert [e.key async for e in backend.list("b")] == ["k"]  # type: ignore[union-attr]


async def test_if_match_changed_during_upload(backend: StorageBackend) -> None:
    await backend.put("b", "k", body(b"v1"))
    slow = Paused(b"slow")
    task = asyncio.create_task(backend.put("b", "k", slow.body(), if_match=etag(b"v1")))
    await slow.started.wait()
    await backend.put("b", "k", body(b"v2"))
    slow.release.set()
    with pytest.raises(PreconditionFailed):
        await task
    assert await read_key(backend, "b", "k") == b"v2"


async def test_if_match_deleted_during_upload_conflicts(backend: StorageBackend) -> None:
    await backend.put("b", "k", body(b"v1"))
    slow = Paused(b"slow")
    task = asyncio.create_task(backend.put("b", "k", slow.body(), if_match=etag(b"v1")))
    await slow.started.wait()
    await backend.delete("b", "k")
    slow.release.set()
    with pytest.raises(ConditionalRequestConflict):
        await task
    with pytest.raises(NoSuchKey):
        await backend.head("b", "k")


async def test_failed_conditional_body_leaves_nothing(backend: StorageBackend) -> None:
    await backend.put("b", "k", body(b"old"))

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("client went away")

    for key, kwargs in [("k", {"if_match": etag(b"old")}), ("new", {"mode": "create"})]:
        with pytest.raises(RuntimeError):
            await backend.put(
                "b", key, PutBody(broken(), lambda: ObjectMetadata(etag="x")), **kwargs
            )  # type: ignore[arg-type]
    assert await read_key(backend, "b", "k") == b"old"
    assert [e.key async for e in backend.list("b")] == ["k"]  # type: ignore[union-attr]
    # The staging area is private and emptied: the bucket can be deleted.
    await backend.delete("b", "k")
    await backend.delete_bucket("b")
