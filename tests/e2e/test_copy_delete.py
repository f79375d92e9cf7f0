"""CopyObject and DeleteObjects through a running proxy (both built-in lanes)."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest
from botocore.exceptions import ClientError

from s3proxy.s3 import checksums
from tests.e2e.test_boto3_core import AWKWARD_KEYS, error_of
from tests.e2e.test_objects_semantics import code_of

SELF_COPY = (
    "This copy request is illegal because it is trying to copy an object to itself without "
    "changing the object's metadata, storage class, website redirect location or encryption "
    "attributes."
)


def put_source(s3, bucket: str, key: str = "src", body: bytes = b"source bytes") -> str:
    return str(
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="text/plain",
            CacheControl="no-cache",
            Metadata={"origin": "source"},
            ChecksumAlgorithm="SHA256",
        )["ETag"]
    )


# -- CopyObject ----------------------------------------------------------------------------


def test_copy_keeps_metadata_by_default(s3, bucket) -> None:
    etag = put_source(s3, bucket)
    result = s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/src")
    copied = result["CopyObjectResult"]
    assert copied["ETag"] == etag
    head = s3.head_object(Bucket=bucket, Key="dst", ChecksumMode="ENABLED")
    # The backend stamps the object itself; the result may be a second earlier.
    assert timedelta(0) <= head["LastModified"] - copied["LastModified"] <= timedelta(seconds=1)
    assert copied["LastModified"].microsecond == 0
    assert head["ETag"] == etag
    assert head["ContentType"] == "text/plain"
    assert head["CacheControl"] == "no-cache"
    assert head["Metadata"] == {"origin": "source"}
    # The source's checksum algorithm carries over, recomputed on the copy.
    assert copied["ChecksumSHA256"] == head["ChecksumSHA256"]
    assert head["ChecksumSHA256"] == checksums.compute("SHA256", b"source bytes")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"source bytes"


def test_copy_replace_metadata_and_checksum(s3, bucket) -> None:
    put_source(s3, bucket)
    result = s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="application/json",
        Metadata={"new": "yes"},
        StorageClass="STANDARD_IA",
        ChecksumAlgorithm="CRC32C",
    )
    assert result["CopyObjectResult"]["ChecksumCRC32C"] == checksums.compute(
        "CRC32C", b"source bytes"
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"new": "yes"}
    assert "CacheControl" not in head
    assert head["StorageClass"] == "STANDARD_IA"


def test_copy_onto_itself(s3, bucket) -> None:
    put_source(s3, bucket)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert error_of(exc) == ("InvalidRequest", 400)
    assert exc.value.response["Error"]["Message"] == SELF_COPY
    s3.copy_object(
        Bucket=bucket,
        Key="src",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"changed": "1"},
    )
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"changed": "1"}
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"source bytes"
    # Changing the storage class alone is a change too.
    s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src", StorageClass="STANDARD_IA")
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"changed": "1"}


@pytest.mark.parametrize("key", AWKWARD_KEYS, ids=range(len(AWKWARD_KEYS)))
def test_copy_awkward_keys(s3, bucket, key: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    # Same length or shorter: the longest keys are at the limit already.
    dst = "c" + key[1:] if not key.startswith("c") else "d" + key[1:]
    s3.copy_object(Bucket=bucket, Key=dst, CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=bucket, Key=dst)["Body"].read() == key.encode()


def test_copy_source_header_forms(proxy, bucket) -> None:
    key = "dir/a b+c?d%e"
    httpx.put(f"{proxy.endpoint}/{bucket}/{quote(key)}", content=b"forms").raise_for_status()
    dst = f"{proxy.endpoint}/{bucket}/dst"
    encoded = quote(key, safe="/")
    for source in [
        f"/{bucket}/{encoded}",
        f"{bucket}/{encoded}",
        f"/{bucket}/{encoded}?versionId=null",
    ]:
        resp = httpx.put(dst, headers={"x-amz-copy-source": source})
        assert resp.status_code == 200, (source, resp.text)
        assert "<CopyObjectResult" in resp.text
        assert httpx.get(dst).content == b"forms"
    for source, code in [
        (f"/{bucket}/{encoded}?versionId=abc", "InvalidArgument"),
        (f"/{bucket}", "InvalidArgument"),
        (f"/{bucket}/", "InvalidArgument"),
        ("/Not_A_Bucket/key", "InvalidBucketName"),
    ]:
        resp = httpx.put(dst, headers={"x-amz-copy-source": source})
        assert (resp.status_code, code_of(resp)) == (400, code), source
    resp = httpx.put(
        dst, headers={"x-amz-copy-source": f"/{bucket}/{encoded}", "x-amz-metadata-directive": "X"}
    )
    assert code_of(resp) == "InvalidArgument"


def test_copy_missing_source(s3, bucket) -> None:
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "nope"})
    assert error_of(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource="no-such-bucket-xyz/k")
    assert error_of(exc) == ("NoSuchBucket", 404)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_copy_source_conditions(s3, bucket) -> None:
    etag = put_source(s3, bucket)
    modified = s3.head_object(Bucket=bucket, Key="src")["LastModified"]
    before, after = modified - timedelta(days=1), modified + timedelta(days=1)
    source = {"Bucket": bucket, "Key": "src"}
    for kwargs in [
        {"CopySourceIfMatch": etag},
        {"CopySourceIfNoneMatch": '"other"'},
        {"CopySourceIfModifiedSince": before},
        {"CopySourceIfUnmodifiedSince": after},
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": before},
    ]:
        s3.copy_object(Bucket=bucket, Key="ok", CopySource=source, **kwargs)
    for kwargs in [
        {"CopySourceIfMatch": '"other"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfModifiedSince": after},
        {"CopySourceIfUnmodifiedSince": before},
        {"CopySourceIfNoneMatch": etag, "CopySourceIfModifiedSince": before},
    ]:
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=bucket, Key="refused", CopySource=source, **kwargs)
        assert error_of(exc) == ("PreconditionFailed", 412), kwargs
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["ok", "src"]


def test_copy_destination_conditions(s3, bucket) -> None:
    put_source(s3, bucket)
    s3.put_object(Bucket=bucket, Key="taken", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="taken", CopySource=f"{bucket}/src", IfNoneMatch="*")
    assert error_of(exc) == ("PreconditionFailed", 412)
    s3.copy_object(Bucket=bucket, Key="free", CopySource=f"{bucket}/src", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"x"


def test_copy_refuses_tagging_replace_and_acls(s3, bucket) -> None:
    put_source(s3, bucket)
    source = f"{bucket}/src"
    s3.copy_object(Bucket=bucket, Key="d1", CopySource=source, Tagging="a=b")  # COPY: ignored
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket=bucket, Key="d2", CopySource=source, Tagging="a=b", TaggingDirective="REPLACE"
        )
    assert error_of(exc) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="d3", CopySource=source, ACL="public-read")
    assert error_of(exc) == ("AccessControlListNotSupported", 400)


def test_copy_large_object_streams(s3, bucket) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    body = b"".join(i.to_bytes(4, "big") + block[4:] for i in range(24))
    s3.put_object(Bucket=bucket, Key="large", Body=body)
    result = s3.copy_object(Bucket=bucket, Key="large.copy", CopySource=f"{bucket}/large")
    assert result["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="large.copy")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


# -- DeleteObjects -------------------------------------------------------------------------


def test_delete_objects(s3, bucket) -> None:
    keys = ["a", "b/c", *AWKWARD_KEYS[:6]]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    resp = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in [*keys, "never-existed"]]}
    )
    assert sorted(d["Key"] for d in resp["Deleted"]) == sorted([*keys, "never-existed"])
    assert "Errors" not in resp
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_delete_objects_quiet_and_per_key_errors(s3, bucket) -> None:
    etag = s3.put_object(Bucket=bucket, Key="keep", Body=b"x")["ETag"]
    s3.put_object(Bucket=bucket, Key="go", Body=b"x")
    resp = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Quiet": True,
            "Objects": [
                {"Key": "go"},
                {"Key": "keep", "ETag": '"not-it"'},
                {"Key": "go", "VersionId": "bogus"},
                {"Key": "null-version", "VersionId": "null"},
            ],
        },
    )
    assert "Deleted" not in resp
    errors = {(e["Key"], e["Code"]) for e in resp["Errors"]}
    assert errors == {("keep", "PreconditionFailed"), ("go", "InvalidArgument")}
    assert s3.head_object(Bucket=bucket, Key="keep")["ETag"] == etag
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "keep", "ETag": etag}]})
    assert [d["Key"] for d in resp["Deleted"]] == ["keep"]


def test_delete_objects_limits(s3, bucket) -> None:
    with pytest.raises(ClientError) as exc:
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]}
        )
    assert error_of(exc) == ("MalformedXML", 400)
    with pytest.raises(ClientError) as exc:
        s3.delete_objects(Bucket="no-such-bucket-xyz", Delete={"Objects": [{"Key": "k"}]})
    assert error_of(exc) == ("NoSuchBucket", 404)


def _post_delete(proxy, bucket: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{proxy.endpoint}/{bucket}?delete", content=body, headers=headers)


def md5_b64(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def test_delete_objects_on_the_wire(proxy, bucket) -> None:
    body = b"<Delete><Object><Key>k&amp;1</Key></Object></Delete>"
    resp = _post_delete(proxy, bucket, body, {})
    assert (resp.status_code, code_of(resp)) == (400, "InvalidRequest")
    assert "Content-MD5 OR x-amz-checksum-*" in resp.text
    resp = _post_delete(proxy, bucket, body, {"content-md5": md5_b64(b"other")})
    assert code_of(resp) == "BadDigest"
    resp = _post_delete(proxy, bucket, body, {"content-md5": md5_b64(body)})
    assert resp.status_code == 200
    assert "<Deleted><Key>k&amp;1</Key></Deleted>" in resp.text
    assert 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' in resp.text
    crc = {"x-amz-checksum-crc32": checksums.compute("CRC32", body)}
    assert _post_delete(proxy, bucket, body, crc).status_code == 200
    for bad in [
        b"<Delete><Object><Key>unclosed</Key></Object>",
        b"<Remove><Object><Key>k</Key></Object></Remove>",
        b"<Delete></Delete>",
        b"<Delete><Object><VersionId>null</VersionId></Object></Delete>",
        b"<Delete><Quiet>maybe</Quiet><Object><Key>k</Key></Object></Delete>",
        b'<!DOCTYPE d [<!ENTITY e "x">]><Delete><Object><Key>&e;</Key></Object></Delete>',
    ]:
        resp = _post_delete(proxy, bucket, bad, {"content-md5": md5_b64(bad)})
        assert (resp.status_code, code_of(resp)) == (400, "MalformedXML"), bad
