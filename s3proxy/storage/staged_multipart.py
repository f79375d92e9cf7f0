"""StagedMultipart: multipart uploads as objects in a bucket's private namespace.

Works over any StorageBackend. Layout in the namespace ``mpu`` (hidden from listings,
not counted for bucket emptiness, removed with the bucket)::

    u/<hex of key>/<upload id>      the upload record: an empty object whose metadata is
                                    the final object's (content headers, user metadata,
                                    storage class); its ``checksums`` hold the requested
                                    checksum ``algorithm`` and ``type``
    p/<upload id>/<part number:05>  a part: its bytes, ETag (MD5) and checksums

The key is hex-encoded in record names because hex keeps both byte order and prefixes:
records list in (key, upload id) order, and an S3 key prefix is a record-name prefix.
Upload ids start with the initiation time (fixed-width hex microseconds), so they sort in
initiation order within a key, as S3 lists them, and the expiry sweep can age any leftover
part from its name alone, even when its record is gone.

Complete streams the parts, in order, into one ``backend.put`` of the final object (an
atomic write: a failure leaves nothing behind), then deletes the record and the parts.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from datetime import UTC, datetime

import msgspec

from s3proxy.storage.backend import (
    NoSuchKey,
    ObjectInfo,
    ObjectMetadata,
    PutBody,
    PutMode,
    StorageBackend,
)
from s3proxy.storage.multipart import (
    NAMESPACE,
    EntityTooSmall,
    Finalize,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
    Part,
    SweepResult,
    Upload,
    multipart_etag,
)

_RECORDS = "u/"
_PARTS = "p/"
_ID = re.compile(r"[0-9a-f]{46}")
_TIME_DIGITS = 14
# Deletes in flight at once when discarding an upload's parts.
_DELETE_CONCURRENCY = 16


def new_upload_id(now: float | None = None) -> str:
    micros = int((time.time() if now is None else now) * 1_000_000)
    return f"{micros:0{_TIME_DIGITS}x}{secrets.token_hex(16)}"


def upload_time(upload_id: str) -> float:
    """Seconds since the epoch at which the upload was initiated."""
    return int(upload_id[:_TIME_DIGITS], 16) / 1_000_000


def _record_name(key: str, upload_id: str) -> str:
    return f"{_RECORDS}{key.encode().hex()}/{upload_id}"


def _parse_record_name(name: str) -> tuple[str, str] | None:
    hexkey, _, upload_id = name[len(_RECORDS) :].partition("/")
    if not _ID.fullmatch(upload_id):
        return None
    try:
        return bytes.fromhex(hexkey).decode(), upload_id
    except ValueError:
        return None


def _part_name(upload_id: str, number: int) -> str:
    return f"{_PARTS}{upload_id}/{number:05d}"


def _normalize_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


async def _empty() -> AsyncIterator[bytes]:
    nothing: tuple[bytes, ...] = ()
    for chunk in nothing:
        yield chunk


async def _gather_bounded(jobs: Iterable[Awaitable[None]]) -> None:
    limit = asyncio.Semaphore(_DELETE_CONCURRENCY)

    async def one(job: Awaitable[None]) -> None:
        async with limit:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


class StagedMultipart:
    """Multipart uploads as objects in the bucket's ``mpu`` namespace (see module doc)."""

    def __init__(self, backend: StorageBackend) -> None:
        self.backend = backend

    async def create(
        self,
        bucket: str,
        key: str,
        metadata: ObjectMetadata,
        checksum_algorithm: str | None = None,
        checksum_type: str | None = None,
    ) -> Upload:
        upload_id = new_upload_id()
        record = msgspec.structs.replace(metadata, etag="", checksums={}, part_sizes=[])
        if checksum_algorithm:
            record.checksums["algorithm"] = checksum_algorithm
        if checksum_type:
            record.checksums["type"] = checksum_type
        body = PutBody(chunks=_empty(), finish=lambda: record)
        await self.backend.put(bucket, _record_name(key, upload_id), body, namespace=NAMESPACE)
        return self._upload(bucket, key, upload_id, record)

    @staticmethod
    def _upload(bucket: str, key: str, upload_id: str, record: ObjectMetadata) -> Upload:
        meta = msgspec.structs.replace(record, checksums={})
        return Upload(
            bucket=bucket,
            key=key,
            upload_id=upload_id,
            initiated=datetime.fromtimestamp(upload_time(upload_id), UTC),
            metadata=meta,
            checksum_algorithm=record.checksums.get("algorithm"),
            checksum_type=record.checksums.get("type"),
        )

    async def upload(self, bucket: str, key: str, upload_id: str) -> Upload:
        if not _ID.fullmatch(upload_id):
            raise NoSuchUpload()
        try:
            info = await self.backend.head(
                bucket, _record_name(key, upload_id), namespace=NAMESPACE
            )
        except NoSuchKey:
            raise NoSuchUpload() from None
        return self._upload(bucket, key, upload_id, info.metadata)

    async def put_part(self, upload: Upload, number: int, body: PutBody) -> Part:
        name = _part_name(upload.upload_id, number)
        info = await self.backend.put(upload.bucket, name, body, namespace=NAMESPACE)
        return Part(number, info.size, info.etag, info.last_modified, info.metadata.checksums)

    async def parts(self, upload: Upload, after: int = 0) -> AsyncIterator[Part]:
        prefix = f"{_PARTS}{upload.upload_id}/"
        start = _part_name(upload.upload_id, after) if after > 0 else ""
        async for entry in self.backend.list(
            upload.bucket, prefix=prefix, start_after=start, namespace=NAMESPACE
        ):
            if isinstance(entry, str):
                continue
            number = entry.key[len(prefix) :]
            if number.isdigit():
                meta = entry.metadata
                yield Part(int(number), entry.size, meta.etag, entry.last_modified, meta.checksums)

    async def _choose(
        self, upload: Upload, requested: list[tuple[int, str]], min_part_size: int
    ) -> list[Part]:
        """The stored parts the Complete request names, checked against S3's rules."""
        numbers = [n for n, _ in requested]
        if any(b <= a for a, b in itertools.pairwise(numbers)):
            raise InvalidPartOrder()
        stored = {p.number: p async for p in self.parts(upload)}
        chosen: list[Part] = []
        for number, etag in requested:
            part = stored.get(number)
            if part is None or part.etag != _normalize_etag(etag):
                raise InvalidPart()
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < min_part_size:
                raise EntityTooSmall()
        return chosen

    async def complete(
        self,
        upload: Upload,
        requested: list[tuple[int, str]],
        min_part_size: int,
        finalize: Finalize,
        *,
        mode: PutMode = "overwrite",
        if_match: str | None = None,
    ) -> ObjectInfo:
        chosen = await self._choose(upload, requested, min_part_size)
        meta = msgspec.structs.replace(
            upload.metadata,
            etag=multipart_etag(chosen),
            checksums=finalize(upload, chosen),
            part_sizes=[p.size for p in chosen],
        )
        body = PutBody(chunks=self._concat(upload, chosen), finish=lambda: meta, metadata=meta)
        info = await self.backend.put(upload.bucket, upload.key, body, mode=mode, if_match=if_match)
        # The record goes first: from here on the upload no longer exists for clients,
        # and parts left by a crash are aged out by the sweep.
        await self._discard(upload)
        return info

    async def _concat(self, upload: Upload, parts: list[Part]) -> AsyncIterator[bytes]:
        """The chosen parts' bytes in order, one part open at a time."""
        for part in parts:

            def plan(info: ObjectInfo, part: Part = part) -> tuple[int, int]:
                # A part replaced since it was validated must not slip into the object.
                if info.etag != part.etag or info.size != part.size:
                    raise InvalidPart()
                return 0, info.size

            name = _part_name(upload.upload_id, part.number)
            try:
                result = await self.backend.get(upload.bucket, name, plan, namespace=NAMESPACE)
            except NoSuchKey:
                raise InvalidPart() from None
            try:
                async for chunk in result.body:
                    yield chunk
            finally:
                aclose = getattr(result.body, "aclose", None)
                if aclose is not None:
                    await aclose()

    async def abort(self, upload: Upload) -> None:
        await self._discard(upload)

    async def _discard(self, upload: Upload) -> None:
        bucket = upload.bucket
        await self.backend.delete(
            bucket, _record_name(upload.key, upload.upload_id), namespace=NAMESPACE
        )
        await self._delete_parts(bucket, upload.upload_id)

    async def _delete_parts(self, bucket: str, upload_id: str) -> int:
        prefix = f"{_PARTS}{upload_id}/"
        names = [
            e.key
            async for e in self.backend.list(bucket, prefix=prefix, namespace=NAMESPACE)
            if not isinstance(e, str)
        ]
        await _gather_bounded(self.backend.delete(bucket, n, namespace=NAMESPACE) for n in names)
        return len(names)

    async def uploads(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
    ) -> AsyncIterator[Upload | str]:
        start = ""
        if key_marker:
            # "~" sorts after every upload id: resume after all uploads of key_marker.
            after_id = upload_id_marker or "~"
            start = f"{_RECORDS}{key_marker.encode().hex()}/{after_id}"
        # Resuming after a common prefix must not yield it (or its keys) again.
        last_prefix = key_marker or None
        async for entry in self.backend.list(
            bucket,
            prefix=_RECORDS + prefix.encode().hex(),
            start_after=start,
            namespace=NAMESPACE,
        ):
            if isinstance(entry, str):
                continue
            parsed = _parse_record_name(entry.key)
            if parsed is None or not parsed[0].startswith(prefix):
                continue
            key, upload_id = parsed
            if delimiter:
                idx = key.find(delimiter, len(prefix))
                if idx >= 0:
                    common = key[: idx + len(delimiter)]
                    if common != last_prefix:
                        last_prefix = common
                        yield common
                    continue
            yield self._upload(bucket, key, upload_id, entry.metadata)

    async def sweep(self, bucket: str, max_age: float, now: float | None = None) -> SweepResult:
        cutoff = (time.time() if now is None else now) - max_age
        result = SweepResult()
        async for entry in self.backend.list(bucket, prefix=_RECORDS, namespace=NAMESPACE):
            parsed = None if isinstance(entry, str) else _parse_record_name(entry.key)
            if parsed is not None and upload_time(parsed[1]) < cutoff:
                await self.backend.delete(bucket, _record_name(*parsed), namespace=NAMESPACE)
                result.uploads += 1
        # Parts by upload id, so parts whose record is already gone (a crash, or a part
        # that landed while its upload was completed or aborted) age out too.
        async for entry in self.backend.list(
            bucket, prefix=_PARTS, delimiter="/", namespace=NAMESPACE
        ):
            if not isinstance(entry, str):
                continue
            upload_id = entry[len(_PARTS) : -1]
            if _ID.fullmatch(upload_id) and upload_time(upload_id) < cutoff:
                result.parts += await self._delete_parts(bucket, upload_id)
        return result
