"""Checksums of multipart objects, derived from the part checksums alone."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

import pytest
from awscrt import checksums as crt

from s3proxy.s3 import checksums
from s3proxy.s3.errors import S3Error
from s3proxy.s3.multipart_checksums import final_checksum, upload_settings

PARTS = [os.urandom(1000), os.urandom(777), os.urandom(1000), b"x"]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("algorithm", "whole"),
    [
        ("CRC32", lambda d: zlib.crc32(d).to_bytes(4, "big")),
        ("CRC32C", lambda d: crt.crc32c(d).to_bytes(4, "big")),
        ("CRC64NVME", lambda d: crt.crc64nvme(d).to_bytes(8, "big")),
    ],
)
def test_full_object_equals_checksum_of_the_whole(algorithm: str, whole) -> None:  # type: ignore[no-untyped-def]
    pairs = [(checksums.compute(algorithm, p), len(p)) for p in PARTS]
    assert final_checksum(algorithm, "FULL_OBJECT", pairs) == b64(whole(b"".join(PARTS)))


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_composite_is_checksum_of_part_checksums(algorithm: str) -> None:
    raws = [base64.b64decode(checksums.compute(algorithm, p)) for p in PARTS]
    expected = checksums.compute(algorithm, b"".join(raws)) + f"-{len(PARTS)}"
    pairs = [(checksums.compute(algorithm, p), len(p)) for p in PARTS]
    assert final_checksum(algorithm, "COMPOSITE", pairs) == expected
    if algorithm == "SHA256":
        assert expected.startswith(b64(hashlib.sha256(b"".join(raws)).digest()))


def test_missing_part_checksum_gives_none() -> None:
    assert final_checksum("CRC32", "COMPOSITE", [("AAAAAA==", 1), (None, 2)]) is None
    assert final_checksum("CRC32", "COMPOSITE", []) is None


def test_upload_settings_defaults_and_rules() -> None:
    assert upload_settings(None, None) == (None, None)
    assert upload_settings("crc32", None) == ("CRC32", "COMPOSITE")
    assert upload_settings("CRC64NVME", None) == ("CRC64NVME", "FULL_OBJECT")
    assert upload_settings("CRC32C", "full_object") == ("CRC32C", "FULL_OBJECT")
    for algorithm, kind in [("SHA256", "FULL_OBJECT"), ("CRC64NVME", "COMPOSITE"), ("MD5", None)]:
        with pytest.raises(S3Error) as exc:
            upload_settings(algorithm, kind)
        assert exc.value.code == "InvalidRequest"
    with pytest.raises(S3Error):
        upload_settings(None, "COMPOSITE")
