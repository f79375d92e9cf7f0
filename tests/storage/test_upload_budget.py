"""Streamed uploads share one budget for what obstore may buffer (``upload_budget.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from obstore.store import MemoryStore

from s3proxy.storage import upload_budget
from s3proxy.storage.backend import ObjectMetadata, PutBody
from s3proxy.storage.native import NativeObstoreBackend
from s3proxy.storage.native_meta import PLAIN_RULES
from s3proxy.storage.objectstore import ObstoreBackend
from s3proxy.storage.upload_budget import MIN_PART, SHAPES, UPLOADS, Shape, UploadBudget
from s3proxy.testing.backend_contract import Boom

MiB = 1024 * 1024
LARGEST, SMALLEST = SHAPES[0], SHAPES[-1]


def test_a_lone_upload_gets_parallel_parts() -> None:
    with UploadBudget().lease() as shape:
        assert shape == LARGEST
        assert shape.max_concurrency > 1


def test_uploads_past_the_budget_get_the_smallest_shape() -> None:
    budget = UploadBudget(4 * LARGEST.footprint)
    leases = [budget.lease() for _ in range(5)]
    shapes = [lease.__enter__() for lease in leases]
    assert shapes == [LARGEST] * 4 + [SMALLEST]
    # Uploads past the budget count too: one large upload ending leaves room for less.
    leases[0].__exit__(None, None, None)
    with budget.lease() as next_one:
        assert next_one == Shape(MIN_PART, 2)
    leases[1].__exit__(None, None, None)
    with budget.lease() as next_one:
        assert next_one == LARGEST
    for lease in leases[2:]:
        lease.__exit__(None, None, None)
    assert budget.reserved == 0


def test_a_smaller_parallel_shape_fills_what_is_left() -> None:
    budget = UploadBudget(LARGEST.footprint + 2 * MIN_PART)
    with budget.lease() as first, budget.lease() as second, budget.lease() as third:
        assert (first, second, third) == (LARGEST, Shape(MIN_PART, 2), SMALLEST)


def test_every_shape_makes_valid_s3_parts() -> None:
    assert all(shape.chunk_size >= MIN_PART and shape.max_concurrency >= 1 for shape in SHAPES)


def test_a_failed_upload_gives_its_share_back() -> None:
    budget = UploadBudget()
    with pytest.raises(RuntimeError), budget.lease():
        raise RuntimeError("upload failed")
    assert budget.reserved == 0


async def _body(size: int, seen: list[int], fail: bool = False) -> AsyncIterator[bytes]:
    for _ in range(size // MiB):
        seen.append(UPLOADS.reserved)
        yield b"x" * MiB
    if fail:
        raise Boom("client went away")


def _meta() -> ObjectMetadata:
    return ObjectMetadata(etag="0" * 32)


@pytest.mark.parametrize("backend_kind", ["native", "framed"])
async def test_a_streamed_put_reserves_its_shape_while_it_runs(backend_kind: str) -> None:
    store = MemoryStore()
    backend: ObstoreBackend
    if backend_kind == "native":
        backend = NativeObstoreBackend("n", lambda: store, rules=PLAIN_RULES, buffer_limit=MiB)
    else:
        backend = ObstoreBackend("f", lambda: store)
    await backend.create_bucket("b")
    before = UPLOADS.reserved
    seen: list[int] = []
    await backend.put("b", "k", PutBody(chunks=_body(4 * MiB, seen), finish=_meta))
    assert seen[-1] == before + LARGEST.footprint
    assert UPLOADS.reserved == before

    seen.clear()
    with pytest.raises(Boom):
        await backend.put("b", "k2", PutBody(chunks=_body(4 * MiB, seen, fail=True), finish=_meta))
    assert UPLOADS.reserved == before


def test_the_process_shares_one_budget() -> None:
    assert upload_budget.UPLOADS.budget == upload_budget.BUDGET >= LARGEST.footprint
