"""Writes in the native object format: buffered or streamed puts, write conditions,
metadata records and their clean-up (see ``native.py`` for the strategy)."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import obstore
from obstore import exceptions as obx

from s3proxy.storage import native_meta
from s3proxy.storage.backend import (
    ConditionalRequestConflict,
    NoSuchKey,
    ObjectInfo,
    ObjectMetadata,
    PreconditionFailed,
    PutBody,
    PutMode,
)
from s3proxy.storage.native_meta import Record
from s3proxy.storage.upload_budget import MIN_PART, UPLOADS

if TYPE_CHECKING:
    from s3proxy.storage.native import NativeObstoreBackend

T = TypeVar("T")

STAGING = "stage"
# Records younger than this survive a write's clean-up of older versions' records: a
# concurrent writer of the same key may have written its record and not completed yet.
RECORD_GRACE = timedelta(minutes=15)


@dataclass(slots=True)
class Target:
    """Where and under which condition one put lands."""

    bucket: str
    key: str
    namespace: str
    path: str
    mode: PutMode
    if_match: str | None
    #: Backend ETag and version of the object the condition was checked against.
    current: tuple[str, str | None] | None = None

    @property
    def conditional(self) -> bool:
        return self.mode == "create" or self.if_match is not None


async def take(chunks: AsyncIterator[bytes], limit: int) -> bytes | AsyncIterator[bytes]:
    """The whole body if it is at most ``limit`` bytes, else an iterator over all of it.

    The iterator first passes on the chunks read here, letting go of each as it does: an
    upload then holds only what its store has not sent yet (no copy of the first bytes
    kept for the length of the upload).
    """
    read: list[bytes] = []
    held = 0
    it = aiter(chunks)
    async for chunk in it:
        read.append(chunk)
        held += len(chunk)
        if held > limit:
            return _replay(read, it)
    return b"".join(read)


async def _replay(read: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    read.reverse()
    while read:
        yield read.pop()
    async for chunk in rest:
        yield chunk


def _token() -> str:
    return secrets.token_hex(12)


async def _head(b: NativeObstoreBackend, path: str) -> Any | None:
    try:
        return await b._call(obstore.get_async(b.store, path, options={"head": True}))
    except NoSuchKey:
        return None


async def check_before(b: NativeObstoreBackend, t: Target) -> None:
    """Refuse a conditional write before any of its body is read."""
    res = await _head(b, t.path)
    if res is None:
        if t.if_match is not None:
            raise NoSuchKey()
        return
    if t.mode == "create":
        raise PreconditionFailed()
    info, etag = await b._info(t.bucket, t.key, t.namespace, res)
    if t.if_match != "*" and info.etag != t.if_match:
        raise PreconditionFailed()
    t.current = (etag or "", res.meta.get("version"))


async def _check_again(b: NativeObstoreBackend, t: Target) -> None:
    """The condition still holds for the version checked before the upload."""
    res = await _head(b, t.path)
    if res is None:
        if t.if_match is not None:
            raise ConditionalRequestConflict()
        return
    if t.mode == "create" or t.current is None or res.meta["e_tag"] != t.current[0]:
        raise PreconditionFailed()


def _put_mode(t: Target) -> Any:
    if t.mode == "create":
        return "create"
    if t.if_match is not None and t.current is not None:
        etag, version = t.current
        return {"e_tag": etag, "version": version} if version else {"e_tag": etag}
    return None


async def write_record(
    b: NativeObstoreBackend, t: Target, token: str, meta: ObjectMetadata
) -> None:
    path = f"{b._record_dir(t.bucket, t.key, t.namespace)}/{token}"
    blob = native_meta.encode_record(Record(token=token, key=t.key, meta=meta))
    await b._call(obstore.put_async(b.store, path, blob, use_multipart=False))


async def drop_records(
    b: NativeObstoreBackend, bucket: str, key: str, namespace: str, keep: str | None = None
) -> None:
    """Delete the key's metadata records; with ``keep``, those older than its record."""
    directory = b._record_dir(bucket, key, namespace)
    found: list[tuple[str, datetime]] = []
    stream = obstore.list(b.store, directory, chunk_size=100)
    while True:
        try:
            batch = await b._call(anext(stream))
        except StopAsyncIteration:
            break
        found.extend((m["path"], m["last_modified"]) for m in batch)
    cutoff = datetime.max.replace(tzinfo=UTC)
    if keep is not None:
        mine = [modified for path, modified in found if path.endswith("/" + keep)]
        cutoff = (mine[0] if mine else datetime.now(UTC)) - RECORD_GRACE
    for path, modified in found:
        if (keep is None or not path.endswith("/" + keep)) and modified < cutoff:
            with contextlib.suppress(NoSuchKey):
                await b._call(obstore.delete_async(b.store, path))


class _Unsupported(Exception):
    """The store lacks the operation (told apart before error translation)."""


async def _supported(coro: Awaitable[T]) -> T:
    try:
        return await coro
    except obx.NotSupportedError:
        raise _Unsupported() from None


async def _commit_staged(b: NativeObstoreBackend, t: Target, staged: str) -> None:
    """Move a staged upload into place if the write condition still holds."""
    try:
        await _check_again(b, t)
        if t.mode == "create":
            copy = obstore.copy_async(b.stream_store, staged, t.path, overwrite=False)
            try:
                await b._call(_supported(copy))
                return
            except _Unsupported:
                pass  # e.g. S3: the check just above is the best the store allows
        await b._call(obstore.copy_async(b.stream_store, staged, t.path))
    finally:
        with contextlib.suppress(NoSuchKey):
            await b._call(obstore.delete_async(b.store, staged))


async def _final_etag(b: NativeObstoreBackend, t: Target, result: Any, staged: bool) -> str | None:
    if not staged:
        etag: str | None = result.get("e_tag")
        return etag
    res = await _head(b, t.path)
    return res.meta["e_tag"] if res is not None else None


async def put(b: NativeObstoreBackend, t: Target, body: PutBody) -> ObjectInfo:
    if t.conditional:
        await check_before(b, t)
    head = await take(body.chunks, b._buffer_limit)
    staging = f"{b._base(t.bucket, STAGING)}{_token()}"
    if isinstance(head, bytes):
        size = len(head)
        meta = body.finish()
        # A multipart result's ETag is not the MD5 of its bytes: upload it in parts so that
        # the backend ETag does not pass for one (see native_meta.s3_etag).
        # (An empty ETag marks an internal object whose ETag means nothing.)
        md5 = hashlib.md5(head).hexdigest()
        multipart = b.rules.etag_is_md5 and bool(meta.etag) and meta.etag != md5
        attrs = native_meta.encode(meta, b.rules)
        token = None
        if attrs is None:
            token = _token()
            await write_record(b, t, token, meta)
            attrs = native_meta.reference(meta, token)
        staged = t.conditional and multipart
        target = staging if staged else t.path
        if multipart:
            chunk = max(len(head), MIN_PART)
            call = obstore.put_async(
                b.stream_store, target, head, attributes=attrs, use_multipart=True, chunk_size=chunk
            )
        else:
            mode = _put_mode(t)
            call = obstore.put_async(
                b.stream_store, target, head, attributes=attrs, use_multipart=False, mode=mode
            )
        try:
            result = await b._call(call)
        except PreconditionFailed:
            if t.if_match is not None and await _head(b, t.path) is None:
                raise ConditionalRequestConflict() from None
            raise
    else:
        staged = t.conditional
        target = staging if staged else t.path
        token = _token()
        written: dict[str, Any] = {"size": 0}

        async def stream(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            async for chunk in chunks:
                written["size"] += len(chunk)
                yield chunk
            written["meta"] = final = body.finish()
            # Before the upload completes: the object never exists without its record.
            await write_record(b, t, token, final)

        with UPLOADS.lease() as shape:
            result = await b._call(
                obstore.put_async(
                    b.stream_store,
                    target,
                    stream(head),
                    attributes=native_meta.reference(None, token),
                    chunk_size=shape.chunk_size,
                    max_concurrency=shape.max_concurrency,
                )
            )
        size, meta = written["size"], written["meta"]
    if staged:
        await _commit_staged(b, t, staging)
    if token is not None:
        await drop_records(b, t.bucket, t.key, t.namespace, keep=token)
    etag = native_meta.s3_etag(b.rules, meta.etag, await _final_etag(b, t, result, staged))
    meta = msgspec.structs.replace(meta, etag=etag)
    return ObjectInfo(key=t.key, size=size, last_modified=datetime.now(UTC), metadata=meta)


async def delete(b: NativeObstoreBackend, bucket: str, key: str, namespace: str) -> None:
    path = b._path(bucket, key, namespace)
    with contextlib.suppress(NoSuchKey):
        await b._call(obstore.delete_async(b.store, path))
    await drop_records(b, bucket, key, namespace)


__all__ = ["STAGING", "Target", "delete", "drop_records", "put", "take", "write_record"]
