"""PostObject: browser form uploads (``multipart/form-data`` with a signed policy).

Off unless ``auth.allow_presigned_post``. The form fields come before the file; they
are read (bounded), authenticated and checked against the policy before a byte of the
file is stored, then the file part streams into the backend.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from s3proxy import events
from s3proxy.s3 import post_policy, xml
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request, S3Response, xml_response
from s3proxy.s3.operations import Handlers, storage_errors
from s3proxy.s3.operations.objects import MAX_USER_METADATA, META_PREFIX
from s3proxy.storage.backend import ObjectMetadata, PutBody

MAX_FIELDS_SIZE = 64 * 1024
_CONTENT_FIELDS = {
    "content-type": "content_type",
    "cache-control": "cache_control",
    "content-disposition": "content_disposition",
    "content-encoding": "content_encoding",
    "expires": "expires",
}


class FormReader:
    """Pull-style events (segment, bytes, None) from a streaming multipart body."""

    def __init__(self, body: AsyncIterator[bytes], boundary: str) -> None:
        self._body = body
        self._parser = PushMultipartParser(boundary, max_header_count=16)
        self._events: deque[MultipartSegment | bytes | None] = deque()
        self._done = False

    async def next(self) -> MultipartSegment | bytes | None:
        while not self._events:
            if self._done:
                raise S3Error("MalformedPOSTRequest", "The form has no file field.")
            chunk = await anext(self._body, None)
            try:
                if chunk is None:
                    self._done = True
                    self._parser.close()
                else:
                    self._events.extend(self._parser.parse(chunk))
            except MultipartError:
                raise S3Error("MalformedPOSTRequest") from None
        return self._events.popleft()


async def _read_fields(form: FormReader) -> tuple[dict[str, str], MultipartSegment]:
    """Fields up to the file part (lower-case names), and the file part's segment."""
    fields: dict[str, str] = {}
    size = 0
    while True:
        segment = await form.next()
        if not isinstance(segment, MultipartSegment):
            raise S3Error("MalformedPOSTRequest")
        if segment.name.lower() == "file":
            return fields, segment
        value = bytearray()
        while (event := await form.next()) is not None:
            assert isinstance(event, bytes)
            value += event
            size += len(event)
            if size > MAX_FIELDS_SIZE:
                raise S3Error("MaxPostPreDataLengthExceeded")
        fields[segment.name.lower()] = value.decode("utf-8", "replace")


def _metadata(fields: dict[str, str], file: MultipartSegment) -> ObjectMetadata:
    user = {k[len(META_PREFIX) :]: v for k, v in fields.items() if k.startswith(META_PREFIX)}
    if sum(len(k.encode()) + len(v.encode()) for k, v in user.items()) > MAX_USER_METADATA:
        raise S3Error("MetadataTooLarge")
    meta = ObjectMetadata(etag="", user_metadata=user)
    for name, attr in _CONTENT_FIELDS.items():
        if name in fields:
            setattr(meta, attr, fields[name])
    if meta.content_type is None and file.content_type:
        meta.content_type = file.content_type
    return meta


async def post_object(req: S3Request) -> S3Response:
    assert req.bucket is not None
    if not req.config.auth.allow_presigned_post:
        raise S3Error("NotImplemented", "Browser form uploads are disabled on this proxy.")
    ctype, options = parse_options_header(req.headers.get("content-type", ""))
    if ctype != "multipart/form-data" or not options.get("boundary"):
        raise S3Error(
            "PreconditionFailed", "Bucket POST must be of the enclosure-type multipart/form-data"
        )
    form = FormReader(req.body, options["boundary"])
    fields, file = await _read_fields(form)
    if "key" not in fields:
        raise S3Error("InvalidArgument", "Bucket POST must contain a field named 'key'.")
    key = fields["key"].replace("${filename}", file.filename or "")
    if not key or len(key.encode()) > 1024:
        raise S3Error("KeyTooLongError" if key else "InvalidArgument")
    checked = {**fields, "bucket": req.bucket, "key": key}
    policy = await req.verify_form(checked)
    meta = _metadata(fields, file)
    low, high = policy.length_range if policy and policy.length_range else (0, 5 * 1024**3)
    md5 = hashlib.md5()
    size = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal size
        while (event := await form.next()) is not None:
            assert isinstance(event, bytes)
            size += len(event)
            if size > high:
                raise S3Error("EntityTooLarge", extra={"MaxSizeAllowed": str(high)})
            md5.update(event)
            yield event
        if size < low:
            raise S3Error("EntityTooSmall", extra={"MinSizeAllowed": str(low)})

    def finish() -> ObjectMetadata:
        meta.etag = md5.hexdigest()
        return meta

    with storage_errors(req.bucket, key):
        upload = PutBody(chunks=chunks(), finish=finish, metadata=meta)
        info = await req.backend.put(req.bucket, key, upload)
    req.emit(events.OBJECT_CREATED_POST, key, info.size, info.etag)
    etag = f'"{info.etag}"'
    location = f"/{req.bucket}/{quote(key)}"
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect:
        query = urlencode({"bucket": req.bucket, "key": key, "etag": etag})
        sep = "&" if "?" in redirect else "?"
        return S3Response(status=303, headers=[("location", f"{redirect}{sep}{query}")])
    status = fields.get("success_action_status", "204")
    headers = [("etag", etag), ("location", location)]
    if status == "201":
        body = xml.document(
            "PostResponse",
            [("Location", location), ("Bucket", req.bucket), ("Key", key), ("ETag", etag)],
            namespace=False,
        )
        response = xml_response(body, status=201)
        response.headers += headers
        return response
    return S3Response(status=200 if status == "200" else 204, headers=headers)


HANDLERS: Handlers = {"PostObject": post_object}

__all__ = ["HANDLERS", "FormReader", "post_policy"]
