"""S3 operation handlers, one module per operation family.

A handler takes an ``S3Request`` and returns an ``S3Response``; it speaks only to the
``StorageBackend`` on the request. ``all_handlers()`` is the dispatch table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from s3proxy.s3.errors import from_storage
from s3proxy.s3.http import S3Request, S3Response
from s3proxy.storage.backend import StorageError

Handler = Callable[[S3Request], Awaitable[S3Response]]
Handlers = dict[str, Handler]

# The single owner every bucket and object reports (there are no ACLs behind the proxy).
OWNER_ID = hashlib.sha256(b"s3proxy").hexdigest()
OWNER_NAME = "s3proxy"


def owner() -> list[tuple[str, str]]:
    return [("ID", OWNER_ID), ("DisplayName", OWNER_NAME)]


def bucket_and_key(req: S3Request) -> tuple[str, str]:
    assert req.bucket is not None and req.key is not None  # guaranteed by dispatch
    return req.bucket, req.key


@contextmanager
def storage_errors(bucket: str, key: str = "") -> Iterator[None]:
    """Turn backend errors raised inside the block into S3 errors."""
    try:
        yield
    except StorageError as exc:
        raise from_storage(exc, bucket=bucket, key=key) from exc


def all_handlers() -> Handlers:
    from s3proxy.s3.operations import (
        bucket_config,
        buckets,
        copy,
        delete,
        listing,
        multipart,
        multipart_listing,
        objects,
        post_object,
    )

    return {
        **buckets.HANDLERS,
        **bucket_config.HANDLERS,
        **listing.HANDLERS,
        **objects.HANDLERS,
        **copy.HANDLERS,
        **delete.HANDLERS,
        **multipart.HANDLERS,
        **multipart_listing.HANDLERS,
        **post_object.HANDLERS,
    }
