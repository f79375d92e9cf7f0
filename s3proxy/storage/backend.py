"""The storage contract every backend implements.

Handlers speak only this protocol; the one implementation over obstore lives in
``objectstore.py``. Keys here are S3 keys (any UTF-8 string); encoding them for the
backend is the backend's business.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

import msgspec


class StorageError(Exception):
    """Base of the errors a backend raises; the S3 layer maps each to an S3 error."""


class NoSuchBucket(StorageError):
    pass


class NoSuchKey(StorageError):
    pass


class BucketAlreadyExists(StorageError):
    pass


class BucketNotEmpty(StorageError):
    pass


class PreconditionFailed(StorageError):
    """A create-only or conditional write/read found the object in the wrong state."""


class ConditionalRequestConflict(PreconditionFailed):
    """A conditional write whose object was deleted while its body was uploading."""


class BackendUnavailable(StorageError):
    """The backend could not be reached or answered with a server-side failure."""


class ObjectMetadata(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    """What the proxy stores beside an object's bytes so that S3 semantics survive.

    Encoded with msgpack; new optional fields may be added, never renamed.
    """

    etag: str
    content_type: str | None = None
    content_encoding: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    cache_control: str | None = None
    expires: str | None = None
    user_metadata: dict[str, str] = {}
    checksums: dict[str, str] = {}
    storage_class: str | None = None
    #: Sizes of the parts of an object made by a multipart upload, in order (for
    #: GetObject/HeadObject ``partNumber``); empty for single-part objects.
    part_sizes: list[int] = []
    #: Per-object data of storage layers (``wrap_backend`` plugins), e.g. the size of
    #: an object before a transform; opaque to the S3 layer.
    layers: dict[str, str] = {}


@dataclass(slots=True)
class ObjectInfo:
    """An object as the S3 layer sees it (size and ETag are S3's, not the backend's)."""

    key: str
    size: int
    last_modified: datetime
    metadata: ObjectMetadata

    @property
    def etag(self) -> str:
        return self.metadata.etag


@dataclass(slots=True)
class BucketInfo:
    name: str
    created: datetime


@dataclass(slots=True)
class GetResult:
    """An open read: ``info`` describes the whole object, ``body`` streams ``range``."""

    info: ObjectInfo
    body: AsyncIterator[bytes]
    # Half-open byte range [start, end) of the object that ``body`` yields.
    range: tuple[int, int] = (0, 0)


@dataclass(slots=True)
class Capabilities:
    """What a backend can do; the S3 layer answers NotImplemented for the rest."""

    dynamic_buckets: bool = True
    extra: dict[str, bool] = field(default_factory=dict)


@dataclass(slots=True)
class PutBody:
    """An upload body plus the metadata the proxy learns only once it has been read.

    The backend pulls ``chunks`` while writing and calls ``finish()`` after the last
    chunk; ``finish`` verifies digests and returns the metadata to store. Raising from
    either aborts the write so that nothing becomes visible.
    """

    chunks: AsyncIterator[bytes]
    finish: FinishCallback
    #: The metadata known before the body (content type, user metadata), for layers
    #: that decide per object before reading it (e.g. compress text only). ``finish()``
    #: still returns the authoritative record.
    metadata: ObjectMetadata | None = None


ReadPlan = Callable[[ObjectInfo], tuple[int, int]]
PutMode = Literal["overwrite", "create"]


class FinishCallback(Protocol):
    def __call__(self) -> ObjectMetadata: ...


@runtime_checkable
class StorageBackend(Protocol):
    """An async object store organised in buckets.

    Object methods take ``namespace``: "" is the client's keys; any other name is a
    private area of the bucket (e.g. staged multipart parts) that never shows up in
    client listings, cannot be addressed by a client key, does not keep a bucket from
    being "empty", and is removed with the bucket.
    """

    name: str
    capabilities: Capabilities

    async def start(self) -> None:
        """Open clients. Called once per worker process, after the fork."""

    async def close(self) -> None:
        """Release clients and background tasks."""

    async def check_ready(self) -> None:
        """Raise BackendUnavailable if the backend cannot serve requests."""

    async def list_buckets(self) -> list[BucketInfo]: ...

    async def create_bucket(self, bucket: str) -> None:
        """Create an empty bucket; BucketAlreadyExists if it exists."""

    async def head_bucket(self, bucket: str) -> BucketInfo:
        """NoSuchBucket if the bucket does not exist."""

    async def delete_bucket(self, bucket: str) -> None:
        """NoSuchBucket / BucketNotEmpty as S3 defines them."""

    async def head(self, bucket: str, key: str, *, namespace: str = "") -> ObjectInfo:
        """NoSuchBucket or NoSuchKey when missing."""

    async def get(
        self, bucket: str, key: str, plan: ReadPlan | None = None, *, namespace: str = ""
    ) -> GetResult:
        """Open a read of the object.

        ``plan(info)`` is called with the object's info before any data is read; it
        returns the half-open byte range ``(start, end)`` to read (whole object when
        ``plan`` is None) or raises to refuse (e.g. a failed precondition). ``info`` and
        the bytes always belong to the same version of the object.
        """

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
        """Write an object atomically: on any error the previous object stays intact.

        ``mode="create"`` writes only if no object exists at the key; ``if_match`` only
        if the current object's S3 ETag equals it (``"*"``: any existing object). Both
        are checked before the body is read and again at commit, as atomically as the
        store allows. A failed check raises PreconditionFailed (NoSuchKey when
        ``if_match`` finds no object before the upload; ConditionalRequestConflict
        when the object was deleted during it).
        """

    async def delete(self, bucket: str, key: str, *, namespace: str = "") -> None:
        """Delete an object; deleting a missing key succeeds (S3 semantics)."""

    def list(
        self,
        bucket: str,
        prefix: str = "",
        start_after: str = "",
        delimiter: str = "",
        *,
        namespace: str = "",
    ) -> AsyncIterator[ObjectInfo | str]:
        """Entries whose key starts with ``prefix`` and sorts after ``start_after``, in
        UTF-8 byte order. With a delimiter, keys that contain it after the prefix are
        rolled up into their common prefix (a ``str``), yielded once; a ``start_after``
        that is itself a common prefix skips everything under it."""
