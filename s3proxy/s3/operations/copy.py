"""CopyObject: a server-side copy streamed through the proxy (backend.get -> backend.put).

The bytes pass through once, in backend-sized chunks, so memory stays bounded whatever
the size; the copy's ETag (MD5) and checksum are computed on the way, as S3 recomputes
them for the new single-part object. ``parse_copy_source`` is shared with UploadPartCopy.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, unquote_to_bytes

from s3proxy import events
from s3proxy.s3 import checksums, xml
from s3proxy.s3.conditions import WriteConditions, check_copy_source, write_conditions
from s3proxy.s3.dispatch import valid_bucket_name
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request, S3Response, xml_response
from s3proxy.s3.operations import Handlers, bucket_and_key, storage_errors
from s3proxy.s3.operations.objects import (
    metadata_from_headers,
    put_error,
    refuse_unsupported,
    storage_class,
)
from s3proxy.storage.backend import ObjectInfo, ObjectMetadata, PreconditionFailed, PutBody
from s3proxy.storage.keys import MAX_KEY_BYTES

# S3's largest copy source for CopyObject (beyond it, UploadPartCopy is the way).
MAX_COPY_SIZE = 5 * 1024**3
_DIRECTIVES = ("COPY", "REPLACE")
# Headers that make a copy of an object onto itself meaningful even with COPY.
_SELF_COPY_CHANGES = (
    "x-amz-storage-class",
    "x-amz-server-side-encryption",
    "x-amz-website-redirect-location",
)


def _bad_source(raw: str, message: str) -> S3Error:
    return S3Error(
        "InvalidArgument",
        message,
        extra={"ArgumentName": "x-amz-copy-source", "ArgumentValue": raw},
    )


def parse_copy_source(header: str) -> tuple[str, str]:
    """``x-amz-copy-source`` -> (bucket, key).

    The value is ``[/]bucket/key[?versionId=id]`` with the key URL-encoded. Buckets
    behind the proxy are unversioned, so only ``versionId=null`` is accepted.
    """
    raw = header.strip()
    path, sep, query = raw.partition("?")
    if sep:
        params = parse_qsl(query, keep_blank_values=True)
        if [name for name, _ in params] != ["versionId"]:
            # Not a version query: the "?" belonged to an unencoded key.
            path = raw
        elif params[0][1] != "null":
            raise _bad_source(raw, "Invalid version id specified")
    try:
        decoded = unquote_to_bytes(path.lstrip("/")).decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_source(raw, "Invalid copy source encoding") from None
    bucket, slash, key = decoded.partition("/")
    if not slash or not bucket or not key:
        raise _bad_source(
            raw, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"
        )
    if not valid_bucket_name(bucket):
        raise S3Error("InvalidBucketName", extra={"BucketName": bucket})
    if len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError")
    return bucket, key


def _directive(req: S3Request, header: str) -> str:
    value = req.headers.get(header, "COPY")
    if value not in _DIRECTIVES:
        what = "metadata" if "metadata" in header else "tagging"
        raise S3Error(
            "InvalidArgument",
            f"Unknown {what} directive.",
            extra={"ArgumentName": header, "ArgumentValue": value},
        )
    return value


def _new_metadata(req: S3Request, source: ObjectMetadata, directive: str) -> ObjectMetadata:
    """What the copy stores besides its bytes (ETag and checksums come later)."""
    if directive == "REPLACE":
        return metadata_from_headers(req)
    meta = ObjectMetadata(
        etag="",
        content_type=source.content_type,
        content_encoding=source.content_encoding,
        content_disposition=source.content_disposition,
        content_language=source.content_language,
        cache_control=source.cache_control,
        expires=source.expires,
        user_metadata=dict(source.user_metadata),
    )
    # The storage class is never copied: S3 uses the request's, else STANDARD.
    meta.storage_class = storage_class(req)
    return meta


def _algorithm(req: S3Request, source: ObjectMetadata) -> str:
    """The copy's checksum: the one requested, else the source's, else S3's default."""
    requested = req.headers.get("x-amz-checksum-algorithm")
    if requested is not None:
        return checksums.parse_algorithm(requested)
    for algorithm in checksums.ALGORITHMS:
        if algorithm in source.checksums:
            return algorithm
    return checksums.DEFAULT_ALGORITHM


async def copy_object(req: S3Request) -> S3Response:
    bucket, key = bucket_and_key(req)
    src_bucket, src_key = parse_copy_source(req.headers["x-amz-copy-source"])
    directive = _directive(req, "x-amz-metadata-directive")
    tagging = _directive(req, "x-amz-tagging-directive")
    # With COPY the tags come from the source (which has none here); x-amz-tagging
    # only counts with REPLACE.
    refuse_unsupported(req, tagging=tagging == "REPLACE")
    if directive == "REPLACE":
        metadata_from_headers(req)  # validate before touching the source
    else:
        storage_class(req)
    conditions = write_conditions(req.headers)
    same = (src_bucket, src_key) == (bucket, key)

    def plan(info: ObjectInfo) -> tuple[int, int]:
        check_copy_source(req.headers, info)
        if info.size > MAX_COPY_SIZE:
            raise S3Error(
                "InvalidRequest",
                "The specified copy source is larger than the maximum allowable size for a "
                f"copy source: {MAX_COPY_SIZE}",
            )
        if same and directive == "COPY" and not any(h in req.headers for h in _SELF_COPY_CHANGES):
            raise S3Error(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself "
                "without changing the object's metadata, storage class, website redirect "
                "location or encryption attributes.",
            )
        return 0, info.size

    with storage_errors(src_bucket, src_key):
        source = await req.backend.get(src_bucket, src_key, plan)
    try:
        meta = _new_metadata(req, source.info.metadata, directive)
        info = await _write_copy(req, bucket, key, source.body, meta, conditions, source.info)
    finally:
        aclose = getattr(source.body, "aclose", None)
        if aclose is not None:
            await aclose()
    req.emit(events.OBJECT_CREATED_COPY, key, info.size, info.etag)
    body = xml.document(
        "CopyObjectResult",
        [
            ("ETag", f'"{info.etag}"'),
            # Whole seconds, like Last-Modified on HEAD/GET of the copy.
            ("LastModified", info.last_modified.replace(microsecond=0)),
            *checksums.xml_fields(info.metadata.checksums),
        ],
    )
    return xml_response(body)


async def _write_copy(
    req: S3Request,
    bucket: str,
    key: str,
    data: AsyncIterator[bytes],
    meta: ObjectMetadata,
    conditions: WriteConditions,
    source: ObjectInfo,
) -> ObjectInfo:
    md5 = hashlib.md5()
    hasher = checksums.Hasher(_algorithm(req, source.metadata))
    copied = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal copied
        async for chunk in data:
            copied += len(chunk)
            md5.update(chunk)
            hasher.update(chunk)
            yield chunk

    def finish() -> ObjectMetadata:
        if copied != source.size:
            # The source stream ended early: never store a truncated copy.
            raise S3Error("InternalError", "The copy source could not be read completely.")
        meta.etag = md5.hexdigest()
        meta.checksums = {hasher.algorithm: hasher.b64()}
        return meta

    with storage_errors(bucket, key):
        try:
            return await req.backend.put(
                bucket,
                key,
                PutBody(chunks=chunks(), finish=finish, metadata=meta),
                mode=conditions.mode,
                if_match=conditions.if_match,
            )
        except PreconditionFailed as exc:
            raise put_error(exc, conditions) from exc


HANDLERS: Handlers = {"CopyObject": copy_object}
