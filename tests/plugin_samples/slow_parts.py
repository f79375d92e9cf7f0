"""A memory backend whose staged multipart parts read slowly, to test Complete's keep-alive.

- bucket ``slow``: each staged part waits 0.3 s before its bytes flow.
- bucket ``broken``: the same, and then the second part fails mid-stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from obstore.store import MemoryStore

from s3proxy.hookspecs import RegisterBackend, hookimpl
from s3proxy.storage.backend import GetResult
from s3proxy.storage.multipart import NAMESPACE
from s3proxy.storage.objectstore import ObstoreBackend

DELAY = 0.3


class SlowPartsBackend(ObstoreBackend):
    async def get(
        self, bucket: str, key: str, plan: Any = None, *, namespace: str = ""
    ) -> GetResult:
        result = await super().get(bucket, key, plan, namespace=namespace)
        if namespace == NAMESPACE and bucket in ("slow", "broken"):
            await asyncio.sleep(DELAY)
            if bucket == "broken" and key.endswith("/00002"):
                result.body = _fail(result.body)
        return result


async def _fail(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:
        yield chunk[:10]
        raise RuntimeError("backend read failed")


def make(settings: None) -> SlowPartsBackend:
    return SlowPartsBackend("slowparts", MemoryStore, sorted_listing=False)


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register("slowparts", make, description="slow staged parts (tests)")
