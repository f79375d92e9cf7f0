"""What the cloud backend plugins share: common settings and building the backend.

Each plugin (s3proxy-aws, s3proxy-azure, s3proxy-gcp) subclasses ``CloudSettings`` with
its cloud's fields and hands ``make_backend`` a function that builds its obstore store.
Two stores are built per backend, in each worker at start (stores are not fork-safe):
one for metadata-sized requests, whose whole-request timeout is short, and one for
bodies, whose timeout allows long transfers while a read timeout catches stalls.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

import msgspec

from s3proxy.config import ConfigError
from s3proxy.storage.native import DEFAULT_BUFFER_LIMIT, NativeObstoreBackend
from s3proxy.storage.native_meta import MetadataRules

Seconds = Annotated[float, msgspec.Meta(gt=0)]
#: Longest object name the three clouds accept (S3 and GCS: bytes; Azure: characters).
MAX_NAME_BYTES = 1024

#: ``build(client_options, retry_config)`` -> an obstore store.
StoreBuilder = Callable[[dict[str, Any], dict[str, Any]], Any]


class CloudSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings every cloud backend has (see docs/backends.md)."""

    #: Key prefix inside the cloud bucket; never visible to clients.
    prefix: str = ""
    #: "single": the cloud bucket is one proxy bucket, named like it (routes rename it);
    #: "folders": each proxy bucket is a folder under ``prefix``, created through S3.
    layout: Literal["single", "folders"] = "single"
    #: Endpoint URL (development and emulators only).
    endpoint: str = ""
    #: Allow plain-HTTP endpoints (development and emulators only).
    allow_http: bool = False
    #: Seconds to establish a connection to the cloud.
    connect_timeout: Seconds = 5.0
    #: Whole-request limit of metadata requests (HEAD, LIST, DELETE, small writes).
    request_timeout: Seconds = 30.0
    #: Whole-request limit of a body transfer (GET body, streamed PUT).
    transfer_timeout: Seconds = 3600.0
    #: Longest pause between two reads of a body before the transfer is abandoned.
    read_timeout: Seconds = 60.0
    #: Retries of failed requests (5xx, throttling, timeouts of idempotent requests).
    max_retries: Annotated[int, msgspec.Meta(ge=0)] = 10
    #: No retry starts after this many seconds from the first attempt.
    retry_timeout: Seconds = 180.0
    #: Bodies up to this size go up in one request with all their metadata; larger ones
    #: stream as a multipart upload with a metadata record (docs/backends.md).
    buffer_limit: Annotated[int, msgspec.Meta(ge=0)] = DEFAULT_BUFFER_LIMIT
    #: Further obstore HTTP client options (``ClientConfig``), e.g. ``proxy_url``.
    client_options: dict[str, str] = {}
    #: Further obstore store options for this cloud, e.g. ``server_side_encryption``.
    options: dict[str, str] = {}


def client_options(settings: CloudSettings, *, stream: bool) -> dict[str, Any]:
    total = settings.transfer_timeout if stream else settings.request_timeout
    opts: dict[str, Any] = {
        "connect_timeout": timedelta(seconds=settings.connect_timeout),
        "timeout": timedelta(seconds=total),
        "allow_http": settings.allow_http,
    }
    if stream:
        opts["read_timeout"] = timedelta(seconds=settings.read_timeout)
    opts.update(settings.client_options)
    return opts


def retry_config(settings: CloudSettings) -> dict[str, Any]:
    return {
        "max_retries": settings.max_retries,
        "retry_timeout": timedelta(seconds=settings.retry_timeout),
    }


def require(value: str, field: str, backend: str) -> str:
    if not value:
        raise ConfigError(f"invalid config backends.{backend}.{field}: required")
    return value


def make_backend(
    name: str,
    settings: CloudSettings,
    *,
    bucket: str,
    rules: MetadataRules,
    build: StoreBuilder,
    identity: str,
) -> NativeObstoreBackend:
    """The NativeObstoreBackend for one cloud bucket (no I/O: stores are built at start)."""
    prefix = settings.prefix.strip("/")
    retries = retry_config(settings)
    return NativeObstoreBackend(
        name,
        lambda: build(client_options(settings, stream=False), retries),
        stream_store_factory=lambda: build(client_options(settings, stream=True), retries),
        rules=rules,
        bucket=bucket if settings.layout == "single" else None,
        buffer_limit=settings.buffer_limit,
        max_path_bytes=MAX_NAME_BYTES,
        prefix_bytes=len(prefix.encode()) + 1 if prefix else 0,
        identity=identity,
    )


def store_prefix(settings: CloudSettings) -> str | None:
    return settings.prefix.strip("/") or None
