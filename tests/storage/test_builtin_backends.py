"""The built-in local and memory backends against the shared backend contract."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from s3proxy.storage.backend import StorageBackend
from s3proxy.storage.builtin import LocalSettings, make_local, make_memory
from s3proxy.testing.backend_contract import BackendContract, make_body, read_key


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[StorageBackend]:
        backend = make_memory(None)
        await backend.start()
        yield backend
        await backend.close()


class TestLocalBackend(BackendContract):
    @pytest.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[StorageBackend]:
        backend = make_local(LocalSettings(path=str(tmp_path)))
        await backend.start()
        yield backend
        await backend.close()


async def test_local_persists_across_instances(tmp_path: Path) -> None:
    first = make_local(LocalSettings(path=str(tmp_path)))
    await first.start()
    await first.create_bucket("kept")
    await first.create_bucket("empty")
    body = make_body(b"persisted", content_type="text/plain", user_metadata={"k": "v"})
    await first.put("kept", "dir/", body)
    await first.close()

    second = make_local(LocalSettings(path=str(tmp_path)))
    await second.start()
    assert [b.name for b in await second.list_buckets()] == ["empty", "kept"]
    head = await second.head("kept", "dir/")
    assert head.metadata == body.finish()
    assert await read_key(second, "kept", "dir/") == b"persisted"
    assert [e async for e in second.list("empty")] == []
    await second.close()


@pytest.mark.parametrize("unit", ["k", "é", "\x01"])
async def test_local_max_length_key_fits_the_filesystem(tmp_path: Path, unit: str) -> None:
    backend = make_local(LocalSettings(path=str(tmp_path)))
    await backend.start()
    await backend.create_bucket("b")
    key = unit * (1024 // len(unit.encode()))
    await backend.put("b", key, make_body(b"long"))
    assert await read_key(backend, "b", key) == b"long"
    assert [e.key async for e in backend.list("b") if not isinstance(e, str)] == [key]
    names = [name for _, dirs, files in os.walk(tmp_path) for name in dirs + files]
    assert max(len(os.fsencode(name)) for name in names) <= 255
    await backend.close()


async def test_local_streams_large_objects(tmp_path: Path) -> None:
    backend = make_local(LocalSettings(path=str(tmp_path)))
    await backend.start()
    await backend.create_bucket("b")
    data = os.urandom(6 * 1024 * 1024)
    await backend.put("b", "big", make_body(data))
    got = await backend.get("b", "big")
    chunks = [chunk async for chunk in got.body]
    assert b"".join(chunks) == data
    # Memory stays bounded: the file is read in pieces, not whole.
    assert len(chunks) > 1
    await backend.close()
