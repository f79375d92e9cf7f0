"""Request path -> bucket/key, bucket naming rules, and S3 operation names."""

from __future__ import annotations

import pytest

from s3proxy.s3.dispatch import Target, operation, parse_target, valid_bucket_name
from s3proxy.s3.errors import S3Error

# -- parse_target ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "bucket", "key"),
    [
        (b"/", None, None),
        (b"/?list-type=2", None, None),
        (b"/bucket", "bucket", None),
        (b"/bucket/", "bucket", None),
        (b"/bucket?location", "bucket", None),
        (b"/bucket/key", "bucket", "key"),
        (b"/bucket/a/b/c.txt", "bucket", "a/b/c.txt"),
        # Empty segments and trailing slashes are part of the key.
        (b"/bucket/a//b/", "bucket", "a//b/"),
        (b"/bucket//", "bucket", "/"),
        (b"/bucket/dir/", "bucket", "dir/"),
        # %2F is a slash in the key, not a separator that was lost.
        (b"/bucket/a%2Fb", "bucket", "a/b"),
        (b"/bucket/%2F%2f", "bucket", "//"),
        (b"/bucket/sp%20ace+plus", "bucket", "sp ace+plus"),
        (b"/bucket/%C3%A9t%C3%A9", "bucket", "\u00e9t\u00e9"),
        (b"/bucket/%00%01", "bucket", "\x00\x01"),
        (b"/bucket/../x", "bucket", "../x"),
        (b"/bucket/100%25", "bucket", "100%"),
        (b"/bucket/key?versionId=3&x=%2F", "bucket", "key"),
        (b"/my%2Dbucket/k", "my-bucket", "k"),
    ],
)
def test_parse_target(raw: bytes, bucket: str | None, key: str | None) -> None:
    assert parse_target(raw) == Target(bucket, key)


@pytest.mark.parametrize(
    "raw",
    [
        b"/bucket/%FF",
        b"/bucket/%C3",  # truncated UTF-8 sequence
        b"/bucket/%ED%A0%80",  # encoded surrogate
        b"/b%FFucket/k",
        b"bucket/key",  # not absolute
        b"",
    ],
)
def test_parse_target_invalid_uri(raw: bytes) -> None:
    with pytest.raises(S3Error) as info:
        parse_target(raw)
    assert info.value.code == "InvalidURI"
    assert info.value.status == 400


def test_key_length_limit_is_in_utf8_bytes() -> None:
    assert parse_target(b"/bucket/" + b"k" * 1024).key == "k" * 1024
    assert parse_target(b"/bucket/" + b"%C3%A9" * 512).key == "\u00e9" * 512
    for raw in (b"/bucket/" + b"k" * 1025, b"/bucket/" + b"%C3%A9" * 512 + b"k"):
        with pytest.raises(S3Error) as info:
            parse_target(raw)
        assert info.value.code == "KeyTooLongError"
        assert info.value.status == 400


def test_key_length_counts_decoded_bytes() -> None:
    # 1024 bytes once decoded, though the raw path is three times longer.
    assert parse_target(b"/bucket/" + b"%41" * 1024).key == "A" * 1024


# -- valid_bucket_name ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "abc",
        "a" * 63,
        "my-bucket",
        "my.bucket.name",
        "123",
        "0bucket9",
        "a-b-c",
        "a--b",
        "docexamplebucket1",
        "log-delivery-march-2020",
        "my-hosted-content",
        "1.2.3",  # three numbers are not an IP address
        "1.2.3.4.5",
        "192.168.5.4a",
        "xn-bucket",
        "bucket-xn--a",
        "sthree",
        "s3alias",
        "bucket-s3alias-x",
        "bucket.mrap.x",
    ],
)
def test_valid_bucket_names(name: str) -> None:
    assert valid_bucket_name(name)


@pytest.mark.parametrize(
    "name",
    [
        # Length 3-63.
        "",
        "a",
        "ab",
        "a" * 64,
        # Lowercase letters, digits, dots and hyphens only.
        "MyBucket",
        "my_bucket",
        "my bucket",
        "my/bucket",
        "bucket\u00e9",
        "buck\u0131t",
        # Start and end with a letter or number.
        "-bucket",
        "bucket-",
        ".bucket",
        "bucket.",
        # No two adjacent periods, and (legacy label rule) no period next to a hyphen.
        "my..bucket",
        "my.-bucket",
        "my-.bucket",
        # Not IP-shaped, valid address or not.
        "192.168.5.4",
        "0.0.0.0",
        "192.168.05.4",
        "999.999.999.999",
        # Reserved prefixes.
        "xn--bucket",
        "sthree-bucket",
        "sthree-configurator",
        "amzn-s3-demo-bucket",
        # Reserved suffixes.
        "bucket-s3alias",
        "bucket--ol-s3",
        "bucket.mrap",
        "bucket--x-s3",
        "bucket--table-s3",
        # "$" in a regex also matches before a trailing newline.
        "bucket\n",
        "bucket\r\n",
        "bucket\x00",
    ],
)
def test_invalid_bucket_names(name: str) -> None:
    assert not valid_bucket_name(name)


# -- operation ------------------------------------------------------------------------

COPY = {"x-amz-copy-source": "/src/key"}


def op(
    method: str,
    path: bytes,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    return operation(method, parse_target(path), query or {}, headers or {})


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "expected"),
    [
        # Service
        ("GET", b"/", {}, {}, "ListBuckets"),
        # Bucket
        ("PUT", b"/bucket", {}, {}, "CreateBucket"),
        ("HEAD", b"/bucket", {}, {}, "HeadBucket"),
        ("DELETE", b"/bucket", {}, {}, "DeleteBucket"),
        ("GET", b"/bucket", {}, {}, "ListObjects"),
        ("GET", b"/bucket/", {"prefix": "a/", "delimiter": "/"}, {}, "ListObjects"),
        ("GET", b"/bucket", {"list-type": "2"}, {}, "ListObjectsV2"),
        ("GET", b"/bucket", {"list-type": "2", "start-after": "x"}, {}, "ListObjectsV2"),
        ("GET", b"/bucket", {"list-type": "1"}, {}, "ListObjects"),
        ("GET", b"/bucket", {"location": ""}, {}, "GetBucketLocation"),
        ("GET", b"/bucket", {"acl": ""}, {}, "GetBucketAcl"),
        ("PUT", b"/bucket", {"acl": ""}, {}, "PutBucketAcl"),
        ("GET", b"/bucket", {"cors": ""}, {}, "GetBucketCors"),
        ("PUT", b"/bucket", {"cors": ""}, {}, "PutBucketCors"),
        ("DELETE", b"/bucket", {"cors": ""}, {}, "DeleteBucketCors"),
        ("GET", b"/bucket", {"lifecycle": ""}, {}, "GetBucketLifecycleConfiguration"),
        ("PUT", b"/bucket", {"lifecycle": ""}, {}, "PutBucketLifecycleConfiguration"),
        ("DELETE", b"/bucket", {"lifecycle": ""}, {}, "DeleteBucketLifecycle"),
        ("GET", b"/bucket", {"versioning": ""}, {}, "GetBucketVersioning"),
        ("PUT", b"/bucket", {"versioning": ""}, {}, "PutBucketVersioning"),
        ("GET", b"/bucket", {"tagging": ""}, {}, "GetBucketTagging"),
        ("DELETE", b"/bucket", {"tagging": ""}, {}, "DeleteBucketTagging"),
        ("GET", b"/bucket", {"policy": ""}, {}, "GetBucketPolicy"),
        ("GET", b"/bucket", {"policyStatus": ""}, {}, "GetBucketPolicyStatus"),
        ("GET", b"/bucket", {"encryption": ""}, {}, "GetBucketEncryption"),
        ("GET", b"/bucket", {"notification": ""}, {}, "GetBucketNotificationConfiguration"),
        ("GET", b"/bucket", {"website": ""}, {}, "GetBucketWebsite"),
        ("GET", b"/bucket", {"ownershipControls": ""}, {}, "GetBucketOwnershipControls"),
        ("GET", b"/bucket", {"accelerate": ""}, {}, "GetBucketAccelerateConfiguration"),
        ("GET", b"/bucket", {"requestPayment": ""}, {}, "GetBucketRequestPayment"),
        ("GET", b"/bucket", {"object-lock": ""}, {}, "GetObjectLockConfiguration"),
        ("PUT", b"/bucket", {"object-lock": ""}, {}, "PutObjectLockConfiguration"),
        ("GET", b"/bucket", {"publicAccessBlock": ""}, {}, "GetPublicAccessBlock"),
        ("DELETE", b"/bucket", {"publicAccessBlock": ""}, {}, "DeletePublicAccessBlock"),
        ("GET", b"/bucket", {"metrics": ""}, {}, "ListBucketMetricsConfigurations"),
        ("GET", b"/bucket", {"metrics": "", "id": "m"}, {}, "GetBucketMetricsConfiguration"),
        ("PUT", b"/bucket", {"metrics": "", "id": "m"}, {}, "PutBucketMetricsConfiguration"),
        ("GET", b"/bucket", {"analytics": ""}, {}, "ListBucketAnalyticsConfigurations"),
        ("GET", b"/bucket", {"inventory": "", "id": "i"}, {}, "GetBucketInventoryConfiguration"),
        ("GET", b"/bucket", {"versions": ""}, {}, "ListObjectVersions"),
        ("GET", b"/bucket", {"versions": "", "prefix": "a"}, {}, "ListObjectVersions"),
        ("GET", b"/bucket", {"uploads": ""}, {}, "ListMultipartUploads"),
        ("POST", b"/bucket", {"delete": ""}, {}, "DeleteObjects"),
        ("GET", b"/bucket", {"session": ""}, {}, "CreateSession"),
        # Object
        ("PUT", b"/bucket/key", {}, {}, "PutObject"),
        ("PUT", b"/bucket/key", {}, COPY, "CopyObject"),
        ("GET", b"/bucket/key", {}, {}, "GetObject"),
        ("GET", b"/bucket/key", {"versionId": "v1"}, {}, "GetObject"),
        ("GET", b"/bucket/key", {"partNumber": "1"}, {}, "GetObject"),
        ("HEAD", b"/bucket/key", {}, {}, "HeadObject"),
        ("DELETE", b"/bucket/key", {}, {}, "DeleteObject"),
        ("DELETE", b"/bucket/key", {"versionId": "v1"}, {}, "DeleteObject"),
        ("GET", b"/bucket/key", {"tagging": ""}, {}, "GetObjectTagging"),
        ("PUT", b"/bucket/key", {"tagging": ""}, {}, "PutObjectTagging"),
        ("DELETE", b"/bucket/key", {"tagging": ""}, {}, "DeleteObjectTagging"),
        ("GET", b"/bucket/key", {"acl": ""}, {}, "GetObjectAcl"),
        ("GET", b"/bucket/key", {"attributes": ""}, {}, "GetObjectAttributes"),
        ("GET", b"/bucket/key", {"retention": ""}, {}, "GetObjectRetention"),
        ("PUT", b"/bucket/key", {"legal-hold": ""}, {}, "PutObjectLegalHold"),
        ("POST", b"/bucket/key", {"restore": ""}, {}, "RestoreObject"),
        ("POST", b"/bucket/key", {"select": "", "select-type": "2"}, {}, "SelectObjectContent"),
        # Multipart upload
        ("POST", b"/bucket/key", {"uploads": ""}, {}, "CreateMultipartUpload"),
        ("PUT", b"/bucket/key", {"partNumber": "1", "uploadId": "u"}, {}, "UploadPart"),
        ("PUT", b"/bucket/key", {"partNumber": "2", "uploadId": "u"}, COPY, "UploadPartCopy"),
        ("POST", b"/bucket/key", {"uploadId": "u"}, {}, "CompleteMultipartUpload"),
        ("DELETE", b"/bucket/key", {"uploadId": "u"}, {}, "AbortMultipartUpload"),
        ("GET", b"/bucket/key", {"uploadId": "u"}, {}, "ListParts"),
        ("GET", b"/bucket/key", {"uploadId": "u", "max-parts": "5"}, {}, "ListParts"),
        # Keys that look like sub-resources are still keys.
        ("GET", b"/bucket/acl", {}, {}, "GetObject"),
        ("GET", b"/bucket/uploads/", {}, {}, "GetObject"),
    ],
)
def test_operation(
    method: str,
    path: bytes,
    query: dict[str, str],
    headers: dict[str, str],
    expected: str,
) -> None:
    assert op(method, path, query, headers) == expected


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("POST", b"/", {}),
        ("PUT", b"/", {}),
        ("DELETE", b"/", {}),
        ("HEAD", b"/", {}),
        ("PATCH", b"/", {}),
        ("PATCH", b"/bucket", {}),
        ("PATCH", b"/bucket/key", {}),
        ("OPTIONS", b"/bucket/key", {}),
        ("POST", b"/bucket/key", {}),
        ("HEAD", b"/bucket/key", {"uploadId": "u"}),
        ("PATCH", b"/bucket/key", {"uploadId": "u"}),
        # A known bucket sub-resource with a method it does not have.
        ("POST", b"/bucket", {"uploads": ""}),
        ("GET", b"/bucket", {"delete": ""}),
        ("POST", b"/bucket", {"acl": ""}),
    ],
)
def test_method_not_allowed(method: str, path: bytes, query: dict[str, str]) -> None:
    with pytest.raises(S3Error) as info:
        op(method, path, query)
    assert info.value.code == "MethodNotAllowed"
    assert info.value.status == 405
