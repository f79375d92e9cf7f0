"""Object operations: PutObject, GetObject, HeadObject, DeleteObject."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator
from email.utils import format_datetime

from s3proxy.s3.chunked import ChunkedDecoder
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request, S3Response, rechunk
from s3proxy.s3.operations import Handlers, bucket_and_key, storage_errors
from s3proxy.s3.ranges import content_range, parse_range
from s3proxy.storage.backend import ObjectInfo, ObjectMetadata, PutBody

DEFAULT_CONTENT_TYPE = "binary/octet-stream"
META_PREFIX = "x-amz-meta-"
MAX_USER_METADATA = 2048
# Stored content headers: header name -> ObjectMetadata field.
CONTENT_HEADERS = {
    "content-type": "content_type",
    "content-encoding": "content_encoding",
    "content-disposition": "content_disposition",
    "content-language": "content_language",
    "cache-control": "cache_control",
    "expires": "expires",
}
# GetObject query overrides of response headers.
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}


def _http_date(info: ObjectInfo) -> str:
    return format_datetime(info.last_modified.replace(microsecond=0), usegmt=True)


def object_headers(info: ObjectInfo) -> list[tuple[str, str]]:
    """The response headers that describe a stored object (GET and HEAD)."""
    meta = info.metadata
    headers = [
        ("etag", f'"{meta.etag}"'),
        ("last-modified", _http_date(info)),
        ("accept-ranges", "bytes"),
        ("content-type", meta.content_type or DEFAULT_CONTENT_TYPE),
    ]
    for header, attr in CONTENT_HEADERS.items():
        value = getattr(meta, attr)
        if value is not None and header != "content-type":
            headers.append((header, value))
    headers.extend((META_PREFIX + k, v) for k, v in meta.user_metadata.items())
    if meta.storage_class and meta.storage_class != "STANDARD":
        headers.append(("x-amz-storage-class", meta.storage_class))
    return headers


def _metadata_from_headers(req: S3Request) -> ObjectMetadata:
    user = {k[len(META_PREFIX) :]: v for k, v in req.headers.items() if k.startswith(META_PREFIX)}
    # S3 counts the UTF-8 bytes of every name and value.
    if sum(len(k.encode()) + len(v.encode()) for k, v in user.items()) > MAX_USER_METADATA:
        raise S3Error("MetadataTooLarge", resource=req.resource)
    meta = ObjectMetadata(etag="", user_metadata=user)
    for header, attr in CONTENT_HEADERS.items():
        if header in req.headers:
            setattr(meta, attr, req.headers[header])
    if meta.content_encoding:
        # aws-chunked describes the transfer, not the object.
        codings = [c.strip() for c in meta.content_encoding.split(",")]
        kept = [c for c in codings if c and c != "aws-chunked"]
        meta.content_encoding = ", ".join(kept) or None
    meta.storage_class = req.headers.get("x-amz-storage-class")
    return meta


def _expected_md5(req: S3Request) -> bytes | None:
    raw = req.headers.get("content-md5")
    if raw is None:
        return None
    try:
        digest = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest", resource=req.resource) from None
    if len(digest) != 16:
        raise S3Error("InvalidDigest", resource=req.resource)
    return digest


def _is_aws_chunked(req: S3Request) -> bool:
    return "aws-chunked" in req.headers.get("content-encoding", "") or req.headers.get(
        "x-amz-content-sha256", ""
    ).startswith("STREAMING-")


def _declared_length(req: S3Request, chunked: bool) -> int:
    if chunked:
        raw = req.headers.get("x-amz-decoded-content-length")
        if raw is None:
            raise S3Error("MissingContentLength", resource=req.resource)
        if not raw.isdigit():
            raise S3Error("InvalidArgument", "Invalid x-amz-decoded-content-length")
        return int(raw)
    length = req.content_length
    if length is None:
        raise S3Error("MissingContentLength", resource=req.resource)
    return length


class UploadDigest:
    """Hashes and counts an upload as it streams; verifies it when the body ends."""

    def __init__(self, req: S3Request) -> None:
        self.chunked = _is_aws_chunked(req)
        self.expected_length = _declared_length(req, self.chunked)
        self.expected_md5 = _expected_md5(req)
        self.md5 = hashlib.md5()
        self.length = 0
        self.resource = req.resource
        self._source: AsyncIterator[bytes] = req.body
        if self.chunked:
            self._source = aiter(ChunkedDecoder(req.body))

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in rechunk(self._source):
            self.length += len(chunk)
            if self.length > self.expected_length:
                raise S3Error("InvalidRequest", "The request body is longer than declared.")
            self.md5.update(chunk)
            yield chunk
        if self.length != self.expected_length:
            raise S3Error("IncompleteBody", resource=self.resource)

    def verify(self) -> str:
        """Check the digests the client sent; return the hex MD5 (the ETag)."""
        digest = self.md5.digest()
        if self.expected_md5 is not None and digest != self.expected_md5:
            raise S3Error("BadDigest", resource=self.resource)
        return digest.hex()


async def put_object(req: S3Request) -> S3Response:
    bucket, key = bucket_and_key(req)
    meta = _metadata_from_headers(req)
    upload = UploadDigest(req)

    def finish() -> ObjectMetadata:
        meta.etag = upload.verify()
        return meta

    with storage_errors(bucket, key):
        info = await req.backend.put(bucket, key, PutBody(chunks=upload.chunks(), finish=finish))
    return S3Response(headers=[("etag", f'"{info.etag}"')])


def _overrides(req: S3Request, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    replace = {RESPONSE_OVERRIDES[q]: v for q, v in req.query.items() if q in RESPONSE_OVERRIDES}
    if not replace:
        return headers
    return [(h, v) for h, v in headers if h not in replace] + list(replace.items())


async def _read(req: S3Request, with_body: bool) -> S3Response:
    bucket, key = bucket_and_key(req)
    chosen: dict[str, tuple[int, int] | None] = {}

    def plan(info: ObjectInfo) -> tuple[int, int]:
        selected = parse_range(req.headers.get("range"), info.size)
        chosen["range"] = selected
        if not with_body:
            return (0, 0)
        return selected or (0, info.size)

    with storage_errors(bucket, key):
        result = await req.backend.get(bucket, key, plan)
    info = result.info
    headers = _overrides(req, object_headers(info))
    selected = chosen.get("range")
    status = 200
    start, end = selected or (0, info.size)
    if selected is not None:
        status = 206
        headers.append(("content-range", content_range(start, end, info.size)))
    return S3Response(
        status=status,
        headers=headers,
        body=result.body if with_body else b"",
        content_length=end - start,
    )


async def get_object(req: S3Request) -> S3Response:
    return await _read(req, with_body=True)


async def head_object(req: S3Request) -> S3Response:
    return await _read(req, with_body=False)


async def delete_object(req: S3Request) -> S3Response:
    bucket, key = bucket_and_key(req)
    with storage_errors(bucket, key):
        await req.backend.delete(bucket, key)
    return S3Response(status=204)


HANDLERS: Handlers = {
    "PutObject": put_object,
    "GetObject": get_object,
    "HeadObject": head_object,
    "DeleteObject": delete_object,
}
