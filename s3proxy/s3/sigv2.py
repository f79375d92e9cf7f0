"""AWS Signature Version 2 (legacy), for older tools; off unless ``auth.allow_sigv2``.

Header form ``Authorization: AWS <key>:<signature>`` and query form (``AWSAccessKeyId``,
``Signature``, ``Expires``). The signature is base64(HMAC-SHA1(secret, StringToSign)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from s3proxy.s3.errors import S3Error

# Query parameters that are part of the signed resource, as S3 lists them.
SUBRESOURCES = frozenset(
    {
        "acl", "cors", "delete", "lifecycle", "location", "logging", "notification",
        "partNumber", "policy", "requestPayment", "restore", "tagging", "torrent",
        "uploadId", "uploads", "versionId", "versioning", "versions", "website",
        "response-cache-control", "response-content-disposition",
        "response-content-encoding", "response-content-language",
        "response-content-type", "response-expires",
    }
)  # fmt: skip
_SPACES = re.compile(r"\s+")


@dataclass(slots=True, frozen=True)
class V2Request:
    access_key_id: str
    signature: str
    #: The Date line of the string to sign (the Expires value for query auth).
    date_line: str
    expires: int | None


def parse(header: str | None, query: Mapping[str, str], headers: Mapping[str, str]) -> V2Request:
    if header is not None:
        creds = header[len("AWS ") :]
        key, sep, signature = creds.rpartition(":")
        if not sep or not key or not signature:
            raise S3Error("InvalidArgument", "AWS authorization header is invalid.")
        # With x-amz-date present, the Date line is empty (x-amz-date is signed instead).
        date_line = "" if "x-amz-date" in headers else headers.get("date", "")
        return V2Request(key, signature, date_line, None)
    expires = query.get("Expires", "")
    if not expires.isdigit():
        raise S3Error("AccessDenied", "Query-string authentication requires the Expires parameter")
    return V2Request(query["AWSAccessKeyId"], query.get("Signature", ""), expires, int(expires))


def string_to_sign(
    method: str,
    resource_path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    date_line: str,
) -> str:
    """``resource_path`` is the path-style request path as sent (still percent-encoded)."""
    amz = sorted(
        (name, _SPACES.sub(" ", value.strip()))
        for name, value in headers.items()
        if name.startswith("x-amz-")
    )
    canonical_amz = "".join(f"{name}:{value}\n" for name, value in amz)
    subs = sorted((k, v) for k, v in query.items() if k in SUBRESOURCES)
    resource = resource_path
    if subs:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)
    return "\n".join(
        [
            method,
            headers.get("content-md5", ""),
            headers.get("content-type", ""),
            date_line,
            canonical_amz + resource,
        ]
    )


def sign(secret: str, to_sign: str) -> str:
    digest = hmac.new(secret.encode(), to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def matches(expected: str, provided: str) -> bool:
    return hmac.compare_digest(expected.encode(), provided.encode())
