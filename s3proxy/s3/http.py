"""The request and response objects operation handlers work with (ASGI-independent)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from s3proxy.config import Config
from s3proxy.events import EventSink, S3Event

if TYPE_CHECKING:
    from s3proxy.auth import Principal
    from s3proxy.s3.post_policy import Policy
from s3proxy.s3.errors import S3Error
from s3proxy.storage.backend import StorageBackend

# Bodies are re-chunked to this size on the way in: fewer, larger writes to the backend.
BODY_CHUNK = 1024 * 1024


class ClientDisconnected(Exception):
    """The client went away before sending the whole body."""


async def _no_form(fields: dict[str, str]) -> Policy | None:
    raise S3Error("NotImplemented", "Form uploads are not available here.")


@dataclass(slots=True)
class S3Request:
    method: str
    operation: str
    bucket: str | None
    key: str | None
    # First value of each query parameter (S3 never repeats one meaningfully).
    query: dict[str, str]
    # Lower-case header names; repeated headers joined with ",".
    headers: dict[str, str]
    body: AsyncIterator[bytes]
    backend: StorageBackend
    request_id: str
    resource: str
    config: Config = field(default_factory=Config)
    #: The path and query exactly as received (before virtual-host mapping): what
    #: the client signed.
    raw_path: bytes = b"/"
    raw_query: bytes = b""
    #: Client address ("host:port"), for authorizers and the audit log.
    client: str = ""
    #: Set by authentication before the handler runs.
    principal: Principal | None = None
    #: For PostObject, whose credentials travel in the form: authenticates and
    #: authorizes the form fields, returning the checked POST policy (None if unsigned).
    verify_form: Callable[[dict[str, str]], Awaitable[Policy | None]] = _no_form
    #: Event sinks (from ``make_event_sink``); see ``emit``.
    sinks: tuple[EventSink, ...] = ()

    def emit(self, name: str, key: str, size: int | None = None, etag: str | None = None) -> None:
        """Announce a committed change of ``key`` in this request's bucket."""
        if not self.sinks or self.bucket is None:
            return
        event = S3Event(
            name=name,
            bucket=self.bucket,
            key=key,
            request_id=self.request_id,
            region=self.region,
            principal=self.principal.name if self.principal else "anonymous",
            source_ip=self.client.rsplit(":", 1)[0],
            size=size,
            etag=etag,
        )
        for sink in self.sinks:
            sink.publish(event)

    @property
    def region(self) -> str:
        return self.config.s3.region

    @property
    def content_length(self) -> int | None:
        raw = self.headers.get("content-length")
        if raw is None:
            return None
        if not raw.isdigit():
            raise S3Error("InvalidArgument", "Invalid Content-Length", resource=self.resource)
        return int(raw)


@dataclass(slots=True)
class S3Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | AsyncIterator[bytes] = b""
    # For streamed bodies: the length to announce (None -> chunked transfer).
    content_length: int | None = None
    #: A document the proxy wrote (listing, result, error), never object bytes: only
    #: these may be compressed.
    document: bool = False


def xml_response(body: bytes, status: int = 200) -> S3Response:
    return S3Response(
        status=status, headers=[("content-type", "application/xml")], body=body, document=True
    )


async def rechunk(chunks: AsyncIterator[bytes], size: int = BODY_CHUNK) -> AsyncIterator[bytes]:
    """Coalesce small chunks into ``size``-byte ones (large chunks pass through).

    The pieces are joined once (one copy), rather than appended to a buffer and copied
    out of it (two copies, and a buffer that reallocates as it grows).
    """
    parts: list[bytes] = []
    held = 0
    async for chunk in chunks:
        if not held and len(chunk) >= size:
            yield chunk
            continue
        parts.append(chunk)
        held += len(chunk)
        if held >= size:
            joined = b"".join(parts)
            parts.clear()
            held = 0
            yield joined
    if held:
        yield b"".join(parts)
