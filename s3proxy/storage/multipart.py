"""Multipart uploads: the engine contract the S3 handlers use, and expiry sweeps.

No upload state lives in process memory: an engine keeps it in the backend, so every
replica, and a restarted proxy, sees the same uploads. The default engine,
``StagedMultipart`` (``staged_multipart.py``), stages parts as objects in the bucket's
private ``mpu`` namespace and works over any StorageBackend; a backend with a native
mechanism (S3 multipart, Azure block lists, GCS compose) can offer its own engine by
having a ``multipart_engine()`` method (see ``engine_for``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from s3proxy.storage.backend import (
    ObjectInfo,
    ObjectMetadata,
    PutBody,
    PutMode,
    StorageBackend,
    StorageError,
)

log = logging.getLogger("s3proxy.multipart")

NAMESPACE = "mpu"
MAX_PART_NUMBER = 10000
MAX_PART_SIZE = 5 * 1024**3


class MultipartError(StorageError):
    """A multipart rule was broken; ``code`` is the S3 error code it maps to."""

    code = "InternalError"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class NoSuchUpload(MultipartError):
    code = "NoSuchUpload"


class InvalidPart(MultipartError):
    code = "InvalidPart"


class InvalidPartOrder(MultipartError):
    code = "InvalidPartOrder"


class EntityTooSmall(MultipartError):
    code = "EntityTooSmall"


@dataclass(slots=True)
class Upload:
    """An upload in progress: where it goes and what the final object will carry."""

    bucket: str
    key: str
    upload_id: str
    initiated: datetime
    #: The final object's metadata (its ``etag`` and ``checksums`` are filled at Complete).
    metadata: ObjectMetadata
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclass(slots=True)
class Part:
    number: int
    size: int
    etag: str
    last_modified: datetime
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SweepResult:
    uploads: int = 0
    parts: int = 0


#: Called by Complete with the parts chosen, before any byte is written; returns the
#: final object's checksums or raises (e.g. a part checksum the client disputes).
Finalize = Callable[[Upload, list[Part]], dict[str, str]]


class MultipartEngine(Protocol):
    """What the S3 handlers need from a multipart implementation.

    ``StagedMultipart`` implements it over any StorageBackend. A backend with a native
    mechanism (S3 multipart, Azure block lists, GCS compose) offers its own through a
    ``multipart_engine()`` method; see ``engine_for``.
    """

    async def create(
        self,
        bucket: str,
        key: str,
        metadata: ObjectMetadata,
        checksum_algorithm: str | None = None,
        checksum_type: str | None = None,
    ) -> Upload: ...

    async def upload(self, bucket: str, key: str, upload_id: str) -> Upload:
        """The upload, or NoSuchUpload (also when it belongs to another key)."""

    async def put_part(self, upload: Upload, number: int, body: PutBody) -> Part:
        """Store (or replace) a part; the body's ``finish`` supplies ETag and checksums."""

    def parts(self, upload: Upload, after: int = 0) -> AsyncIterator[Part]:
        """Parts numbered above ``after``, in order."""

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
        """Assemble the ``requested`` (part number, ETag) parts into the object.

        ``mode`` and ``if_match`` make the final write conditional, as in
        ``StorageBackend.put``.
        """

    async def abort(self, upload: Upload) -> None: ...

    def uploads(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
    ) -> AsyncIterator[Upload | str]:
        """Uploads in (key, initiation) order and, with a delimiter, common prefixes."""

    async def sweep(self, bucket: str, max_age: float, now: float | None = None) -> SweepResult:
        """Remove uploads (and stray parts) initiated more than ``max_age`` seconds ago."""


def engine_for(backend: StorageBackend) -> MultipartEngine:
    """The backend's native multipart engine when it has one, else staged parts."""
    native = getattr(backend, "multipart_engine", None)
    if callable(native):
        engine: MultipartEngine = native()
        return engine
    from s3proxy.storage.staged_multipart import StagedMultipart

    return StagedMultipart(backend)


def multipart_etag(parts: Iterable[Part]) -> str:
    """S3's multipart ETag: MD5 of the concatenated binary part MD5s, then ``-N``."""
    digest = hashlib.md5()
    count = 0
    for part in parts:
        digest.update(bytes.fromhex(part.etag))
        count += 1
    return f"{digest.hexdigest()}-{count}"


async def sweep_all(backend: StorageBackend, max_age: float) -> SweepResult:
    """Run the expiry sweep over every bucket of the backend."""
    engine = engine_for(backend)
    total = SweepResult()
    for bucket in await backend.list_buckets():
        try:
            found = await engine.sweep(bucket.name, max_age)
        except StorageError as exc:  # e.g. the bucket was deleted meanwhile
            log.warning("multipart sweep of bucket %s failed: %r", bucket.name, exc)
            continue
        total.uploads += found.uploads
        total.parts += found.parts
    return total


async def run_sweeper(backend: StorageBackend, max_age: float, interval: float) -> None:
    """Sweep every ``interval`` seconds, forever (cancel to stop).

    Every replica may run this: deletes are idempotent. The first sweep is delayed by a
    random fraction of the interval so that replicas started together spread out.
    """
    await asyncio.sleep(interval * (0.1 + 0.9 * secrets.randbelow(1000) / 1000))
    while True:
        try:
            found = await sweep_all(backend, max_age)
            if found.uploads or found.parts:
                log.info(
                    "multipart sweep removed %d uploads, %d staged parts",
                    found.uploads,
                    found.parts,
                )
        except Exception:
            log.exception("multipart sweep failed")
        await asyncio.sleep(interval)
