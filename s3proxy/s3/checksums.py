"""S3 additional checksums (``x-amz-checksum-*``): algorithms, request parsing, responses.

Stored in ``ObjectMetadata.checksums`` as ``{"CRC32": "<base64>", ...}`` (algorithm
names as S3 spells them, upper case). A value ending in ``-N`` is a multipart
COMPOSITE checksum over N parts; any other value is a FULL_OBJECT checksum.

Like S3, an upload that names no checksum still gets one: CRC64NVME, computed while the
body streams, so every object can answer ``x-amz-checksum-mode: ENABLED``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from awscrt import checksums as crt

from s3proxy.s3 import xml
from s3proxy.s3.errors import S3Error

ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
DEFAULT_ALGORITHM = "CRC64NVME"
DIGEST_SIZES = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}
HEADER_PREFIX = "x-amz-checksum-"


def header_name(algorithm: str) -> str:
    """``CRC32`` -> ``x-amz-checksum-crc32``."""
    return HEADER_PREFIX + algorithm.lower()


def checksum_type(value: str) -> str:
    return "COMPOSITE" if "-" in value else "FULL_OBJECT"


class Hasher:
    """An incremental checksum with S3's byte order (CRCs big-endian)."""

    __slots__ = ("_crc", "_hash", "algorithm")

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._crc = 0
        self._hash: hashlib._Hash | None = None
        if algorithm == "SHA1":
            self._hash = hashlib.sha1()
        elif algorithm == "SHA256":
            self._hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
        elif self.algorithm == "CRC32":
            self._crc = zlib.crc32(data, self._crc)
        elif self.algorithm == "CRC32C":
            self._crc = crt.crc32c(data, self._crc)
        else:
            self._crc = crt.crc64nvme(data, self._crc)

    def digest(self) -> bytes:
        if self._hash is not None:
            return self._hash.digest()
        return self._crc.to_bytes(DIGEST_SIZES[self.algorithm], "big")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode()


def compute(algorithm: str, data: bytes) -> str:
    """The base64 checksum of ``data``."""
    hasher = Hasher(algorithm)
    hasher.update(data)
    return hasher.b64()


def valid_value(algorithm: str, value: str) -> bool:
    """Is ``value`` a well-formed base64 digest of the algorithm's size?"""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == DIGEST_SIZES[algorithm]


def parse_algorithm(raw: str) -> str:
    algorithm = raw.strip().upper()
    if algorithm not in ALGORITHMS:
        raise S3Error(
            "InvalidRequest",
            "Checksum algorithm provided is unsupported. Please try again with any of the "
            "valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]",
        )
    return algorithm


def mismatch(algorithm: str) -> S3Error:
    return S3Error(
        "BadDigest", f"The {algorithm} you specified did not match the calculated checksum."
    )


@dataclass(slots=True, frozen=True)
class ChecksumRequest:
    """The checksum a request promises for its body.

    ``value`` comes from an ``x-amz-checksum-*`` header; ``trailer`` names the
    ``x-amz-checksum-*`` trailer of an aws-chunked body that will carry it instead.
    """

    algorithm: str | None = None
    value: str | None = None
    trailer: str | None = None


def _algorithm_of_header(name: str) -> str | None:
    if not name.startswith(HEADER_PREFIX):
        return None
    algorithm = name[len(HEADER_PREFIX) :].upper()
    return algorithm if algorithm in ALGORITHMS else None


def requested(headers: Mapping[str, str]) -> ChecksumRequest:
    """Parse and validate the checksum headers of an upload (no body needed)."""
    found = [(a, headers[header_name(a)]) for a in ALGORITHMS if header_name(a) in headers]
    if len(found) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    trailer_algorithm: str | None = None
    trailer = headers.get("x-amz-trailer")
    if trailer is not None:
        trailer = trailer.strip().lower()
        trailer_algorithm = _algorithm_of_header(trailer)
        if trailer_algorithm is None:
            raise S3Error(
                "InvalidRequest", "The value specified in the x-amz-trailer header is not supported"
            )
        if found:
            raise S3Error(
                "InvalidRequest",
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not "
                "allowed.",
            )
    algorithm = found[0][0] if found else trailer_algorithm
    value = found[0][1].strip() if found else None
    if algorithm is not None and value is not None and not valid_value(algorithm, value):
        raise S3Error("InvalidRequest", f"Value for {header_name(algorithm)} header is invalid.")
    sdk = headers.get("x-amz-sdk-checksum-algorithm")
    if sdk is not None:
        declared = parse_algorithm(sdk)
        if algorithm is None:
            raise S3Error(
                "InvalidRequest",
                "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* "
                "or x-amz-trailer headers were found.",
            )
        if declared != algorithm:
            # The S3 API reference: a value for another algorithm than the declared one
            # fails with BadDigest.
            raise S3Error(
                "BadDigest",
                f"The x-amz-sdk-checksum-algorithm {declared} does not match the checksum "
                f"header {header_name(algorithm)}.",
            )
    return ChecksumRequest(algorithm=algorithm, value=value, trailer=trailer)


def expected_from_trailers(request: ChecksumRequest, trailers: Mapping[str, str]) -> str | None:
    """The value the client promised, once the (possibly trailing) headers are all in."""
    if request.trailer is None:
        return request.value
    assert request.algorithm is not None
    value = trailers.get(request.trailer)
    if value is None:
        raise S3Error(
            "MalformedTrailerError",
            f"The request declared the trailer {request.trailer} but did not send it.",
        )
    if not valid_value(request.algorithm, value):
        raise S3Error("InvalidRequest", f"Value for {request.trailer} trailing header is invalid.")
    return value


def response_headers(stored: Mapping[str, str]) -> list[tuple[str, str]]:
    """``x-amz-checksum-<algo>`` plus ``x-amz-checksum-type`` for stored checksums."""
    out = [(header_name(a), stored[a]) for a in ALGORITHMS if a in stored]
    if out:
        out.append(("x-amz-checksum-type", checksum_type(out[0][1])))
    return out


def xml_fields(stored: Mapping[str, str]) -> list[xml.Node]:
    """``ChecksumCRC32`` ... and ``ChecksumType`` elements (CopyObjectResult and friends)."""
    present = [a for a in ALGORITHMS if a in stored]
    fields: list[xml.Node] = [(f"Checksum{a}", stored[a]) for a in present]
    if present:
        fields.insert(0, ("ChecksumType", checksum_type(stored[present[0]])))
    return fields


def full_object(algorithms: Iterable[str]) -> list[str]:
    """Known algorithms, in S3's order, without duplicates."""
    wanted = set(algorithms)
    return [a for a in ALGORITHMS if a in wanted]
