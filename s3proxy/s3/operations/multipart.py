"""Multipart upload operations: Create, UploadPart, UploadPartCopy, Complete, Abort.

The listings (ListParts, ListMultipartUploads) live in ``multipart_listing.py``. State
lives only in the backend (see ``storage/multipart.py``), so any replica can serve any
step of an upload.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote
from xml.etree import ElementTree

from s3proxy import events
from s3proxy.observability import multipart_uploads
from s3proxy.s3 import checksums, xml
from s3proxy.s3 import multipart_checksums as mpc
from s3proxy.s3.conditions import check_copy_source, write_conditions
from s3proxy.s3.errors import S3Error
from s3proxy.s3.handler import error_body
from s3proxy.s3.http import S3Request, S3Response, xml_response
from s3proxy.s3.operations import Handlers, bucket_and_key, storage_errors
from s3proxy.s3.operations.copy import parse_copy_source
from s3proxy.s3.operations.objects import metadata_from_headers, put_error, refuse_unsupported
from s3proxy.s3.upload import UploadDigest
from s3proxy.storage.backend import ObjectInfo, ObjectMetadata, PreconditionFailed, PutBody
from s3proxy.storage.multipart import (
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    Finalize,
    MultipartEngine,
    NoSuchUpload,
    Part,
    Upload,
    engine_for,
)

log = logging.getLogger("s3proxy.s3")

# A Complete body naming 10,000 parts with checksums is about 2 MiB.
MAX_COMPLETE_BODY = 4 * 1024 * 1024
_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def engine(req: S3Request) -> MultipartEngine:
    return engine_for(req.backend)


@contextmanager
def upload_errors(req: S3Request, bucket: str, key: str = "") -> Iterator[None]:
    """storage_errors, plus the UploadId S3 names in NoSuchUpload errors."""
    try:
        with storage_errors(bucket, key):
            yield
    except S3Error as err:
        if err.code == NoSuchUpload.code:
            err.extra["UploadId"] = req.query.get("uploadId", "")
        raise


async def find_upload(req: S3Request) -> Upload:
    bucket, key = bucket_and_key(req)
    with upload_errors(req, bucket, key):
        return await engine(req).upload(bucket, key, req.query.get("uploadId", ""))


def part_number(raw: str | None) -> int:
    if raw is None or not raw.isdigit() or not 1 <= int(raw) <= MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
            extra={"ArgumentName": "partNumber", "ArgumentValue": raw or ""},
        )
    return int(raw)


# -- create / abort ----------------------------------------------------------------------


async def create_multipart_upload(req: S3Request) -> S3Response:
    bucket, key = bucket_and_key(req)
    refuse_unsupported(req)
    meta = metadata_from_headers(req)
    algorithm, checksum_type = mpc.upload_settings(
        req.headers.get("x-amz-checksum-algorithm"), req.headers.get("x-amz-checksum-type")
    )
    with storage_errors(bucket, key):
        upload = await engine(req).create(bucket, key, meta, algorithm, checksum_type)
    multipart_uploads.add(1, {"event": "created"})
    body = xml.document(
        "InitiateMultipartUploadResult",
        [("Bucket", bucket), ("Key", key), ("UploadId", upload.upload_id)],
    )
    response = xml_response(body)
    if algorithm and checksum_type:
        response.headers += [
            ("x-amz-checksum-algorithm", algorithm),
            ("x-amz-checksum-type", checksum_type),
        ]
    return response


async def abort_multipart_upload(req: S3Request) -> S3Response:
    upload = await find_upload(req)
    with upload_errors(req, upload.bucket, upload.key):
        await engine(req).abort(upload)
    multipart_uploads.add(1, {"event": "aborted"})
    return S3Response(status=204)


# -- parts -------------------------------------------------------------------------------


class _Updatable(Protocol):
    def update(self, data: bytes, /) -> None: ...


async def _hashed(chunks: AsyncIterator[bytes], *digests: _Updatable) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        for digest in digests:
            digest.update(chunk)
        yield chunk


def _part_headers(part: Part) -> list[tuple[str, str]]:
    headers = [("etag", f'"{part.etag}"')]
    return headers + [(checksums.header_name(a), v) for a, v in sorted(part.checksums.items())]


def _part_algorithm(upload: Upload) -> str:
    """The checksum every part keeps: the upload's, else S3's default."""
    return upload.checksum_algorithm or checksums.DEFAULT_ALGORITHM


async def upload_part(req: S3Request) -> S3Response:
    number = part_number(req.query.get("partNumber"))
    upload = await find_upload(req)
    digest = UploadDigest(req)
    sent = digest.checksum_request.algorithm
    wanted = _part_algorithm(upload)
    if upload.checksum_algorithm and sent and sent != wanted:
        raise S3Error(
            "InvalidRequest",
            f"Checksum Type mismatch occurred, expected checksum Type: {wanted.lower()}, "
            f"actual checksum Type: {sent.lower()}",
        )
    # UploadDigest hashes what the client named (or the default); add the upload's own.
    extra = checksums.Hasher(wanted) if wanted != digest.hasher.algorithm else None

    def finish() -> ObjectMetadata:
        etag = digest.verify()
        sums = dict(digest.checksums)
        if extra is not None:
            sums[wanted] = extra.b64()
        return ObjectMetadata(etag=etag, checksums=sums)

    chunks = digest.chunks() if extra is None else _hashed(digest.chunks(), extra)
    with upload_errors(req, upload.bucket, upload.key):
        part = await engine(req).put_part(upload, number, PutBody(chunks=chunks, finish=finish))
    return S3Response(headers=_part_headers(part))


def _copy_range(raw: str | None, size: int) -> tuple[int, int]:
    if raw is None:
        return 0, size
    match = _COPY_RANGE.fullmatch(raw.strip())
    if match is None or int(match[1]) > int(match[2]):
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where "
            "first and last are the zero-based offsets of the first and last bytes to copy",
        )
    first, last = int(match[1]), int(match[2])
    if last >= size:
        raise S3Error(
            "InvalidArgument", f"Range specified is not valid for source object of size: {size}"
        )
    return first, last + 1


async def upload_part_copy(req: S3Request) -> S3Response:
    number = part_number(req.query.get("partNumber"))
    src_bucket, src_key = parse_copy_source(req.headers["x-amz-copy-source"])
    upload = await find_upload(req)

    def plan(info: ObjectInfo) -> tuple[int, int]:
        check_copy_source(req.headers, info)
        start, end = _copy_range(req.headers.get("x-amz-copy-source-range"), info.size)
        if end - start > MAX_PART_SIZE:
            raise S3Error(
                "InvalidRequest",
                "The specified copy source is larger than the maximum allowable size for a "
                f"copy source: {MAX_PART_SIZE}",
            )
        return start, end

    with storage_errors(src_bucket, src_key):
        source = await req.backend.get(src_bucket, src_key, plan)
    md5 = hashlib.md5()
    algorithm = _part_algorithm(upload)
    hasher = checksums.Hasher(algorithm)

    def finish() -> ObjectMetadata:
        return ObjectMetadata(etag=md5.hexdigest(), checksums={algorithm: hasher.b64()})

    body = PutBody(chunks=_hashed(source.body, md5, hasher), finish=finish)
    with upload_errors(req, upload.bucket, upload.key):
        part = await engine(req).put_part(upload, number, body)
    result: list[xml.Node] = [("LastModified", part.last_modified), ("ETag", f'"{part.etag}"')]
    result += [(f"Checksum{a}", v) for a, v in sorted(part.checksums.items())]
    return xml_response(xml.document("CopyPartResult", result))


# -- complete ----------------------------------------------------------------------------


@dataclass(slots=True)
class RequestedPart:
    number: int
    etag: str
    checksums: dict[str, str] = field(default_factory=dict)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_complete(body: bytes) -> list[RequestedPart]:
    """The parts a CompleteMultipartUpload body lists; MalformedXML if it is not one."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise S3Error("MalformedXML") from None
    if _local(root.tag) != "CompleteMultipartUpload":
        raise S3Error("MalformedXML")
    parts: list[RequestedPart] = []
    for node in root:
        fields = {_local(child.tag): (child.text or "").strip() for child in node}
        number, etag = fields.get("PartNumber", ""), fields.get("ETag")
        if _local(node.tag) != "Part" or not number.isdigit() or etag is None:
            raise S3Error("MalformedXML")
        sums = {a: fields[f"Checksum{a}"] for a in checksums.ALGORITHMS if f"Checksum{a}" in fields}
        parts.append(RequestedPart(int(number), etag, sums))
    if not parts:
        raise S3Error("MalformedXML")
    return parts


async def _read_body(req: S3Request, limit: int) -> bytes:
    buf = bytearray()
    async for chunk in req.body:
        buf += chunk
        if len(buf) > limit:
            raise S3Error("MalformedXML")
    return bytes(buf)


def _finalizer(req: S3Request, requested: list[RequestedPart]) -> Finalize:
    claimed = {p.number: p.checksums for p in requested}

    def finalize(upload: Upload, parts: list[Part]) -> dict[str, str]:
        for part in parts:
            for name, quoted in claimed.get(part.number, {}).items():
                stored = part.checksums.get(name)
                if stored is not None and stored != quoted:
                    raise S3Error("InvalidPart")
        algorithm = _part_algorithm(upload)
        kind = upload.checksum_type or mpc.FULL_OBJECT
        pairs = [(p.checksums.get(algorithm), p.size) for p in parts]
        value = mpc.final_checksum(algorithm, kind, pairs)
        if value is None:
            return {}
        whole = req.headers.get(checksums.header_name(algorithm))
        if kind == mpc.FULL_OBJECT and whole is not None and whole != value:
            raise checksums.mismatch(algorithm)
        return {algorithm: value}

    return finalize


def _location(req: S3Request, bucket: str, key: str) -> str:
    scheme = req.headers.get("x-forwarded-proto", "http")
    host = req.headers.get("host", "localhost")
    return f"{scheme}://{host}/{bucket}/{quote(key, safe='/')}"


async def complete_multipart_upload(req: S3Request) -> S3Response:
    bucket, key = bucket_and_key(req)
    conditions = write_conditions(req.headers)
    requested = parse_complete(await _read_body(req, MAX_COMPLETE_BODY))
    upload = await find_upload(req)
    finalize = _finalizer(req, requested)

    async def run() -> bytes:
        with upload_errors(req, bucket, key):
            try:
                info = await engine(req).complete(
                    upload,
                    [(p.number, p.etag) for p in requested],
                    req.config.multipart.min_part_size,
                    finalize,
                    mode=conditions.mode,
                    if_match=conditions.if_match,
                )
            except PreconditionFailed as exc:
                raise put_error(exc, conditions) from exc
        multipart_uploads.add(1, {"event": "completed"})
        req.emit(events.OBJECT_CREATED_COMPLETE, key, info.size, info.etag)
        result: list[xml.Node] = [
            ("Location", _location(req, bucket, key)),
            ("Bucket", bucket),
            ("Key", key),
            ("ETag", f'"{info.etag}"'),
        ]
        stored = info.metadata.checksums
        result += [(f"Checksum{a}", stored[a]) for a in checksums.ALGORITHMS if a in stored]
        if stored:
            result.append(("ChecksumType", upload.checksum_type or mpc.FULL_OBJECT))
        return xml.document("CompleteMultipartUploadResult", result)

    job = asyncio.ensure_future(run())
    interval = req.config.multipart.keepalive
    # A quick outcome, including every validation error, gets an ordinary response with
    # the right status; a long assembly commits to 200 and keeps the connection alive.
    done, _ = await asyncio.wait({job}, timeout=interval)
    if done:
        return xml_response(job.result())
    return S3Response(
        headers=[("content-type", "application/xml")], body=_keepalive(req, job, interval)
    )


async def _keepalive(
    req: S3Request, job: asyncio.Future[bytes], interval: float
) -> AsyncIterator[bytes]:
    """The XML declaration, a space every ``interval`` seconds, then result or error.

    S3 does the same: once the 200 status is sent, a failure can only be reported in the
    body, as an Error document (clients such as botocore look for it).
    """
    declaration = xml.DECLARATION.encode()
    try:
        yield declaration
        while not job.done():
            await asyncio.wait({job}, timeout=interval)
            if not job.done():
                yield b" "
        try:
            document = job.result()
        except S3Error as err:
            err.resource = err.resource or req.resource
            log.info("complete failed after 200 was sent: %s %s", err.code, err.message)
            document = error_body(err, req.request_id)
        except Exception:
            log.exception("complete failed after 200 was sent")
            document = error_body(S3Error("InternalError", resource=req.resource), req.request_id)
        yield document.removeprefix(declaration)
    finally:
        # The client went away: stop assembling; nothing partial becomes visible and the
        # upload stays intact, so the client can retry.
        job.cancel()


HANDLERS: Handlers = {
    "CreateMultipartUpload": create_multipart_upload,
    "UploadPart": upload_part,
    "UploadPartCopy": upload_part_copy,
    "CompleteMultipartUpload": complete_multipart_upload,
    "AbortMultipartUpload": abort_multipart_upload,
}
