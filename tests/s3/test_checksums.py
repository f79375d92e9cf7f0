"""x-amz-checksum-* (s3/checksums.py) and upload body verification (s3/upload.py)."""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import AsyncIterator

import pytest
from botocore import httpchecksum as bc
from hypothesis import given, settings
from hypothesis import strategies as st

from s3proxy.s3 import checksums
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request
from s3proxy.s3.upload import UploadDigest, payload_sha256
from s3proxy.storage.backend import StorageBackend
from tests.s3.test_chunked import encode

CHECK = b"123456789"
# The catalogued "check" values of each CRC over b"123456789".
CRC_CHECKS = {"CRC32": 0xCBF43926, "CRC32C": 0xE3069283, "CRC64NVME": 0xAE8B14860A799888}
BOTOCORE = {
    "CRC32": bc.Crc32Checksum,
    "CRC32C": bc.CrtCrc32cChecksum,
    "CRC64NVME": bc.CrtCrc64NvmeChecksum,
    "SHA1": bc.Sha1Checksum,
    "SHA256": bc.Sha256Checksum,
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("algorithm", sorted(CRC_CHECKS))
def test_crc_check_values(algorithm: str) -> None:
    size = checksums.DIGEST_SIZES[algorithm]
    assert checksums.compute(algorithm, CHECK) == b64(CRC_CHECKS[algorithm].to_bytes(size, "big"))


def test_sha_values() -> None:
    assert checksums.compute("SHA1", CHECK) == b64(hashlib.sha1(CHECK).digest())
    assert checksums.compute("SHA256", CHECK) == b64(hashlib.sha256(CHECK).digest())
    assert checksums.compute("CRC32", CHECK) == b64(zlib.crc32(CHECK).to_bytes(4, "big"))


@settings(max_examples=50)
@given(
    algorithm=st.sampled_from(checksums.ALGORITHMS),
    pieces=st.lists(st.binary(max_size=300), max_size=6),
)
def test_incremental_equals_botocore(algorithm: str, pieces: list[bytes]) -> None:
    """Chunked hashing gives exactly what boto3 sends for the whole body."""
    hasher = checksums.Hasher(algorithm)
    for piece in pieces:
        hasher.update(piece)
    reference = BOTOCORE[algorithm]()
    reference.update(b"".join(pieces))
    assert hasher.b64() == reference.b64digest()
    assert checksums.valid_value(algorithm, hasher.b64())


@pytest.mark.parametrize("algorithm", checksums.ALGORITHMS)
def test_valid_value_checks_size_and_base64(algorithm: str) -> None:
    size = checksums.DIGEST_SIZES[algorithm]
    assert checksums.valid_value(algorithm, b64(b"\0" * size))
    assert not checksums.valid_value(algorithm, b64(b"\0" * (size + 1)))
    assert not checksums.valid_value(algorithm, "not base64!")
    assert not checksums.valid_value(algorithm, "")


def test_requested_from_header() -> None:
    value = checksums.compute("CRC32", b"x")
    req = checksums.requested({"x-amz-checksum-crc32": value})
    assert (req.algorithm, req.value, req.trailer) == ("CRC32", value, None)
    assert checksums.requested({}) == checksums.ChecksumRequest()


def test_requested_from_trailer() -> None:
    req = checksums.requested(
        {"x-amz-trailer": "x-amz-checksum-sha256", "x-amz-sdk-checksum-algorithm": "sha256"}
    )
    assert (req.algorithm, req.value, req.trailer) == ("SHA256", None, "x-amz-checksum-sha256")


@pytest.mark.parametrize(
    ("headers", "code", "message"),
    [
        (
            {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": b64(b"\0" * 20)},
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        ),
        (
            {"x-amz-checksum-crc32": "AAAA"},
            "InvalidRequest",
            "Value for x-amz-checksum-crc32 header is invalid.",
        ),
        (
            {"x-amz-sdk-checksum-algorithm": "CRC32"},
            "InvalidRequest",
            "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or "
            "x-amz-trailer headers were found.",
        ),
        ({"x-amz-sdk-checksum-algorithm": "MD5"}, "InvalidRequest", "unsupported"),
        (
            {"x-amz-sdk-checksum-algorithm": "SHA1", "x-amz-checksum-crc32": "AAAAAA=="},
            "BadDigest",
            "does not match",
        ),
        ({"x-amz-trailer": "x-amz-meta-foo"}, "InvalidRequest", "x-amz-trailer"),
    ],
)
def test_requested_refusals(headers: dict[str, str], code: str, message: str) -> None:
    with pytest.raises(S3Error) as exc:
        checksums.requested(headers)
    assert exc.value.code == code
    assert message in exc.value.message


def test_trailer_value_must_arrive_and_be_valid() -> None:
    req = checksums.requested({"x-amz-trailer": "x-amz-checksum-crc32"})
    value = checksums.compute("CRC32", b"x")
    assert checksums.expected_from_trailers(req, {"x-amz-checksum-crc32": value}) == value
    with pytest.raises(S3Error) as exc:
        checksums.expected_from_trailers(req, {})
    assert exc.value.code == "MalformedTrailerError"
    with pytest.raises(S3Error) as exc:
        checksums.expected_from_trailers(req, {"x-amz-checksum-crc32": "bad"})
    assert exc.value.code == "InvalidRequest"


def test_mismatch_message_names_the_algorithm() -> None:
    err = checksums.mismatch("CRC64NVME")
    assert (err.code, err.status) == ("BadDigest", 400)
    assert err.message == "The CRC64NVME you specified did not match the calculated checksum."


def test_response_headers_and_xml() -> None:
    stored = {"SHA256": "abc=", "CRC32": "def="}
    assert checksums.response_headers(stored) == [
        ("x-amz-checksum-crc32", "def="),
        ("x-amz-checksum-sha256", "abc="),
        ("x-amz-checksum-type", "FULL_OBJECT"),
    ]
    assert checksums.response_headers({}) == []
    assert checksums.xml_fields({"CRC32C": "xyz=-3"}) == [
        ("ChecksumType", "COMPOSITE"),
        ("ChecksumCRC32C", "xyz=-3"),
    ]


def test_payload_sha256_header() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert payload_sha256({"x-amz-content-sha256": digest.upper()}) == digest
    assert payload_sha256({"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}) is None
    assert payload_sha256({}) is None
    with pytest.raises(S3Error) as exc:
        payload_sha256({"x-amz-content-sha256": "abc"})
    assert exc.value.code == "InvalidArgument"


# -- upload verification -------------------------------------------------------------


async def _body(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def request(headers: dict[str, str], parts: list[bytes]) -> S3Request:
    backend: StorageBackend = None  # type: ignore[assignment]  # never touched here
    return S3Request(
        method="PUT",
        operation="PutObject",
        bucket="b",
        key="k",
        query={},
        headers=headers,
        body=_body(parts),
        backend=backend,
        request_id="r",
        resource="/b/k",
    )


async def consume(upload: UploadDigest) -> tuple[bytes, str]:
    data = b"".join([chunk async for chunk in upload.chunks()])
    return data, upload.verify()


async def test_upload_stores_default_checksum() -> None:
    data = b"hello world" * 100
    upload = UploadDigest(request({"content-length": str(len(data))}, [data[:7], data[7:]]))
    got, etag = await consume(upload)
    assert got == data
    assert etag == hashlib.md5(data).hexdigest()
    assert upload.checksums == {"CRC64NVME": checksums.compute("CRC64NVME", data)}


@pytest.mark.parametrize("algorithm", checksums.ALGORITHMS)
async def test_upload_verifies_header_checksum(algorithm: str) -> None:
    data = b"payload"
    good = {
        "content-length": str(len(data)),
        checksums.header_name(algorithm): checksums.compute(algorithm, data),
    }
    upload = UploadDigest(request(good, [data]))
    await consume(upload)
    assert upload.checksums == {algorithm: checksums.compute(algorithm, data)}
    bad = dict(good)
    bad[checksums.header_name(algorithm)] = checksums.compute(algorithm, b"other")
    with pytest.raises(S3Error) as exc:
        await consume(UploadDigest(request(bad, [data])))
    assert exc.value.code == "BadDigest"
    assert (
        exc.value.message == f"The {algorithm} you specified did not match the calculated checksum."
    )


@pytest.mark.parametrize("good", [True, False])
async def test_upload_verifies_chunked_trailer(good: bool) -> None:
    data = bytes(range(256)) * 50
    value = checksums.compute("CRC32C", data if good else b"x")
    body = encode(data, [1000], trailers=[("x-amz-checksum-crc32c", value)])
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32c",
        "x-amz-sdk-checksum-algorithm": "CRC32C",
    }
    upload = UploadDigest(request(headers, [body[:333], body[333:]]))
    if good:
        got, _ = await consume(upload)
        assert got == data
        assert upload.checksums == {"CRC32C": value}
    else:
        with pytest.raises(S3Error) as exc:
            await consume(upload)
        assert exc.value.code == "BadDigest"


async def test_upload_verifies_payload_sha256() -> None:
    data = b"signed payload"
    headers = {
        "content-length": str(len(data)),
        "x-amz-content-sha256": hashlib.sha256(data).hexdigest(),
    }
    await consume(UploadDigest(request(headers, [data])))
    headers["x-amz-content-sha256"] = hashlib.sha256(b"else").hexdigest()
    with pytest.raises(S3Error) as exc:
        await consume(UploadDigest(request(headers, [data])))
    assert exc.value.code == "XAmzContentSHA256Mismatch"
    assert exc.value.extra["S3ComputedContentSHA256"] == hashlib.sha256(data).hexdigest()


async def test_upload_length_checks() -> None:
    with pytest.raises(S3Error) as exc:
        await consume(UploadDigest(request({"content-length": "10"}, [b"short"])))
    assert exc.value.code == "IncompleteBody"
    with pytest.raises(S3Error) as exc:
        UploadDigest(request({"content-length": str(6 * 1024**3)}, []))
    assert exc.value.code == "EntityTooLarge"
