"""Object operations: PutObject, GetObject, HeadObject, DeleteObject."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC

from s3proxy import events
from s3proxy.s3 import checksums
from s3proxy.s3.conditions import (
    NotModified,
    WriteConditions,
    check_read,
    etag_matches,
    precondition_failed,
    write_conditions,
)
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request, S3Response
from s3proxy.s3.operations import Handlers, bucket_and_key, storage_errors
from s3proxy.s3.ranges import content_range, parse_range
from s3proxy.s3.upload import UploadDigest
from s3proxy.storage.backend import (
    ObjectInfo,
    ObjectMetadata,
    PreconditionFailed,
    PutBody,
)

__all__ = ["HANDLERS", "UploadDigest", "metadata_from_headers", "object_headers"]

DEFAULT_CONTENT_TYPE = "binary/octet-stream"
META_PREFIX = "x-amz-meta-"
MAX_USER_METADATA = 2048
MAX_PART_NUMBER = 10000
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
# Storage classes of general purpose buckets. The proxy records the class and reports
# it; the backend decides where bytes live.
STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "GLACIER_IR",
    }
)
# With ACLs disabled (S3's default "bucket owner enforced"), only ACLs that grant the
# owner alone are accepted; this proxy has one owner, so they change nothing.
OWNER_ONLY_ACLS = frozenset({"private", "bucket-owner-full-control"})


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(info: ObjectInfo) -> str:
    """RFC 7231 IMF-fixdate of the modification time (by hand: email.utils takes ~7 us)."""
    t = info.last_modified
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT"
    )


def _encode_meta_value(value: str) -> str:
    # S3 returns non-ASCII metadata as an RFC 2047 encoded word, which every HTTP
    # stack can carry; ASCII values (including encoded words a client made) go as is.
    if value.isascii():
        return value
    return f"=?UTF-8?B?{base64.b64encode(value.encode()).decode()}?="


def _decode_meta_value(raw: str, resource: str) -> str:
    # Header values reach us latin-1 decoded (byte for byte); S3 reads them as UTF-8.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise S3Error(
            "InvalidArgument", "User metadata values must be UTF-8.", resource=resource
        ) from None


def object_headers(info: ObjectInfo) -> list[tuple[str, str]]:
    """The response headers that describe a stored object (GET and HEAD)."""
    meta = info.metadata
    headers = [
        ("etag", f'"{meta.etag}"'),
        ("last-modified", http_date(info)),
        ("accept-ranges", "bytes"),
        ("content-type", meta.content_type or DEFAULT_CONTENT_TYPE),
    ]
    for header, attr in CONTENT_HEADERS.items():
        value = getattr(meta, attr)
        if value is not None and header != "content-type":
            headers.append((header, value))
    headers.extend((META_PREFIX + k, _encode_meta_value(v)) for k, v in meta.user_metadata.items())
    if meta.storage_class and meta.storage_class != "STANDARD":
        headers.append(("x-amz-storage-class", meta.storage_class))
    return headers


def storage_class(req: S3Request) -> str | None:
    value = req.headers.get("x-amz-storage-class")
    if value is not None and value not in STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass", extra={"StorageClassRequested": value})
    return value


def metadata_from_headers(req: S3Request) -> ObjectMetadata:
    """Content headers, user metadata and storage class of a write request (no ETag yet)."""
    user = {
        k[len(META_PREFIX) :]: _decode_meta_value(v, req.resource)
        for k, v in req.headers.items()
        if k.startswith(META_PREFIX)
    }
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
    meta.storage_class = storage_class(req)
    return meta


def refuse_unsupported(req: S3Request, *, tagging: bool = True) -> None:
    """Refuse write headers whose promise the proxy cannot keep (rather than drop them)."""
    headers = req.headers
    acl = headers.get("x-amz-acl")
    if (acl is not None and acl not in OWNER_ONLY_ACLS) or any(
        h.startswith("x-amz-grant-") for h in headers
    ):
        raise S3Error("AccessControlListNotSupported")
    if tagging and headers.get("x-amz-tagging"):
        raise S3Error("NotImplemented", "Object tagging is not supported by this proxy.")
    if any(h.startswith("x-amz-server-side-encryption-customer-") for h in headers):
        raise S3Error("NotImplemented", "SSE-C is not supported by this proxy.")
    sse = headers.get("x-amz-server-side-encryption")
    if sse is not None and sse != "AES256":
        raise S3Error("NotImplemented", f"Server-side encryption {sse!r} is not supported.")
    if any(h.startswith("x-amz-object-lock-") for h in headers):
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")


def check_version_id(req: S3Request) -> None:
    """Buckets behind the proxy are unversioned: only the "null" version exists."""
    version = req.query.get("versionId")
    if version is not None and version != "null":
        raise S3Error(
            "InvalidArgument",
            "Invalid version id specified",
            extra={"ArgumentName": "versionId", "ArgumentValue": version},
        )


def put_error(exc: PreconditionFailed, conditions: WriteConditions) -> S3Error:
    """The S3 error for a refused conditional write (409s map as they are)."""
    if type(exc) is PreconditionFailed:
        return precondition_failed(conditions.condition)
    return S3Error("ConditionalRequestConflict")


async def put_object(req: S3Request) -> S3Response:
    bucket, key = bucket_and_key(req)
    refuse_unsupported(req)
    meta = metadata_from_headers(req)
    conditions = write_conditions(req.headers)
    upload = UploadDigest(req)

    def finish() -> ObjectMetadata:
        meta.etag = upload.verify()
        meta.checksums = upload.checksums
        return meta

    body = PutBody(chunks=upload.chunks(), finish=finish, metadata=meta)
    with storage_errors(bucket, key):
        try:
            info = await req.backend.put(
                bucket, key, body, mode=conditions.mode, if_match=conditions.if_match
            )
        except PreconditionFailed as exc:
            raise put_error(exc, conditions) from exc
        except NotImplementedError as exc:
            raise S3Error(
                "NotImplemented", "Conditional writes are not supported by this backend."
            ) from exc
    req.emit(events.OBJECT_CREATED_PUT, key, info.size, info.etag)
    headers = [("etag", f'"{info.etag}"'), *checksums.response_headers(info.metadata.checksums)]
    return S3Response(headers=headers)


def _overrides(req: S3Request, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    replace = {RESPONSE_OVERRIDES[q]: v for q, v in req.query.items() if q in RESPONSE_OVERRIDES}
    if not replace:
        return headers
    return [(h, v) for h, v in headers if h not in replace] + list(replace.items())


def _part_number(req: S3Request) -> int | None:
    raw = req.query.get("partNumber")
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
            extra={"ArgumentName": "partNumber", "ArgumentValue": raw},
        )
    if "range" in req.headers:
        raise S3Error(
            "InvalidRequest", "Cannot specify both Range header and partNumber query parameter"
        )
    return int(raw)


def part_range(info: ObjectInfo, number: int) -> tuple[int, int]:
    """The byte range of part ``number``; a single-part object is its own part 1."""
    sizes = info.metadata.part_sizes or [info.size]
    if number > len(sizes):
        raise S3Error(
            "InvalidPartNumber",
            extra={"PartNumberRequested": str(number), "ActualPartCount": str(len(sizes))},
            headers=[("content-range", f"bytes */{info.size}")],
        )
    start = sum(sizes[: number - 1])
    return start, start + sizes[number - 1]


async def _read(req: S3Request, with_body: bool) -> S3Response:
    bucket, key = bucket_and_key(req)
    check_version_id(req)
    part = _part_number(req)
    chosen: dict[str, tuple[int, int] | None] = {}

    def plan(info: ObjectInfo) -> tuple[int, int]:
        # Conditions first: a 304/412 wins over a range that cannot be satisfied.
        check_read(req.headers, info)
        if part is not None:
            selected: tuple[int, int] | None = part_range(info, part)
        else:
            selected = parse_range(req.headers.get("range"), info.size)
        chosen["range"] = selected
        if not with_body:
            return (0, 0)
        return selected or (0, info.size)

    # HEAD, and a GET that revalidates a cached copy (most often answered 304), need no
    # object bytes: one metadata request, where a read would also fetch the first bytes.
    revalidating = "if-none-match" in req.headers or "if-modified-since" in req.headers
    body: AsyncIterator[bytes] | bytes = b""
    try:
        with storage_errors(bucket, key):
            if with_body and not revalidating:
                result = await req.backend.get(bucket, key, plan)
                info, body = result.info, result.body
            else:
                info = await req.backend.head(bucket, key)
                plan(info)
                if with_body:  # the copy changed: read it (conditions checked again)
                    result = await req.backend.get(bucket, key, plan)
                    info, body = result.info, result.body
    except NotModified as nm:
        # RFC 9110: a 304 carries the validators the client compares with.
        return S3Response(
            status=304,
            headers=[("etag", f'"{nm.info.etag}"'), ("last-modified", http_date(nm.info))],
        )
    headers = _overrides(req, object_headers(info))
    selected = chosen.get("range")
    start, end = selected or (0, info.size)
    status = 200
    if part is not None and info.metadata.part_sizes:
        headers.append(("x-amz-mp-parts-count", str(len(info.metadata.part_sizes))))
    if selected is not None and (part is None or end > start):
        status = 206
        headers.append(("content-range", content_range(start, end, info.size)))
    # A whole-object checksum only describes a whole-object response.
    whole = (start, end) == (0, info.size)
    if req.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED" and whole:
        headers.extend(checksums.response_headers(info.metadata.checksums))
    return S3Response(
        status=status,
        headers=headers,
        body=body,
        content_length=end - start,
    )


async def get_object(req: S3Request) -> S3Response:
    return await _read(req, with_body=True)


async def head_object(req: S3Request) -> S3Response:
    return await _read(req, with_body=False)


async def delete_object(req: S3Request) -> S3Response:
    bucket, key = bucket_and_key(req)
    check_version_id(req)
    if_match = req.headers.get("if-match")
    with storage_errors(bucket, key):
        if if_match is not None:
            # Conditional delete: checked, then deleted (stores offer no atomic form).
            info = await req.backend.head(bucket, key)
            if not etag_matches(if_match, info.etag):
                raise precondition_failed("If-Match")
        await req.backend.delete(bucket, key)
    req.emit(events.OBJECT_REMOVED_DELETE, key)
    return S3Response(status=204)


HANDLERS: Handlers = {
    "PutObject": put_object,
    "GetObject": get_object,
    "HeadObject": head_object,
    "DeleteObject": delete_object,
}
