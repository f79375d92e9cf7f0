"""A third-party storage layer and event sink, to prove the hooks.

- ``wrap_backend``: stores bytes upper-cased (a toy at-rest transform that keeps sizes,
  so ranges map one to one) and lower-cases them on the way out.
- ``make_event_sink``: appends every S3 event document as a JSON line to the file named
  by ``EVENTS_FILE``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from s3proxy.config import Config
from s3proxy.events import S3Event
from s3proxy.hookspecs import hookimpl
from s3proxy.storage.backend import GetResult, ObjectInfo, PutBody


class UpperLayer:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put(self, bucket: str, key: str, body: PutBody, **kw: Any) -> ObjectInfo:
        async def upper() -> AsyncIterator[bytes]:
            async for chunk in body.chunks:
                yield chunk.upper()

        def finish() -> Any:
            meta = body.finish()
            meta.layers = {**meta.layers, "upper": "1"}
            return meta

        return await self.inner.put(bucket, key, PutBody(upper(), finish), **kw)  # type: ignore[no-any-return]

    async def get(self, bucket: str, key: str, plan: Any = None, **kw: Any) -> GetResult:
        result: GetResult = await self.inner.get(bucket, key, plan, **kw)
        if result.info.metadata.layers.get("upper") == "1":
            result.body = _lower(result.body)
        return result


async def _lower(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:
        yield chunk.lower()


class FileSink:
    def __init__(self, path: str) -> None:
        self.path = path

    def publish(self, event: S3Event) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(event.document()) + "\n")


@hookimpl(tryfirst=True)
def wrap_backend(backend: Any, config: Config) -> UpperLayer:
    return UpperLayer(backend)


@hookimpl
def make_event_sink(config: Config) -> FileSink | None:
    path = os.environ.get("EVENTS_FILE")
    return FileSink(path) if path else None
