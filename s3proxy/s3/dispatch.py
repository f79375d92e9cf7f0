"""Raw path + query + method -> (bucket, key, S3 operation name).

Works on the raw request path, because decoded ASGI paths lose ``%2F``, ``//`` and
trailing slashes, all legal in S3 keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from s3proxy.s3.errors import S3Error
from s3proxy.storage.keys import MAX_KEY_BYTES


@dataclass(slots=True, frozen=True)
class Target:
    bucket: str | None
    key: str | None


def _decode(raw: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI") from None


def parse_target(raw_path: bytes) -> Target:
    """Split a path-style request path into bucket and key (both percent-decoded)."""
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI") from None
    path = path.split("?", 1)[0]
    if not path.startswith("/"):
        raise S3Error("InvalidURI")
    bucket_raw, sep, key_raw = path[1:].partition("/")
    if not bucket_raw:
        return Target(None, None)
    bucket = _decode(bucket_raw)
    key = _decode(key_raw) if sep and key_raw else None
    if key is not None and len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", resource=path)
    return Target(bucket, key)


def virtual_host_path(raw_path: bytes, host: str, base_domains: list[str]) -> bytes:
    """Map a virtual-host style request (``bucket.<base domain>``) onto path style.

    The raw path is kept byte for byte, so keys keep ``//``, ``%2F`` and trailing ``/``.
    """
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    host = host.lower().rstrip(".")
    for domain in base_domains:
        domain = domain.lower().rstrip(".")
        if host.endswith("." + domain):
            bucket = host[: -len(domain) - 1]
            return b"/" + quote(bucket, safe="").encode() + raw_path
    return raw_path


_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Four dotted numbers, whether or not they form a valid address (192.168.05.4, 999.1.1.1).
_IP_SHAPED = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def valid_bucket_name(name: str) -> bool:
    """The S3 general purpose bucket naming rules."""
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    if not _BUCKET_RE.fullmatch(name) or ".." in name or ".-" in name or "-." in name:
        return False
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        return False
    return not _IP_SHAPED.fullmatch(name)


# Bucket sub-resources: query parameter -> operation name suffix. The operation is
# "<Get|Put|Delete>Bucket<suffix>" unless _BUCKET_IRREGULAR names it.
_BUCKET_SUBRESOURCES = {
    "accelerate": "AccelerateConfiguration",
    "acl": "Acl",
    "analytics": "AnalyticsConfiguration",
    "cors": "Cors",
    "encryption": "Encryption",
    "intelligent-tiering": "IntelligentTieringConfiguration",
    "inventory": "InventoryConfiguration",
    "lifecycle": "LifecycleConfiguration",
    "location": "Location",
    "logging": "Logging",
    "metadataTable": "MetadataTableConfiguration",
    "metrics": "MetricsConfiguration",
    "notification": "NotificationConfiguration",
    "object-lock": "ObjectLockConfiguration",
    "ownershipControls": "OwnershipControls",
    "policy": "Policy",
    "policyStatus": "PolicyStatus",
    "publicAccessBlock": "PublicAccessBlock",
    "replication": "Replication",
    "requestPayment": "RequestPayment",
    "tagging": "Tagging",
    "versioning": "Versioning",
    "website": "Website",
}
_BUCKET_IRREGULAR = {
    ("GET", "versions"): "ListObjectVersions",
    ("GET", "uploads"): "ListMultipartUploads",
    ("POST", "delete"): "DeleteObjects",
    ("GET", "session"): "CreateSession",
    ("DELETE", "lifecycle"): "DeleteBucketLifecycle",
    ("GET", "object-lock"): "GetObjectLockConfiguration",
    ("PUT", "object-lock"): "PutObjectLockConfiguration",
    ("GET", "publicAccessBlock"): "GetPublicAccessBlock",
    ("PUT", "publicAccessBlock"): "PutPublicAccessBlock",
    ("DELETE", "publicAccessBlock"): "DeletePublicAccessBlock",
    ("POST", "metadataTable"): "CreateBucketMetadataTableConfiguration",
}
# Listing forms of configuration sub-resources (GET without an id).
_BUCKET_LISTS = {
    "analytics": "ListBucketAnalyticsConfigurations",
    "intelligent-tiering": "ListBucketIntelligentTieringConfigurations",
    "inventory": "ListBucketInventoryConfigurations",
    "metrics": "ListBucketMetricsConfigurations",
}
_KNOWN_BUCKET_SUBRESOURCES = set(_BUCKET_SUBRESOURCES) | {s for _, s in _BUCKET_IRREGULAR}
_OBJECT_OPS = {
    ("GET", "acl"): "GetObjectAcl",
    ("PUT", "acl"): "PutObjectAcl",
    ("GET", "tagging"): "GetObjectTagging",
    ("PUT", "tagging"): "PutObjectTagging",
    ("DELETE", "tagging"): "DeleteObjectTagging",
    ("GET", "retention"): "GetObjectRetention",
    ("PUT", "retention"): "PutObjectRetention",
    ("GET", "legal-hold"): "GetObjectLegalHold",
    ("PUT", "legal-hold"): "PutObjectLegalHold",
    ("GET", "torrent"): "GetObjectTorrent",
    ("GET", "attributes"): "GetObjectAttributes",
    ("POST", "restore"): "RestoreObject",
    ("POST", "select"): "SelectObjectContent",
    ("POST", "uploads"): "CreateMultipartUpload",
    ("PUT", "renameObject"): "RenameObject",
}
_UPLOAD_OPS = {
    "GET": "ListParts",
    "POST": "CompleteMultipartUpload",
    "DELETE": "AbortMultipartUpload",
}


def _bucket_operation(method: str, query: Mapping[str, str]) -> str:
    for sub in query:
        if (method, sub) in _BUCKET_IRREGULAR:
            return _BUCKET_IRREGULAR[(method, sub)]
        if sub in _BUCKET_SUBRESOURCES and method in ("GET", "PUT", "DELETE"):
            if method == "GET" and sub in _BUCKET_LISTS and "id" not in query:
                return _BUCKET_LISTS[sub]
            verb = method.capitalize()
            return f"{verb}Bucket{_BUCKET_SUBRESOURCES[sub]}"
        if sub in _KNOWN_BUCKET_SUBRESOURCES:
            raise S3Error("MethodNotAllowed")
    match method:
        case "GET":
            return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
        case "PUT":
            return "CreateBucket"
        case "HEAD":
            return "HeadBucket"
        case "DELETE":
            return "DeleteBucket"
        case "POST":
            return "PostObject"
    raise S3Error("MethodNotAllowed")


def _object_operation(method: str, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    if "uploadId" in query:
        if method == "PUT":
            return "UploadPartCopy" if "x-amz-copy-source" in headers else "UploadPart"
        if method in _UPLOAD_OPS:
            return _UPLOAD_OPS[method]
        raise S3Error("MethodNotAllowed")
    for sub in query:
        if (method, sub) in _OBJECT_OPS:
            return _OBJECT_OPS[(method, sub)]
    match method:
        case "GET":
            return "GetObject"
        case "HEAD":
            return "HeadObject"
        case "PUT":
            return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
        case "DELETE":
            return "DeleteObject"
    raise S3Error("MethodNotAllowed")


def operation(
    method: str, target: Target, query: Mapping[str, str], headers: Mapping[str, str]
) -> str:
    """The S3 API operation name a request addresses (e.g. ``ListObjectsV2``)."""
    if target.bucket is None:
        if method == "GET":
            return "ListBuckets"
        raise S3Error("MethodNotAllowed")
    if target.key is None:
        return _bucket_operation(method, query)
    return _object_operation(method, query, headers)
