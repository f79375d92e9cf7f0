"""Object semantics through a running proxy: conditionals, checksums, metadata, writes.

boto3 covers what SDKs send; raw httpx and sockets cover what SDKs hide (304 headers,
aws-chunked trailers, Expect: 100-continue, aborted bodies). Both built-in lanes.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import time
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError

from s3proxy.s3 import checksums
from tests.conftest import ProxyServer, s3_client
from tests.e2e.test_boto3_core import error_of
from tests.s3.test_chunked import encode

ALGORITHMS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


def code_of(resp: httpx.Response) -> str:
    match = re.search(r"<Code>(.*?)</Code>", resp.text)
    return match.group(1) if match else ""


def url(proxy: ProxyServer, bucket: str, key: str) -> str:
    return f"{proxy.endpoint}/{bucket}/{quote(key, safe='/')}"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def once(proxy: ProxyServer):  # type: ignore[no-untyped-def]
    """A client of its own for a PUT the proxy refuses before reading the body.

    Such a connection must not be reused: see test_connection_reuse_after_early_refusal.
    """
    return s3_client(proxy.endpoint)


# -- ETags -------------------------------------------------------------------------------


def test_etag_is_the_same_everywhere(s3, bucket) -> None:
    body = b"same etag" * 999
    put = s3.put_object(Bucket=bucket, Key="e", Body=body)
    expected = f'"{md5_hex(body)}"'
    assert put["ETag"] == expected
    assert s3.head_object(Bucket=bucket, Key="e")["ETag"] == expected
    assert s3.get_object(Bucket=bucket, Key="e")["ETag"] == expected
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["ETag"] == expected
    copied = s3.copy_object(Bucket=bucket, Key="e2", CopySource={"Bucket": bucket, "Key": "e"})
    assert copied["CopyObjectResult"]["ETag"] == expected
    assert s3.get_object(Bucket=bucket, Key="e", IfMatch=expected)["Body"].read() == body


# -- conditional reads -------------------------------------------------------------------


@pytest.fixture
def stored(s3, bucket) -> tuple[str, str, datetime]:
    """(bucket, quoted ETag, Last-Modified) of an object "c"."""
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"conditional body")
    head = s3.head_object(Bucket=bucket, Key="c")
    return bucket, put["ETag"], head["LastModified"]


def test_get_conditions(s3, stored) -> None:
    bucket, etag, modified = stored
    before, after = modified - timedelta(days=1), modified + timedelta(days=1)
    ok = [
        {"IfMatch": etag},
        {"IfMatch": etag.strip('"')},
        {"IfNoneMatch": '"other"'},
        {"IfModifiedSince": before},
        {"IfUnmodifiedSince": after},
        {"IfMatch": etag, "IfUnmodifiedSince": before},  # If-Match wins
        {"IfNoneMatch": '"other"', "IfModifiedSince": after},  # If-None-Match wins
    ]
    for kwargs in ok:
        assert s3.get_object(Bucket=bucket, Key="c", **kwargs)["Body"].read() == (
            b"conditional body"
        ), kwargs
    for kwargs, expected in [
        ({"IfMatch": '"other"'}, ("PreconditionFailed", 412)),
        ({"IfUnmodifiedSince": before}, ("PreconditionFailed", 412)),
        ({"IfNoneMatch": etag}, ("304", 304)),
        ({"IfModifiedSince": after}, ("304", 304)),
        ({"IfNoneMatch": etag, "IfModifiedSince": before}, ("304", 304)),
    ]:
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key="c", **kwargs)
        assert error_of(exc) == expected, kwargs


def test_head_conditions(s3, stored) -> None:
    bucket, etag, _ = stored
    assert s3.head_object(Bucket=bucket, Key="c", IfMatch=etag)["ETag"] == etag
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="c", IfMatch='"nope"')
    assert error_of(exc)[1] == 412
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert error_of(exc)[1] == 304


def test_304_and_412_on_the_wire(proxy, stored) -> None:
    bucket, etag, _ = stored
    target = url(proxy, bucket, "c")
    resp = httpx.get(target, headers={"if-none-match": f"W/{etag}"})
    assert resp.status_code == 304
    assert resp.headers["etag"] == etag
    assert "last-modified" in resp.headers
    assert resp.content == b""
    resp = httpx.get(target, headers={"if-match": '"x"'})
    assert resp.status_code == 412
    assert code_of(resp) == "PreconditionFailed"
    assert "<Condition>If-Match</Condition>" in resp.text
    head = httpx.head(target, headers={"if-match": '"x"'})
    assert (head.status_code, head.content) == (412, b"")
    # Conditions are evaluated before the range: a failed one wins over a 416.
    resp = httpx.get(target, headers={"if-match": '"x"', "range": "bytes=1000-"})
    assert resp.status_code == 412


# -- checksums ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksum_round_trip(s3, bucket, algorithm: str) -> None:
    body = b"checksummed" * 3000
    put = s3.put_object(Bucket=bucket, Key="ck", Body=body, ChecksumAlgorithm=algorithm)
    expected = checksums.compute(algorithm, body)
    assert put[f"Checksum{algorithm}"] == expected
    head = s3.head_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-type"] == "FULL_OBJECT"
    # botocore validates the body against the returned checksum while reading.
    got = s3.get_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert got[f"Checksum{algorithm}"] == expected
    # Without checksum mode, and for a range, no checksum is sent.
    assert f"Checksum{algorithm}" not in s3.head_object(Bucket=bucket, Key="ck")
    ranged = s3.get_object(Bucket=bucket, Key="ck", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert f"Checksum{algorithm}" not in ranged


def test_default_checksum_is_crc64nvme(proxy, bucket) -> None:
    body = b"no checksum sent"
    target = url(proxy, bucket, "plain")
    resp = httpx.put(target, content=body)
    assert resp.headers["x-amz-checksum-crc64nvme"] == checksums.compute("CRC64NVME", body)
    head = httpx.head(target, headers={"x-amz-checksum-mode": "ENABLED"})
    assert head.headers["x-amz-checksum-crc64nvme"] == checksums.compute("CRC64NVME", body)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksum_mismatch_keeps_old_object(proxy, bucket, algorithm: str) -> None:
    target = url(proxy, bucket, "bad")
    assert httpx.put(target, content=b"old").status_code == 200
    wrong = checksums.compute(algorithm, b"not the body")
    resp = httpx.put(target, content=b"new", headers={checksums.header_name(algorithm): wrong})
    assert (resp.status_code, code_of(resp)) == (400, "BadDigest")
    assert f"The {algorithm} you specified did not match the calculated checksum." in resp.text
    assert httpx.get(target).content == b"old"


def test_checksum_header_refusals(proxy, bucket) -> None:
    target = url(proxy, bucket, "refused")
    crc = checksums.compute("CRC32", b"x")
    for headers in [
        {"x-amz-checksum-crc32": crc, "x-amz-checksum-crc32c": crc},
        {"x-amz-checksum-crc32": "short"},
        {"x-amz-sdk-checksum-algorithm": "CRC32"},
        {"x-amz-sdk-checksum-algorithm": "BLAKE3", "x-amz-checksum-crc32": crc},
    ]:
        resp = httpx.put(target, content=b"x", headers=headers)
        assert (resp.status_code, code_of(resp)) == (400, "InvalidRequest"), headers
    assert httpx.head(target).status_code == 404


def chunked_put(
    target: str, data: bytes, trailers: list[tuple[str, str]], declared: str
) -> httpx.Response:
    body = encode(data, [64 * 1024], trailers=trailers)
    return httpx.put(
        target,
        content=body,
        headers={
            "content-encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": declared,
            "x-amz-sdk-checksum-algorithm": declared.rsplit("-", 1)[1].upper(),
        },
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_aws_chunked_trailer_checksum(proxy, bucket, algorithm: str) -> None:
    data = bytes(range(256)) * 1000
    target = url(proxy, bucket, f"chunked-{algorithm}")
    name = checksums.header_name(algorithm)
    value = checksums.compute(algorithm, data)
    resp = chunked_put(target, data, [(name, value)], name)
    assert resp.status_code == 200, resp.text
    assert resp.headers[name] == value
    got = httpx.get(target, headers={"x-amz-checksum-mode": "ENABLED"})
    assert got.content == data
    assert got.headers[name] == value
    # The transfer coding is not part of the object.
    assert "content-encoding" not in got.headers
    wrong = chunked_put(target, data[:-1] + b"!", [(name, value)], name)
    assert code_of(wrong) == "BadDigest"
    missing = chunked_put(target, data, [], name)
    assert code_of(missing) == "MalformedTrailerError"
    assert httpx.get(target).content == data


def test_payload_sha256_is_verified(proxy, bucket) -> None:
    target = url(proxy, bucket, "sha")
    body = b"payload"
    good = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
    assert httpx.put(target, content=body, headers=good).status_code == 200
    bad = {"x-amz-content-sha256": hashlib.sha256(b"other").hexdigest()}
    resp = httpx.put(target, content=b"changed", headers=bad)
    assert (resp.status_code, code_of(resp)) == (400, "XAmzContentSHA256Mismatch")
    resp = httpx.put(target, content=b"changed", headers={"x-amz-content-sha256": "nonsense"})
    assert code_of(resp) == "InvalidArgument"
    assert httpx.get(target).content == body


# -- metadata, storage class, refused headers ---------------------------------------------


def test_non_ascii_metadata_comes_back_rfc2047(proxy, s3, bucket) -> None:
    target = url(proxy, bucket, "meta")
    resp = httpx.put(target, content=b"x", headers={"x-amz-meta-name": "Zoë 日本".encode()})
    assert resp.status_code == 200
    expected = "=?UTF-8?B?" + base64.b64encode("Zoë 日本".encode()).decode() + "?="
    assert httpx.head(target).headers["x-amz-meta-name"] == expected
    # boto3 only sends ASCII: values it encoded itself round-trip untouched.
    s3.put_object(Bucket=bucket, Key="meta2", Body=b"x", Metadata={"name": expected, "a": "b"})
    assert s3.head_object(Bucket=bucket, Key="meta2")["Metadata"] == {"name": expected, "a": "b"}


def test_metadata_limit_counts_utf8_bytes(proxy, bucket) -> None:
    target = url(proxy, bucket, "big-meta")
    value = "é" * 1022  # 2044 bytes of UTF-8 + "name": exactly 2 KB
    assert httpx.put(target, content=b"x", headers={"x-amz-meta-name": value.encode()}).is_success
    resp = httpx.put(target, content=b"x", headers={"x-amz-meta-name": (value + "é").encode()})
    assert code_of(resp) == "MetadataTooLarge"


def test_storage_class(proxy, s3, bucket) -> None:
    s3.put_object(Bucket=bucket, Key="ia", Body=b"x", StorageClass="STANDARD_IA")
    assert s3.head_object(Bucket=bucket, Key="ia")["StorageClass"] == "STANDARD_IA"
    s3.put_object(Bucket=bucket, Key="std", Body=b"x", StorageClass="STANDARD")
    assert "StorageClass" not in s3.head_object(Bucket=bucket, Key="std")
    with pytest.raises(ClientError) as exc:
        once(proxy).put_object(Bucket=bucket, Key="bad", Body=b"x", StorageClass="EXPRESS_ONEZONE")
    assert error_of(exc) == ("InvalidStorageClass", 400)


def test_acl_tagging_and_lock_headers(proxy, s3, bucket) -> None:
    s3.put_object(Bucket=bucket, Key="a1", Body=b"x", ACL="private")
    s3.put_object(Bucket=bucket, Key="a2", Body=b"x", ACL="bucket-owner-full-control")
    for kwargs, expected in [
        ({"ACL": "public-read"}, ("AccessControlListNotSupported", 400)),
        ({"GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'}, None),
        ({"Tagging": "a=b"}, ("NotImplemented", 501)),
        ({"ObjectLockLegalHoldStatus": "ON"}, ("InvalidRequest", 400)),
        ({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}, None),
    ]:
        with pytest.raises(ClientError) as exc:
            once(proxy).put_object(Bucket=bucket, Key="refused", Body=b"x", **kwargs)
        if expected is not None:
            assert error_of(exc) == expected, kwargs
        else:
            assert error_of(exc)[1] in (400, 501), kwargs
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a1", "a2"]


# -- conditional writes --------------------------------------------------------------------


def test_if_none_match_star(proxy, s3, bucket) -> None:
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        once(proxy).put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert error_of(exc) == ("PreconditionFailed", 412)
    assert exc.value.response["Error"]["Condition"] == "If-None-Match"
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


def test_if_match_write(proxy, s3, bucket) -> None:
    first = s3.put_object(Bucket=bucket, Key="cas", Body=b"v1")["ETag"]
    second = s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfMatch=first)["ETag"]
    with pytest.raises(ClientError) as exc:
        once(proxy).put_object(Bucket=bucket, Key="cas", Body=b"v3", IfMatch=first)
    assert error_of(exc) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="cas", IfMatch=second)["Body"].read() == b"v2"
    with pytest.raises(ClientError) as exc:
        once(proxy).put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=first)
    assert error_of(exc) == ("NoSuchKey", 404)


def test_if_none_match_etag_is_not_implemented(proxy, bucket) -> None:
    resp = httpx.put(url(proxy, bucket, "k"), content=b"x", headers={"if-none-match": '"abc"'})
    assert (resp.status_code, code_of(resp)) == (501, "NotImplemented")


def test_conditional_write_of_a_large_body(s3, bucket) -> None:
    body = bytes(range(256)) * (40 * 1024)  # 10 MiB: several backend parts
    s3.put_object(Bucket=bucket, Key="big", Body=body, IfNoneMatch="*")
    etag = s3.head_object(Bucket=bucket, Key="big")["ETag"]
    assert etag == f'"{md5_hex(body)}"'
    s3.put_object(Bucket=bucket, Key="big", Body=body[::-1], IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == body[::-1]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["big"]


def test_conditional_delete(s3, bucket) -> None:
    etag = s3.put_object(Bucket=bucket, Key="d", Body=b"x")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="d", IfMatch='"other"')
    assert error_of(exc) == ("PreconditionFailed", 412)
    s3.delete_object(Bucket=bucket, Key="d", IfMatch=etag)
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="d", IfMatch=etag)
    assert error_of(exc) == ("NoSuchKey", 404)


# -- versionId and partNumber ----------------------------------------------------------------


def test_null_version_is_the_object(proxy, bucket) -> None:
    target = url(proxy, bucket, "v")
    httpx.put(target, content=b"data").raise_for_status()
    assert httpx.get(target, params={"versionId": "null"}).content == b"data"
    resp = httpx.get(target, params={"versionId": "3HL4kqtJlcpXroDTDmJ"})
    assert (resp.status_code, code_of(resp)) == (400, "InvalidArgument")


def test_part_number_of_a_single_part_object(s3, bucket) -> None:
    body = b"0123456789"
    s3.put_object(Bucket=bucket, Key="p", Body=body)
    got = s3.get_object(Bucket=bucket, Key="p", PartNumber=1)
    assert got["Body"].read() == body
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == "bytes 0-9/10"
    assert "PartsCount" not in got
    assert s3.head_object(Bucket=bucket, Key="p", PartNumber=1)["ContentLength"] == 10
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="p", PartNumber=2)
    assert error_of(exc) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="p", PartNumber=1, Range="bytes=0-1")
    assert error_of(exc) == ("InvalidRequest", 400)


def test_part_number_must_be_in_range(proxy, bucket) -> None:
    target = url(proxy, bucket, "p")
    httpx.put(target, content=b"x").raise_for_status()
    for value in ["0", "10001", "x", "-1"]:
        resp = httpx.get(target, params={"partNumber": value})
        assert (resp.status_code, code_of(resp)) == (400, "InvalidArgument"), value


# -- the wire: 100-continue and aborted uploads ----------------------------------------------


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response (status, headers, body) from a socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before a response")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def _request_head(proxy: ProxyServer, path: str, headers: dict[str, str]) -> bytes:
    host = urlsplit(proxy.endpoint).netloc
    lines = [f"PUT {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _connect(proxy: ProxyServer) -> socket.socket:
    parts = urlsplit(proxy.endpoint)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    return sock


def test_expect_100_continue(proxy, bucket) -> None:
    body = b"after the interim response" * 1000
    with _connect(proxy) as sock:
        sock.sendall(
            _request_head(
                proxy,
                f"/{bucket}/continued",
                {"Content-Length": str(len(body)), "Expect": "100-continue"},
            )
        )
        status, _, _ = _response(sock)
        assert status == 100
        sock.sendall(body)
        status, headers, _ = _response(sock)
        assert status == 200
        assert headers["etag"] == f'"{md5_hex(body)}"'
    assert httpx.get(f"{proxy.endpoint}/{bucket}/continued").content == body


def test_expect_100_refused_without_reading_the_body(proxy, bucket) -> None:
    httpx.put(f"{proxy.endpoint}/{bucket}/taken", content=b"x").raise_for_status()
    with _connect(proxy) as sock:
        sock.sendall(
            _request_head(
                proxy,
                f"/{bucket}/taken",
                {"Content-Length": "1000000", "Expect": "100-continue", "If-None-Match": "*"},
            )
        )
        # The refusal comes without a 100 Continue and without a byte of body sent.
        status, _, body = _response(sock)
        assert status == 412
        assert b"<Code>PreconditionFailed</Code>" in body


def _disconnects(proxy: ProxyServer) -> int:
    return proxy.log().count("client disconnected before the request body was complete")


def _wait_for_disconnect_logged(proxy: ProxyServer, already: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _disconnects(proxy) > already:
            return
        time.sleep(0.05)
    raise AssertionError("the proxy never noticed the aborted upload")


@pytest.mark.parametrize("conditional", [False, True])
def test_aborted_upload_leaves_nothing(proxy, s3, bucket, conditional: bool) -> None:
    s3.put_object(Bucket=bucket, Key="keep", Body=b"previous")
    for key, condition in [("keep", {"If-Match": "*"}), ("fresh", {"If-None-Match": "*"})]:
        extra = condition if conditional else {}
        before = _disconnects(proxy)
        with _connect(proxy) as sock:
            sock.sendall(
                _request_head(proxy, f"/{bucket}/{key}", {"Content-Length": "4000000", **extra})
            )
            sock.sendall(b"x" * 1_500_000)
        _wait_for_disconnect_logged(proxy, before)
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"previous"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["keep"]
    if proxy.data_dir is not None:
        leftovers = [p for p in (proxy.data_dir / bucket).rglob("*") if p.is_file()]
        # Only the bucket marker and the one object's file remain.
        assert len(leftovers) == 2, leftovers


def test_connection_reuse_after_early_refusal(s3, bucket) -> None:
    # A refusal sent before the body is read closes the connection, so botocore's next
    # request on a fresh one is parsed from its first byte.
    outcomes = set()
    for _ in range(20):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=b")
        outcomes.add(error_of(exc)[0])
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert outcomes == {"NotImplemented"}
