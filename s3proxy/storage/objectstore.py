"""ObstoreBackend: the one adapter from an obstore store to the StorageBackend contract.

Layout in the store: ``<bucket>/<encoded key>`` (see ``keys.py``), plus a reserved
marker object per bucket so that empty buckets exist until deleted.

Object format ("framed"): the object's bytes followed by a trailer::

    data || msgpack(ObjectMetadata) || u32be(len(metadata)) || b"S3P1"

The metadata (ETag = MD5, content headers, user metadata, checksums) is only known after
the body has streamed, so it goes at the end, and data plus metadata land in one atomic
write: a reader can never pair one version's bytes with another version's metadata, and
a crash mid-write leaves the previous object whole. Reads take the trailer with a suffix
range and then the data with ``if_match`` on the same backend ETag, retrying if the
object was replaced in between. Small objects come back whole in the first read.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import obstore
from obstore import exceptions as obx

from s3proxy.storage import keys
from s3proxy.storage.backend import (
    BackendUnavailable,
    BucketAlreadyExists,
    BucketInfo,
    BucketNotEmpty,
    Capabilities,
    ConditionalRequestConflict,
    GetResult,
    NoSuchBucket,
    NoSuchKey,
    ObjectInfo,
    ObjectMetadata,
    PreconditionFailed,
    PutBody,
    PutMode,
    ReadPlan,
    StorageError,
)
from s3proxy.storage.upload_budget import UPLOADS

MAGIC = b"S3P1"
_TAIL = struct.Struct(">I4s")
# One suffix read: enough for the trailer of nearly every object, and for small
# objects the whole file, which saves the second read.
HEAD_READ = 16 * 1024
STREAM_CHUNK = 1024 * 1024
# How many objects' trailers a listing reads at once.
LIST_PREFETCH = 32
_READ_RETRIES = 3
# Private namespace where conditional writes stage their body before the final rename.
STAGING_NAMESPACE = "conditional-put"

if TYPE_CHECKING:
    from obstore import ObjectMeta

_decoder = msgspec.msgpack.Decoder(ObjectMetadata)
_encoder = msgspec.msgpack.Encoder()

T = TypeVar("T")


def encode_trailer(meta: ObjectMetadata) -> bytes:
    blob = _encoder.encode(meta)
    return blob + _TAIL.pack(len(blob), MAGIC)


def _parse_tail(tail: bytes) -> int:
    """Total trailer length, from the last bytes of a framed object."""
    if len(tail) < _TAIL.size:
        raise StorageError("object is not in the s3proxy format (too short)")
    length: int
    magic: bytes
    length, magic = _TAIL.unpack(tail[-_TAIL.size :])
    if magic != MAGIC:
        raise StorageError("object is not in the s3proxy format (bad magic)")
    return length + _TAIL.size


async def _translate(coro: Awaitable[T], *, missing: type[StorageError] = NoSuchKey) -> T:
    """Run an obstore call, mapping its exceptions onto the storage contract."""
    try:
        return await coro
    except (obx.NotFoundError, FileNotFoundError) as exc:
        raise missing() from exc
    except obx.AlreadyExistsError as exc:
        raise PreconditionFailed() from exc
    except obx.PreconditionError as exc:
        raise PreconditionFailed() from exc
    except (obx.GenericError, obx.PermissionDeniedError, obx.UnauthenticatedError) as exc:
        raise BackendUnavailable(type(exc).__name__) from exc


class ObstoreBackend:
    """StorageBackend over any obstore store whose buckets are top-level folders.

    ``filesystem`` selects the key layout for stores backed by a real directory tree.
    ``sorted_listing`` says whether the store lists in key order (object stores do;
    the local filesystem does not, so its listings are collected and sorted).
    """

    def __init__(
        self,
        name: str,
        store_factory: Callable[[], Any],
        *,
        filesystem: bool = False,
        sorted_listing: bool = True,
    ) -> None:
        self.name = name
        self.capabilities = Capabilities(dynamic_buckets=True)
        self._store_factory = store_factory
        self._store: Any = None
        self._fs = filesystem
        self._sorted = sorted_listing

    # -- lifecycle -----------------------------------------------------------------

    @property
    def store(self) -> Any:
        if self._store is None:
            # Stores are not fork-safe: build lazily, in the worker that uses them.
            self._store = self._store_factory()
        return self._store

    async def start(self) -> None:
        _ = self.store

    async def close(self) -> None:
        self._store = None

    async def check_ready(self) -> None:
        await _translate(obstore.list_with_delimiter_async(self.store, None))

    # -- paths ---------------------------------------------------------------------

    @staticmethod
    def _root(bucket: str, namespace: str) -> str:
        return f"{bucket}/{keys.reserved_name(namespace)}" if namespace else bucket

    def _path(self, bucket: str, key: str, namespace: str = "") -> str:
        return f"{self._root(bucket, namespace)}/{keys.encode_key(key, self._fs)}"

    @staticmethod
    def _marker(bucket: str) -> str:
        return f"{bucket}/{keys.reserved_name('bucket')}"

    # -- buckets -------------------------------------------------------------------

    async def list_buckets(self) -> builtins.list[BucketInfo]:
        listing = await _translate(obstore.list_with_delimiter_async(self.store, None))
        names = sorted(p.rstrip("/") for p in listing["common_prefixes"])
        found = await asyncio.gather(*(self._bucket_or_none(n) for n in names))
        return [b for b in found if b is not None]

    async def _bucket_or_none(self, bucket: str) -> BucketInfo | None:
        try:
            return await self.head_bucket(bucket)
        except NoSuchBucket:
            return None

    async def create_bucket(self, bucket: str) -> None:
        try:
            await _translate(
                obstore.put_async(self.store, self._marker(bucket), b"", mode="create")
            )
        except PreconditionFailed as exc:
            raise BucketAlreadyExists() from exc

    async def head_bucket(self, bucket: str) -> BucketInfo:
        meta = await _translate(
            obstore.head_async(self.store, self._marker(bucket)), missing=NoSuchBucket
        )
        return BucketInfo(name=bucket, created=meta["last_modified"])

    async def delete_bucket(self, bucket: str) -> None:
        await self.head_bucket(bucket)
        internal: builtins.list[str] = []
        async for batch in obstore.list(self.store, bucket, chunk_size=1000):
            for meta in batch:
                rel = meta["path"][len(bucket) + 1 :]
                if keys.decode_path(rel, self._fs) is not None:
                    raise BucketNotEmpty()
                internal.append(meta["path"])
        marker = self._marker(bucket)
        for path in internal:
            if path != marker:
                await _translate(obstore.delete_async(self.store, path))
        # The marker goes last: until then the bucket still exists and can be retried.
        await _translate(obstore.delete_async(self.store, marker), missing=NoSuchBucket)

    # -- objects -------------------------------------------------------------------

    async def _missing(self, bucket: str) -> StorageError:
        """NoSuchBucket when the bucket is gone, else NoSuchKey."""
        try:
            await self.head_bucket(bucket)
        except NoSuchBucket as exc:
            return exc
        return NoSuchKey()

    async def _read_head(self, path: str) -> tuple[ObjectInfo, str | None, bytes | None]:
        """Read an object's trailer: (info, backend etag, whole data if it was small)."""
        res = await _translate(
            obstore.get_async(self.store, path, options={"range": {"suffix": HEAD_READ}})
        )
        buf = bytes(await res.bytes_async())
        total = res.meta["size"]
        etag = res.meta["e_tag"]
        trailer_len = _parse_tail(buf)
        if trailer_len > len(buf):
            if trailer_len > total:
                raise StorageError("object is not in the s3proxy format (bad trailer)")
            res = await _translate(
                obstore.get_async(
                    self.store,
                    path,
                    options={"range": (total - trailer_len, total), "if_match": etag},
                )
            )
            buf = bytes(await res.bytes_async())
        blob = buf[len(buf) - trailer_len : len(buf) - _TAIL.size]
        meta = _decoder.decode(blob)
        size = total - trailer_len
        info = ObjectInfo(key="", size=size, last_modified=res.meta["last_modified"], metadata=meta)
        whole = buf[: len(buf) - trailer_len] if len(buf) == total else None
        return info, etag, whole

    async def head(self, bucket: str, key: str, *, namespace: str = "") -> ObjectInfo:
        try:
            info, _, _ = await self._read_head(self._path(bucket, key, namespace))
        except NoSuchKey:
            raise await self._missing(bucket) from None
        info.key = key
        return info

    async def get(
        self, bucket: str, key: str, plan: ReadPlan | None = None, *, namespace: str = ""
    ) -> GetResult:
        path = self._path(bucket, key, namespace)
        for _ in range(_READ_RETRIES):
            try:
                info, etag, whole = await self._read_head(path)
            except NoSuchKey:
                raise await self._missing(bucket) from None
            info.key = key
            start, end = plan(info) if plan is not None else (0, info.size)
            if whole is not None or start >= end:
                data = whole[start:end] if whole is not None else b""
                return GetResult(info=info, body=_once(data), range=(start, end))
            try:
                res = await _translate(
                    obstore.get_async(
                        self.store, path, options={"range": (start, end), "if_match": etag}
                    )
                )
            except (PreconditionFailed, NoSuchKey):
                continue  # replaced or deleted between the two reads: read again
            return GetResult(
                info=info,
                body=_stream(res.stream(min_chunk_size=STREAM_CHUNK)),
                range=(start, end),
            )
        raise BackendUnavailable("object kept changing while being read")

    async def put(
        self,
        bucket: str,
        key: str,
        body: PutBody,
        *,
        namespace: str = "",
        mode: PutMode = "overwrite",
        if_match: str | None = None,
    ) -> ObjectInfo:
        await self.head_bucket(bucket)
        path = self._path(bucket, key, namespace)
        if mode == "overwrite" and if_match is None:
            size, meta = await self._write(path, body)
        else:
            size, meta = await self._put_conditional(bucket, path, body, mode, if_match)
        return ObjectInfo(key=key, size=size, last_modified=datetime.now(UTC), metadata=meta)

    async def _write(self, path: str, body: PutBody) -> tuple[int, ObjectMetadata]:
        """Stream ``body`` plus its trailer to ``path`` in one atomic write."""
        size = 0
        meta: ObjectMetadata | None = None

        async def framed() -> AsyncIterator[bytes]:
            nonlocal size, meta
            async for chunk in body.chunks:
                size += len(chunk)
                yield chunk
            meta = body.finish()
            yield encode_trailer(meta)

        with UPLOADS.lease() as shape:
            await _translate(
                obstore.put_async(
                    self.store,
                    path,
                    framed(),
                    chunk_size=shape.chunk_size,
                    max_concurrency=shape.max_concurrency,
                )
            )
        assert meta is not None
        return size, meta

    # -- conditional writes (If-None-Match: * / If-Match) ---------------------------
    #
    # obstore only honours put modes for single-request uploads, which would hold the
    # whole body in memory. So the body streams to a private staging object first and
    # is then moved into place: create-only with an atomic rename that refuses to
    # overwrite; If-Match by re-checking the S3 ETag just before the rename (a window
    # of one metadata read, since stores offer no compare-and-swap rename).

    async def _check_current(self, path: str, mode: PutMode, if_match: str | None) -> None:
        try:
            info, _, _ = await self._read_head(path)
        except NoSuchKey:
            if if_match is not None:
                raise
            return
        if mode == "create" or (if_match not in ("*", None) and info.etag != if_match):
            raise PreconditionFailed()

    async def _put_conditional(
        self, bucket: str, path: str, body: PutBody, mode: PutMode, if_match: str | None
    ) -> tuple[int, ObjectMetadata]:
        # Refuse before reading the body (and before a 100-continue goes out).
        await self._check_current(path, mode, if_match)
        staging = self._path(bucket, uuid.uuid4().hex, STAGING_NAMESPACE)
        try:
            size, meta = await self._write(staging, body)
            if mode == "create":
                await _translate(obstore.rename_async(self.store, staging, path, overwrite=False))
            else:
                try:
                    await self._check_current(path, mode, if_match)
                except NoSuchKey:
                    raise ConditionalRequestConflict() from None
                await _translate(obstore.rename_async(self.store, staging, path))
        finally:
            with contextlib.suppress(NoSuchKey):
                await _translate(obstore.delete_async(self.store, staging))
        return size, meta

    async def delete(self, bucket: str, key: str, *, namespace: str = "") -> None:
        with contextlib.suppress(NoSuchKey):
            await _translate(obstore.delete_async(self.store, self._path(bucket, key, namespace)))
        # S3 answers NoSuchBucket for a missing bucket even though deletes are idempotent.
        await self.head_bucket(bucket)

    # -- listing -------------------------------------------------------------------

    async def _list_paths(
        self, bucket: str, prefix: str, start_after: str, namespace: str
    ) -> AsyncIterator[tuple[str, ObjectMeta]]:
        """(key, obstore meta) of every object under prefix after start_after, in order."""
        root = self._root(bucket, namespace)
        directory = keys.dir_prefix_for(prefix, self._fs)
        base = f"{root}/{directory}" if directory else root
        cut = len(root) + 1

        async def raw() -> AsyncIterator[tuple[str, ObjectMeta]]:
            async for batch in obstore.list(self.store, base, chunk_size=1000):
                for meta in batch:
                    key = keys.decode_path(meta["path"][cut:], self._fs)
                    if key is not None and key.startswith(prefix) and key > start_after:
                        yield key, meta

        if self._sorted:
            async for item in raw():
                yield item
        else:
            items = [item async for item in raw()]
            items.sort(key=lambda kv: kv[0])
            for item in items:
                yield item

    async def list(
        self,
        bucket: str,
        prefix: str = "",
        start_after: str = "",
        delimiter: str = "",
        *,
        namespace: str = "",
    ) -> AsyncIterator[ObjectInfo | str]:
        """Objects and (with a delimiter) common prefixes, in key order.

        Keys rolled up into a common prefix are skipped without reading their metadata.
        """
        await self.head_bucket(bucket)
        # (key or common prefix, the object's listing entry; None for a prefix)
        pending: builtins.list[tuple[str, ObjectMeta | None]] = []
        # Resuming after a common prefix must not yield it (or its keys) again.
        last_prefix: str | None = start_after or None
        async for key, meta in self._list_paths(bucket, prefix, start_after, namespace):
            if delimiter:
                idx = key.find(delimiter, len(prefix))
                if idx >= 0:
                    common = key[: idx + len(delimiter)]
                    if common != last_prefix:
                        last_prefix = common
                        pending.append((common, None))
                    continue
            pending.append((key, meta))
            if len(pending) >= LIST_PREFETCH:
                for entry in await self._resolve(pending):
                    yield entry
                pending = []
        for entry in await self._resolve(pending):
            yield entry

    async def _resolve(
        self, pending: builtins.list[tuple[str, ObjectMeta | None]]
    ) -> builtins.list[ObjectInfo | str]:
        """Listing entries -> ObjectInfo (reading metadata, concurrently) or prefixes."""

        async def one(key: str, meta: ObjectMeta | None) -> ObjectInfo | str | None:
            if meta is None:
                return key
            try:
                info, _, _ = await self._read_head(meta["path"])
            except NoSuchKey:
                return None  # deleted since it was listed
            info.key = key
            return info

        resolved = await asyncio.gather(*(one(k, p) for k, p in pending))
        return [r for r in resolved if r is not None]


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


async def _stream(stream: Any) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield chunk
