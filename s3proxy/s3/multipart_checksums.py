"""Additional checksums of multipart uploads: the upload's settings, its parts, the result.

Per-algorithm hashing and the stored form (``{"CRC32": "<base64>"}``) come from
``checksums.py``. What is particular to multipart:

- CreateMultipartUpload names an algorithm and a type (COMPOSITE or FULL_OBJECT) that
  every part and the final object then carry.
- The final checksum is derived from the part checksums alone, never by reading the
  data again: COMPOSITE is the algorithm over the concatenated binary part checksums,
  then ``-N``; FULL_OBJECT (CRC algorithms only) combines the part CRCs as if computed
  over the whole object.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence

from awscrt import checksums as crt

from s3proxy.s3 import checksums
from s3proxy.s3.errors import S3Error

COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"
_COMBINE: dict[str, Callable[[int, int, int], int]] = {
    "CRC32": crt.combine_crc32,
    "CRC32C": crt.combine_crc32c,
    "CRC64NVME": crt.combine_crc64nvme,
}


def upload_settings(
    algorithm: str | None, checksum_type: str | None
) -> tuple[str | None, str | None]:
    """Validate CreateMultipartUpload's algorithm and type; fill in S3's default type."""
    if algorithm is None:
        if checksum_type is not None:
            raise S3Error(
                "InvalidRequest",
                "The x-amz-checksum-type header can only be used with the "
                "x-amz-checksum-algorithm header.",
            )
        return None, None
    algorithm = checksums.parse_algorithm(algorithm)
    default = FULL_OBJECT if algorithm == "CRC64NVME" else COMPOSITE
    kind = (checksum_type or default).strip().upper()
    allowed = {
        "CRC32": (COMPOSITE, FULL_OBJECT),
        "CRC32C": (COMPOSITE, FULL_OBJECT),
        "CRC64NVME": (FULL_OBJECT,),
        "SHA1": (COMPOSITE,),
        "SHA256": (COMPOSITE,),
    }[algorithm]
    if kind not in allowed:
        raise S3Error(
            "InvalidRequest",
            f"The {kind} checksum type cannot be used with the {algorithm.lower()} "
            "checksum algorithm.",
        )
    return algorithm, kind


def final_checksum(
    algorithm: str, checksum_type: str, parts: Sequence[tuple[str | None, int]]
) -> str | None:
    """The object's checksum from (part checksum, part size); None if a part has none."""
    values = [value for value, _ in parts]
    if not values or any(v is None or not checksums.valid_value(algorithm, v) for v in values):
        return None
    raws = [base64.b64decode(v) for v in values if v is not None]
    if checksum_type == FULL_OBJECT:
        combine = _COMBINE[algorithm]
        crc = int.from_bytes(raws[0], "big")
        for raw, (_, size) in zip(raws[1:], parts[1:], strict=True):
            crc = combine(crc, int.from_bytes(raw, "big"), size)
        return base64.b64encode(crc.to_bytes(len(raws[0]), "big")).decode()
    return f"{checksums.compute(algorithm, b''.join(raws))}-{len(raws)}"
