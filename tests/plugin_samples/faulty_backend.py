"""A backend whose failures are chosen by the bucket name, to test error handling.

- bucket ``crash``: every object call raises an unexpected RuntimeError (a bug).
- bucket ``down``: every object call raises BackendUnavailable.
- bucket ``midstream``: GET streams some bytes, then fails.
Readiness fails when the environment variable FAULTY_NOT_READY is set.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from obstore.store import MemoryStore

from s3proxy.hookspecs import RegisterBackend, hookimpl
from s3proxy.storage.backend import BackendUnavailable, GetResult
from s3proxy.storage.objectstore import ObstoreBackend

SECRET = "internal-detail-that-must-not-leak"


class FaultyBackend(ObstoreBackend):
    def _fault(self, bucket: str) -> None:
        if bucket == "crash":
            raise RuntimeError(SECRET)
        if bucket == "down":
            raise BackendUnavailable(SECRET)

    async def check_ready(self) -> None:
        if os.environ.get("FAULTY_NOT_READY"):
            raise BackendUnavailable("probe failed")

    async def head(self, bucket: str, key: str, **kw: Any) -> Any:
        self._fault(bucket)
        return await super().head(bucket, key, **kw)

    async def get(self, bucket: str, key: str, plan: Any = None, **kw: Any) -> GetResult:
        self._fault(bucket)
        result = await super().get(bucket, key, plan, **kw)
        if bucket == "midstream":
            result.body = _fail_after_first(result.body)
        return result

    async def put(self, bucket: str, key: str, body: Any, **kw: Any) -> Any:
        self._fault(bucket)
        return await super().put(bucket, key, body, **kw)


async def _fail_after_first(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:
        yield chunk[: len(chunk) // 2]
        raise RuntimeError(SECRET)


def make(settings: None) -> FaultyBackend:
    return FaultyBackend("faulty", MemoryStore, sorted_listing=False)


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register("faulty", make, description="fails on purpose (tests)")
