"""NativeObstoreBackend: one cloud bucket/container, objects stored as plain cloud objects.

The built-in backends own their directory and store objects in the proxy's "framed"
format. A cloud bucket is shared with other tools, so here an object's bytes are exactly
the client's bytes and its S3 metadata lives in the cloud's own attributes
(``native_meta``). Existing objects are served as they are.

Layouts (one instance fronts one cloud bucket, optionally under a prefix that the
store applies, so it never reaches keys, listings or errors):

- ``single`` (``bucket`` given): the cloud bucket *is* one proxy bucket, named
  ``bucket``. It cannot be created or deleted through S3 (BucketConfigured).
- ``folders`` (``bucket`` None): every proxy bucket is a top-level folder with a marker
  object, created and deleted through S3, exactly like the built-in backends.

Writes. The S3 ETag is the MD5 of the bytes, known only once the body has streamed,
while a cloud takes an object's attributes when the upload starts. Hence:

- bodies up to ``buffer_limit`` are buffered, their metadata (ETag included) is known,
  and they go up in one request with their attributes;
- larger bodies stream into a native multipart upload whose only attribute is a
  reference to a metadata record. After the last byte, and *before* the upload is
  completed, the verified metadata is written as that record. The object therefore
  never exists without its record, and a failed upload leaves the previous version
  and its record untouched (records are per version: ``<area>/<hash(key)>/<token>``).
  Older versions' records are removed by later writes and deletes of the key.

Conditional writes use the store's atomic put modes for buffered bodies; streamed ones
are staged in the private area and copied into place after re-checking the condition
(copy-if-not-exists where the store has it).

Reads take the object's first bytes and attributes in one request (small objects come
back whole), then the planned range pinned to the same version with If-Match on the
backend ETag. Listings need no per-object read on S3 and GCS, whose backend ETag is the
MD5 for everything but streamed uploads (``native_meta.s3_etag``); on Azure, whose ETags
are opaque, each listed object's attributes are read (a page of entries at a time).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import obstore
from obstore import exceptions as obx

from s3proxy.storage import key_order, keys, native_meta, native_put
from s3proxy.storage.backend import (
    BackendUnavailable,
    BucketAlreadyExists,
    BucketInfo,
    Capabilities,
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
from s3proxy.storage.native_meta import MetadataRules, Record
from s3proxy.storage.objectstore import ObstoreBackend
from s3proxy.storage.obstore_errors import KeyTooLongForBackend, classify, translate
from s3proxy.storage.routing import BucketConfigured

if TYPE_CHECKING:
    from obstore import GetOptions, ObjectMeta

log = logging.getLogger("s3proxy.storage")

T = TypeVar("T")

#: Private area (namespace) of a bucket holding metadata records.
RECORDS = "meta"
# First read of a GET: small objects come back whole, larger ones give their attributes.
FIRST_READ = 64 * 1024
STREAM_CHUNK = 1024 * 1024
#: Bodies up to this size are buffered and written in one request with their metadata.
DEFAULT_BUFFER_LIMIT = 8 * 1024 * 1024
_READ_RETRIES = 3
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class NativeObstoreBackend(ObstoreBackend):
    """StorageBackend over one obstore cloud store, keeping objects in the native format.

    ``store_factory`` builds the store for metadata-sized requests (short timeout);
    ``stream_store_factory`` the one for bodies (timeouts that suit long transfers).
    ``max_path_bytes`` is the cloud's object name limit, ``prefix_bytes`` what the
    store's prefix adds to every name.
    """

    def __init__(
        self,
        name: str,
        store_factory: Callable[[], Any],
        *,
        rules: MetadataRules,
        bucket: str | None = None,
        stream_store_factory: Callable[[], Any] | None = None,
        buffer_limit: int = DEFAULT_BUFFER_LIMIT,
        max_path_bytes: int = 1024,
        prefix_bytes: int = 0,
        identity: str = "",
    ) -> None:
        super().__init__(name, store_factory, sorted_listing=True)
        self.capabilities = Capabilities(dynamic_buckets=bucket is None)
        self.rules = rules
        self.identity = identity
        self._single = bucket
        self._stream_factory = stream_store_factory or store_factory
        self._stream_store: Any = None
        self._buffer_limit = buffer_limit
        self._max_path = max_path_bytes - prefix_bytes

    @property
    def stream_store(self) -> Any:
        if self._stream_store is None:
            self._stream_store = self._stream_factory()
        return self._stream_store

    async def start(self) -> None:
        _ = self.store, self.stream_store

    async def close(self) -> None:
        self._store = self._stream_store = None

    async def _call(self, coro: Awaitable[T], missing: type[StorageError] = NoSuchKey) -> T:
        return await translate(coro, backend=self.name, identity=self.identity, missing=missing)

    async def check_ready(self) -> None:
        # The first page of a listing proves the bucket exists and the identity may read.
        stream = obstore.list(self.store, None, chunk_size=1)
        with contextlib.suppress(StopAsyncIteration):
            await self._call(anext(stream))

    # -- layout ------------------------------------------------------------------------

    def _base(self, bucket: str, namespace: str = "") -> str:
        root = "" if self._single is not None else f"{bucket}/"
        return f"{root}{keys.reserved_name(namespace)}/" if namespace else root

    def _root(self, bucket: str, namespace: str) -> str:  # type: ignore[override]
        return self._base(bucket, namespace).rstrip("/")

    def _path(self, bucket: str, key: str, namespace: str = "") -> str:
        path = self._base(bucket, namespace) + keys.encode_key(key, False)
        if len(path.encode()) > self._max_path:
            raise KeyTooLongForBackend()
        return path

    def _record_dir(self, bucket: str, key: str, namespace: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        return f"{self._base(bucket, namespace)}{keys.reserved_name(RECORDS)}/{digest}"

    # -- buckets -----------------------------------------------------------------------

    async def list_buckets(self) -> builtins.list[BucketInfo]:
        if self._single is not None:
            return [BucketInfo(name=self._single, created=EPOCH)]
        return await super().list_buckets()

    async def create_bucket(self, bucket: str) -> None:
        if self._single is None:
            return await super().create_bucket(bucket)
        if bucket == self._single:
            raise BucketAlreadyExists()
        raise BucketConfigured(f"backend {self.name} serves only the configured bucket")

    async def head_bucket(self, bucket: str) -> BucketInfo:
        if self._single is None:
            return await super().head_bucket(bucket)
        # The cloud bucket is configuration: its reachability is /_s3proxy/ready's job.
        if bucket != self._single:
            raise NoSuchBucket()
        return BucketInfo(name=bucket, created=EPOCH)

    async def delete_bucket(self, bucket: str) -> None:
        if self._single is None:
            return await super().delete_bucket(bucket)
        await self.head_bucket(bucket)
        raise BucketConfigured(f"backend {self.name} does not delete its cloud bucket")

    async def _missing(self, bucket: str) -> StorageError:
        try:
            await self.head_bucket(bucket)
        except NoSuchBucket as exc:
            return exc
        return NoSuchKey()

    # -- reading -----------------------------------------------------------------------

    async def _metadata(
        self, bucket: str, key: str, namespace: str, attrs: dict[str, str], etag: str | None
    ) -> ObjectMetadata:
        decoded = native_meta.decode(attrs, etag, self.rules)
        if isinstance(decoded, ObjectMetadata):
            return decoded
        path = f"{self._record_dir(bucket, key, namespace)}/{decoded}"
        record: Record | None = None
        with contextlib.suppress(NoSuchKey):
            res = await self._call(obstore.get_async(self.store, path))
            record = native_meta.decode_record(bytes(await res.bytes_async()))
        if record is None or record.token != decoded or record.key != key:
            # Only a delete racing a write of the same key gets here; serve the object
            # as a foreign one rather than fail every read of it.
            log.warning("backend %s: metadata record of an object is missing", self.name)
            fallback = native_meta.decode({}, etag, self.rules)
            assert isinstance(fallback, ObjectMetadata)
            return fallback
        meta = record.meta
        meta.etag = native_meta.s3_etag(self.rules, meta.etag, etag)
        return meta

    async def _info(
        self, bucket: str, key: str, namespace: str, res: Any
    ) -> tuple[ObjectInfo, str | None]:
        meta: ObjectMeta = res.meta
        md = await self._metadata(bucket, key, namespace, dict(res.attributes), meta["e_tag"])
        info = ObjectInfo(
            key=key, size=meta["size"], last_modified=meta["last_modified"], metadata=md
        )
        return info, meta["e_tag"]

    async def _first_read(
        self, bucket: str, key: str, namespace: str, path: str
    ) -> tuple[ObjectInfo, str | None, bytes | None]:
        """(info, backend ETag, the whole object when it was small)."""
        try:
            res = await obstore.get_async(self.store, path, options={"range": (0, FIRST_READ)})
            data = bytes(await res.bytes_async())
        except (obx.NotFoundError, FileNotFoundError):
            raise NoSuchKey() from None
        except obx.BaseError:
            # Most likely an empty object, which has no byte 0 to start a range at (416);
            # anything else fails again, and is reported, on the plain metadata read.
            res = await self._call(obstore.get_async(self.store, path, options={"head": True}))
            data = b""
        info, etag = await self._info(bucket, key, namespace, res)
        return info, etag, data if len(data) == info.size else None

    async def head(self, bucket: str, key: str, *, namespace: str = "") -> ObjectInfo:
        path = self._path(bucket, key, namespace)
        try:
            res = await self._call(obstore.get_async(self.store, path, options={"head": True}))
        except NoSuchKey:
            raise await self._missing(bucket) from None
        info, _ = await self._info(bucket, key, namespace, res)
        return info

    async def get(
        self, bucket: str, key: str, plan: ReadPlan | None = None, *, namespace: str = ""
    ) -> GetResult:
        path = self._path(bucket, key, namespace)
        for _ in range(_READ_RETRIES):
            try:
                info, etag, whole = await self._first_read(bucket, key, namespace, path)
            except NoSuchKey:
                raise await self._missing(bucket) from None
            start, end = plan(info) if plan is not None else (0, info.size)
            if whole is not None or start >= end:
                data = whole[start:end] if whole is not None else b""
                return GetResult(info=info, body=_once(data), range=(start, end))
            options: GetOptions = {"range": (start, end)}
            if etag:
                options["if_match"] = etag
            try:
                res = await self._call(obstore.get_async(self.stream_store, path, options=options))
            except (PreconditionFailed, NoSuchKey):
                continue  # replaced or deleted between the two reads: read again
            body = self._body(res.stream(min_chunk_size=STREAM_CHUNK))
            return GetResult(info=info, body=body, range=(start, end))
        raise BackendUnavailable("object kept changing while being read")

    async def _body(self, stream: Any) -> AsyncIterator[bytes]:
        try:
            async for chunk in stream:
                yield chunk
        except obx.BaseError as exc:
            # Headers are sent; the error only cuts the response, but its text must not
            # reach the log unscrubbed.
            raise classify(exc, backend=self.name, identity=self.identity) from None

    # -- writing (native_put.py) --------------------------------------------------------

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
        target = native_put.Target(bucket, key, namespace, path, mode, if_match)
        return await native_put.put(self, target, body)

    async def delete(self, bucket: str, key: str, *, namespace: str = "") -> None:
        if self._single is not None:
            await self.head_bucket(bucket)
        await native_put.delete(self, bucket, key, namespace)
        # S3 answers NoSuchBucket for a missing bucket even though deletes are idempotent.
        await self.head_bucket(bucket)

    # -- listing -----------------------------------------------------------------------

    async def _list_paths(
        self, bucket: str, prefix: str, start_after: str, namespace: str
    ) -> AsyncIterator[tuple[str, ObjectMeta]]:
        root = self._base(bucket, namespace)
        directory = keys.dir_prefix_for(prefix, False)
        base = f"{root}{directory}" if directory else root.rstrip("/")

        async def raw() -> AsyncIterator[tuple[str, str, ObjectMeta]]:
            stream = obstore.list(self.store, base or None, chunk_size=1000)
            while True:
                try:
                    batch = await self._call(anext(stream))
                except StopAsyncIteration:
                    return
                for meta in batch:
                    rel = meta["path"][len(root) :]
                    key = keys.decode_path(rel, False)
                    if key is not None and key.startswith(prefix) and key > start_after:
                        yield key, rel, meta

        async for key, meta in key_order.s3_order(raw()):
            yield key, meta

    async def _resolve(
        self, pending: builtins.list[tuple[str, ObjectMeta | None]]
    ) -> builtins.list[ObjectInfo | str]:
        """Entries whose backend ETag is the S3 ETag need no read; the rest are read at once."""
        out: builtins.list[ObjectInfo | str | None] = []
        reads: dict[int, Awaitable[ObjectInfo | None]] = {}
        for key, meta in pending:
            if meta is None:
                out.append(key)
                continue
            etag = native_meta.unquote_etag(meta["e_tag"])
            if self.rules.etag_is_md5 and native_meta.is_md5(etag):
                size, modified = meta["size"], meta["last_modified"]
                md = ObjectMetadata(etag=etag.lower())
                out.append(ObjectInfo(key=key, size=size, last_modified=modified, metadata=md))
                continue
            reads[len(out)] = self._head_path(key, meta["path"])
            out.append(None)
        results = await asyncio.gather(*reads.values())
        for index, info in zip(reads, results, strict=True):
            out[index] = info
        return [entry for entry in out if entry is not None]

    async def _head_path(self, key: str, path: str) -> ObjectInfo | None:
        bucket, namespace = self._locate(path)
        try:
            res = await self._call(obstore.get_async(self.store, path, options={"head": True}))
        except NoSuchKey:
            return None  # deleted since it was listed
        info, _ = await self._info(bucket, key, namespace, res)
        return info

    def _locate(self, path: str) -> tuple[str, str]:
        """(bucket, namespace) of a backend path produced by ``_path``."""
        parts = path.split("/")
        bucket = self._single if self._single is not None else parts.pop(0)
        namespace = ""
        if parts and parts[0].startswith(keys.RESERVED):
            namespace = parts[0][len(keys.RESERVED) :]
        return bucket or "", namespace


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data
