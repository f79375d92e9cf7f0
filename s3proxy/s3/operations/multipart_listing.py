"""Multipart listings: ListParts and ListMultipartUploads."""

from __future__ import annotations

from urllib.parse import quote

from s3proxy.s3 import xml
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request, S3Response, xml_response
from s3proxy.s3.operations import Handlers, owner, storage_errors
from s3proxy.s3.operations.multipart import engine, find_upload, upload_errors
from s3proxy.storage.multipart import Part, Upload

MAX_ENTRIES = 1000


def _count(req: S3Request, name: str, default: int) -> int:
    raw = req.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise S3Error(
            "InvalidArgument",
            f"Provided {name} not an integer or within integer range",
            extra={"ArgumentName": name, "ArgumentValue": raw},
        )
    return int(raw)


def _encoding(req: S3Request) -> str | None:
    encoding = req.query.get("encoding-type")
    if encoding not in (None, "url"):
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return encoding


def _enc(encoding: str | None, value: str) -> str:
    return quote(value, safe="/") if encoding else value


def _checksum_fields(upload: Upload) -> list[xml.Node]:
    return [
        ("ChecksumAlgorithm", upload.checksum_algorithm),
        ("ChecksumType", upload.checksum_type),
    ]


def _part_node(part: Part, upload: Upload) -> xml.Node:
    fields: list[xml.Node] = [
        ("PartNumber", part.number),
        ("LastModified", part.last_modified),
        ("ETag", f'"{part.etag}"'),
        ("Size", part.size),
    ]
    # Only the checksum the upload asked for (parts also keep S3's default one).
    algorithm = upload.checksum_algorithm
    if algorithm and algorithm in part.checksums:
        fields.append((f"Checksum{algorithm}", part.checksums[algorithm]))
    return ("Part", fields)


async def list_parts(req: S3Request) -> S3Response:
    limit = min(_count(req, "max-parts", MAX_ENTRIES), MAX_ENTRIES)
    marker = _count(req, "part-number-marker", 0)
    encoding = _encoding(req)
    upload = await find_upload(req)
    parts: list[Part] = []
    truncated = False
    with upload_errors(req, upload.bucket, upload.key):
        async for part in engine(req).parts(upload, after=marker):
            if len(parts) == limit:
                truncated = True
                break
            parts.append(part)
    body = xml.document(
        "ListPartsResult",
        [
            ("Bucket", upload.bucket),
            ("Key", _enc(encoding, upload.key)),
            ("UploadId", upload.upload_id),
            ("Initiator", owner()),
            ("Owner", owner()),
            ("StorageClass", upload.metadata.storage_class or "STANDARD"),
            ("PartNumberMarker", marker),
            ("NextPartNumberMarker", parts[-1].number if parts else None),
            ("MaxParts", limit),
            ("EncodingType", encoding),
            ("IsTruncated", truncated),
            *(_part_node(p, upload) for p in parts),
            *_checksum_fields(upload),
        ],
    )
    return xml_response(body)


def _upload_node(upload: Upload, encoding: str | None) -> xml.Node:
    return (
        "Upload",
        [
            ("Key", _enc(encoding, upload.key)),
            ("UploadId", upload.upload_id),
            ("Initiator", owner()),
            ("Owner", owner()),
            ("StorageClass", upload.metadata.storage_class or "STANDARD"),
            ("Initiated", upload.initiated),
            *_checksum_fields(upload),
        ],
    )


async def list_multipart_uploads(req: S3Request) -> S3Response:
    assert req.bucket is not None  # guaranteed by dispatch
    bucket = req.bucket
    prefix = req.query.get("prefix", "")
    delimiter = req.query.get("delimiter", "")
    key_marker = req.query.get("key-marker", "")
    # S3 ignores the upload-id-marker unless a key-marker is given.
    id_marker = req.query.get("upload-id-marker", "") if key_marker else ""
    limit = min(_count(req, "max-uploads", MAX_ENTRIES), MAX_ENTRIES)
    encoding = _encoding(req)
    uploads: list[Upload] = []
    prefixes: list[str] = []
    truncated = False
    next_key = next_id = ""
    with storage_errors(bucket):
        if limit == 0:
            await req.backend.head_bucket(bucket)
        else:
            async for entry in engine(req).uploads(
                bucket, prefix, delimiter, key_marker, id_marker
            ):
                if len(uploads) + len(prefixes) == limit:
                    truncated = True
                    break
                if isinstance(entry, str):
                    prefixes.append(entry)
                    next_key, next_id = entry, ""
                else:
                    uploads.append(entry)
                    next_key, next_id = entry.key, entry.upload_id
    body = xml.document(
        "ListMultipartUploadsResult",
        [
            ("Bucket", bucket),
            ("KeyMarker", _enc(encoding, key_marker)),
            ("UploadIdMarker", id_marker),
            ("NextKeyMarker", _enc(encoding, next_key) if truncated else ""),
            ("NextUploadIdMarker", next_id if truncated else ""),
            ("Delimiter", _enc(encoding, delimiter) if delimiter else None),
            ("Prefix", _enc(encoding, prefix)),
            ("MaxUploads", limit),
            ("EncodingType", encoding),
            ("IsTruncated", truncated),
            *(_upload_node(u, encoding) for u in uploads),
            *(("CommonPrefixes", [("Prefix", _enc(encoding, p))]) for p in prefixes),
        ],
    )
    return xml_response(body)


HANDLERS: Handlers = {
    "ListParts": list_parts,
    "ListMultipartUploads": list_multipart_uploads,
}
