"""DeleteObjects (POST /bucket?delete): up to 1000 keys, per-key results, Quiet mode."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from s3proxy import events
from s3proxy.s3 import checksums, xml
from s3proxy.s3.conditions import etag_matches
from s3proxy.s3.errors import S3Error, from_storage
from s3proxy.s3.http import S3Request, S3Response, xml_response
from s3proxy.s3.operations import Handlers, storage_errors
from s3proxy.s3.upload import read_all
from s3proxy.storage.backend import StorageError
from s3proxy.storage.keys import MAX_KEY_BYTES

MAX_KEYS = 1000
# 1000 keys of 1024 bytes, each possibly written as character references, plus markup.
MAX_BODY = 8 * 1024 * 1024
# Deletes in flight at once for one request.
CONCURRENCY = 16


@dataclass(slots=True)
class ToDelete:
    key: str
    version_id: str | None = None
    etag: str | None = None


@dataclass(slots=True)
class Outcome:
    item: ToDelete
    error: S3Error | None = None


def _malformed() -> S3Error:
    return S3Error("MalformedXML")


def _local(tag: str) -> str:
    """Element name without its namespace (clients send the S3 xmlns, or none)."""
    return tag.rsplit("}", 1)[-1]


def parse_delete(body: bytes) -> tuple[list[ToDelete], bool]:
    """The keys and Quiet flag of a ``<Delete>`` document; MalformedXML when invalid."""
    # No document type declarations: nothing legitimate needs one, and refusing them
    # rules out entity expansion tricks whatever the XML parser's own defences.
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise _malformed()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise _malformed() from None
    if _local(root.tag) != "Delete":
        raise _malformed()
    items: list[ToDelete] = []
    quiet = False
    for child in root:
        name = _local(child.tag)
        if name == "Quiet":
            text = (child.text or "").strip().lower()
            if text not in ("true", "false"):
                raise _malformed()
            quiet = text == "true"
        elif name == "Object":
            fields = {_local(c.tag): c.text or "" for c in child}
            if "Key" not in fields:
                raise _malformed()
            items.append(ToDelete(fields["Key"], fields.get("VersionId"), fields.get("ETag")))
        else:
            raise _malformed()
    if not items or len(items) > MAX_KEYS:
        raise _malformed()
    return items, quiet


async def _delete_one(req: S3Request, bucket: str, item: ToDelete) -> Outcome:
    if not item.key or len(item.key.encode()) > MAX_KEY_BYTES:
        return Outcome(item, S3Error("KeyTooLongError" if item.key else "InvalidArgument"))
    if item.version_id is not None and item.version_id != "null":
        return Outcome(item, S3Error("InvalidArgument", "Invalid version id specified"))
    try:
        if item.etag is not None:
            # Conditional delete: checked, then deleted (stores offer no atomic form).
            info = await req.backend.head(bucket, item.key)
            if not etag_matches(item.etag, info.etag):
                return Outcome(item, S3Error("PreconditionFailed"))
        await req.backend.delete(bucket, item.key)
    except StorageError as exc:
        return Outcome(item, from_storage(exc, bucket=bucket, key=item.key))
    req.emit(events.OBJECT_REMOVED_DELETE, item.key)
    return Outcome(item)


def _result(outcomes: list[Outcome], quiet: bool) -> bytes:
    entries: list[xml.Node] = []
    for outcome in outcomes:
        item = outcome.item
        if outcome.error is None:
            if not quiet:
                entries.append(("Deleted", [("Key", item.key), ("VersionId", item.version_id)]))
            continue
        fields: list[xml.Node] = [("Key", item.key)]
        if item.version_id is not None:
            fields.append(("VersionId", item.version_id))
        fields += [("Code", outcome.error.code), ("Message", outcome.error.message)]
        entries.append(("Error", fields))
    return xml.document("DeleteResult", entries)


def _require_integrity_header(req: S3Request) -> None:
    """S3 refuses a multi-object delete whose body carries no digest to check."""
    has_checksum = any(checksums.header_name(a) in req.headers for a in checksums.ALGORITHMS) or (
        "x-amz-trailer" in req.headers
    )
    if "content-md5" not in req.headers and not has_checksum:
        raise S3Error(
            "InvalidRequest",
            "Missing required header for this request: Content-MD5 OR x-amz-checksum-*",
        )


async def delete_objects(req: S3Request) -> S3Response:
    assert req.bucket is not None  # guaranteed by dispatch
    bucket = req.bucket
    _require_integrity_header(req)
    body, _ = await read_all(req, MAX_BODY)
    items, quiet = parse_delete(body)
    with storage_errors(bucket):
        await req.backend.head_bucket(bucket)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def bounded(item: ToDelete) -> Outcome:
        async with limit:
            return await _delete_one(req, bucket, item)

    outcomes = await asyncio.gather(*(bounded(item) for item in items))
    return xml_response(_result(list(outcomes), quiet))


HANDLERS: Handlers = {"DeleteObjects": delete_objects}
