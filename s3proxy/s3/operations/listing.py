"""Listing operations: ListObjects (v1) and ListObjectsV2."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import quote

from s3proxy.s3 import xml
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request, S3Response, xml_response
from s3proxy.s3.operations import Handlers, owner, storage_errors
from s3proxy.storage.backend import ObjectInfo

MAX_KEYS = 1000
_TOKEN_VERSION = b"1\x00"


def encode_token(last: str) -> str:
    """Continuation tokens carry the last returned entry, so any replica can resume."""
    return base64.urlsafe_b64encode(_TOKEN_VERSION + last.encode()).decode()


def decode_token(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        if not raw.startswith(_TOKEN_VERSION):
            raise ValueError(token)
        return raw[len(_TOKEN_VERSION) :].decode()
    except (binascii.Error, ValueError):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect") from None


@dataclass(slots=True)
class Page:
    objects: list[ObjectInfo]
    prefixes: list[str]
    truncated: bool
    last: str  # last entry returned (key or common prefix), "" if none


def _max_keys(req: S3Request) -> int:
    raw = req.query.get("max-keys", str(MAX_KEYS))
    try:
        value = int(raw)
    except ValueError:
        raise S3Error(
            "InvalidArgument", "Provided max-keys not an integer or within integer range"
        ) from None
    if value < 0:
        raise S3Error(
            "InvalidArgument", "Argument maxKeys must be an integer between 0 and 2147483647"
        )
    return min(value, MAX_KEYS)


def _encoding(req: S3Request) -> str | None:
    encoding = req.query.get("encoding-type")
    if encoding not in (None, "url"):
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return encoding


async def _page(req: S3Request, prefix: str, delimiter: str, start_after: str, limit: int) -> Page:
    assert req.bucket is not None
    objects: list[ObjectInfo] = []
    prefixes: list[str] = []
    last = ""
    truncated = False
    with storage_errors(req.bucket):
        if limit == 0:
            await req.backend.head_bucket(req.bucket)
            return Page(objects, prefixes, False, "")
        async for entry in req.backend.list(req.bucket, prefix, start_after, delimiter):
            if len(objects) + len(prefixes) == limit:
                truncated = True
                break
            if isinstance(entry, str):
                prefixes.append(entry)
                last = entry
            else:
                objects.append(entry)
                last = entry.key
    return Page(objects, prefixes, truncated, last)


def _entries(page: Page, url: bool, with_owner: bool) -> list[xml.Node]:
    enc = _url if url else _plain
    nodes: list[xml.Node] = []
    for obj in page.objects:
        fields: list[xml.Node] = [
            ("Key", enc(obj.key)),
            ("LastModified", obj.last_modified),
            ("ETag", f'"{obj.etag}"'),
            ("Size", obj.size),
        ]
        if with_owner:
            fields.append(("Owner", owner()))
        fields.append(("StorageClass", obj.metadata.storage_class or "STANDARD"))
        nodes.append(("Contents", fields))
    nodes.extend(("CommonPrefixes", [("Prefix", enc(p))]) for p in page.prefixes)
    return nodes


def _url(value: str) -> str:
    return quote(value, safe="/")


def _plain(value: str) -> str:
    return value


async def list_objects_v2(req: S3Request) -> S3Response:
    prefix = req.query.get("prefix", "")
    delimiter = req.query.get("delimiter", "")
    start_after = req.query.get("start-after", "")
    token = req.query.get("continuation-token")
    encoding = _encoding(req)
    limit = _max_keys(req)
    resume = decode_token(token) if token is not None else start_after
    page = await _page(req, prefix, delimiter, resume, limit)
    enc = _url if encoding else _plain
    assert req.bucket is not None
    body = xml.document(
        "ListBucketResult",
        [
            ("Name", req.bucket),
            ("Prefix", enc(prefix)),
            ("Delimiter", enc(delimiter) if delimiter else None),
            ("MaxKeys", limit),
            ("EncodingType", encoding),
            ("KeyCount", len(page.objects) + len(page.prefixes)),
            ("IsTruncated", page.truncated),
            ("ContinuationToken", token),
            ("NextContinuationToken", encode_token(page.last) if page.truncated else None),
            ("StartAfter", enc(start_after) if start_after else None),
            *_entries(page, bool(encoding), req.query.get("fetch-owner") == "true"),
        ],
    )
    return xml_response(body)


async def list_objects(req: S3Request) -> S3Response:
    prefix = req.query.get("prefix", "")
    delimiter = req.query.get("delimiter", "")
    marker = req.query.get("marker", "")
    encoding = _encoding(req)
    limit = _max_keys(req)
    page = await _page(req, prefix, delimiter, marker, limit)
    enc = _url if encoding else _plain
    assert req.bucket is not None
    # NextMarker is only returned with a delimiter; without one clients use the last key.
    next_marker = enc(page.last) if page.truncated and delimiter else None
    body = xml.document(
        "ListBucketResult",
        [
            ("Name", req.bucket),
            ("Prefix", enc(prefix)),
            ("Marker", enc(marker)),
            ("NextMarker", next_marker),
            ("Delimiter", enc(delimiter) if delimiter else None),
            ("MaxKeys", limit),
            ("EncodingType", encoding),
            ("IsTruncated", page.truncated),
            *_entries(page, bool(encoding), with_owner=True),
        ],
    )
    return xml_response(body)


async def list_object_versions(req: S3Request) -> S3Response:
    """Buckets are unversioned: every object is its only version, ``null``."""
    prefix = req.query.get("prefix", "")
    delimiter = req.query.get("delimiter", "")
    key_marker = req.query.get("key-marker", "")
    version_marker = req.query.get("version-id-marker")
    if version_marker is not None and not key_marker:
        raise S3Error(
            "InvalidArgument", "A version-id marker cannot be specified without a key marker."
        )
    if version_marker not in (None, "", "null"):
        raise S3Error("InvalidArgument", "Invalid version id specified")
    encoding = _encoding(req)
    limit = _max_keys(req)
    page = await _page(req, prefix, delimiter, key_marker, limit)
    enc = _url if encoding else _plain
    assert req.bucket is not None
    versions: list[xml.Node] = [
        (
            "Version",
            [
                ("Key", enc(obj.key)),
                ("VersionId", "null"),
                ("IsLatest", True),
                ("LastModified", obj.last_modified),
                ("ETag", f'"{obj.etag}"'),
                ("Size", obj.size),
                ("Owner", owner()),
                ("StorageClass", obj.metadata.storage_class or "STANDARD"),
            ],
        )
        for obj in page.objects
    ]
    truncated = page.truncated
    body = xml.document(
        "ListVersionsResult",
        [
            ("Name", req.bucket),
            ("Prefix", enc(prefix)),
            ("KeyMarker", enc(key_marker)),
            ("VersionIdMarker", version_marker or ""),
            ("NextKeyMarker", enc(page.last) if truncated else None),
            ("NextVersionIdMarker", "null" if truncated else None),
            ("MaxKeys", limit),
            ("Delimiter", enc(delimiter) if delimiter else None),
            ("EncodingType", encoding),
            ("IsTruncated", truncated),
            *versions,
            *(("CommonPrefixes", [("Prefix", enc(p))]) for p in page.prefixes),
        ],
    )
    return xml_response(body)


HANDLERS: Handlers = {
    "ListObjectVersions": list_object_versions,
    "ListObjectsV2": list_objects_v2,
    "ListObjects": list_objects,
}
