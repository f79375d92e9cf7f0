"""Reading an upload body: its framing, declared length, and every digest the client sent.

One pass over the bytes computes the MD5 (the ETag), the object's checksum (the one the
client named, else S3's default CRC64NVME) and, when ``x-amz-content-sha256`` is a hex
digest, the payload SHA-256. ``verify()`` runs after the last byte and before the write
commits, so a mismatch leaves nothing behind. Shared by PutObject, UploadPart and
DeleteObjects.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import AsyncIterator, Mapping

from s3proxy.s3 import checksums
from s3proxy.s3.chunked import ChunkedDecoder
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request, rechunk

# S3's limit for one PUT (PutObject, UploadPart).
MAX_PUT_SIZE = 5 * 1024**3
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# The non-digest values x-amz-content-sha256 may take.
CONTENT_SHA256_TOKENS = frozenset(
    {
        "UNSIGNED-PAYLOAD",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
    }
)


def expected_md5(req: S3Request) -> bytes | None:
    raw = req.headers.get("content-md5")
    if raw is None:
        return None
    try:
        digest = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest", resource=req.resource) from None
    if len(digest) != 16:
        raise S3Error("InvalidDigest", resource=req.resource)
    return digest


def is_aws_chunked(req: S3Request) -> bool:
    return "aws-chunked" in req.headers.get("content-encoding", "") or req.headers.get(
        "x-amz-content-sha256", ""
    ).startswith("STREAMING-")


def declared_length(req: S3Request, chunked: bool) -> int:
    if chunked:
        raw = req.headers.get("x-amz-decoded-content-length")
        if raw is None:
            raise S3Error("MissingContentLength", resource=req.resource)
        if not raw.isdigit():
            raise S3Error("InvalidArgument", "Invalid x-amz-decoded-content-length")
        return int(raw)
    length = req.content_length
    if length is None:
        raise S3Error("MissingContentLength", resource=req.resource)
    return length


def payload_sha256(headers: Mapping[str, str]) -> str | None:
    """The hex SHA-256 the body must have, or None when the header names no digest."""
    raw = headers.get("x-amz-content-sha256")
    if raw is None or raw in CONTENT_SHA256_TOKENS:
        return None
    if not _HEX_SHA256.fullmatch(raw):
        raise S3Error(
            "InvalidArgument",
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
            "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, "
            "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
            extra={"ArgumentName": "x-amz-content-sha256", "ArgumentValue": raw},
        )
    return raw.lower()


class UploadDigest:
    """Hashes and counts an upload as it streams; verifies it when the body ends.

    After ``verify()``, ``checksums`` holds the object's checksum as stored in
    ``ObjectMetadata.checksums``.
    """

    def __init__(self, req: S3Request) -> None:
        self.chunked = is_aws_chunked(req)
        self.expected_length = declared_length(req, self.chunked)
        if self.expected_length > MAX_PUT_SIZE:
            raise S3Error(
                "EntityTooLarge",
                extra={
                    "ProposedSize": str(self.expected_length),
                    "MaxSizeAllowed": str(MAX_PUT_SIZE),
                },
            )
        self.expected_md5 = expected_md5(req)
        self.checksum_request = checksums.requested(req.headers)
        self.hasher = checksums.Hasher(
            self.checksum_request.algorithm or checksums.DEFAULT_ALGORITHM
        )
        # With aws-chunked the header is a STREAMING-* token: chunks are signed instead.
        self.expected_sha256 = None if self.chunked else payload_sha256(req.headers)
        self._sha256 = hashlib.sha256() if self.expected_sha256 else None
        self.md5 = hashlib.md5()
        self.length = 0
        self.resource = req.resource
        self.checksums: dict[str, str] = {}
        #: The aws-chunked decoder (its trailers and chunk signatures), if any.
        self.decoder: ChunkedDecoder | None = None
        self._source: AsyncIterator[bytes] = req.body
        if self.chunked:
            # Streaming SigV4 uploads are verified chunk by chunk as they arrive.
            signer = req.principal.chunk_signer if req.principal is not None else None
            self.decoder = ChunkedDecoder(req.body, signer)
            self._source = aiter(self.decoder)

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in rechunk(self._source):
            self.length += len(chunk)
            if self.length > self.expected_length:
                raise S3Error("InvalidRequest", "The request body is longer than declared.")
            self.md5.update(chunk)
            self.hasher.update(chunk)
            if self._sha256 is not None:
                self._sha256.update(chunk)
            yield chunk
        if self.length != self.expected_length:
            raise S3Error("IncompleteBody", resource=self.resource)

    def verify(self) -> str:
        """Check the digests the client sent; return the hex MD5 (the ETag)."""
        if self._sha256 is not None:
            computed = self._sha256.hexdigest()
            if computed != self.expected_sha256:
                raise S3Error(
                    "XAmzContentSHA256Mismatch",
                    extra={
                        "ClientComputedContentSHA256": self.expected_sha256 or "",
                        "S3ComputedContentSHA256": computed,
                    },
                )
        digest = self.md5.digest()
        if self.expected_md5 is not None and digest != self.expected_md5:
            raise S3Error("BadDigest", resource=self.resource)
        trailers = self.decoder.trailers if self.decoder is not None else {}
        expected = checksums.expected_from_trailers(self.checksum_request, trailers)
        actual = self.hasher.b64()
        if expected is not None and expected != actual:
            raise checksums.mismatch(self.hasher.algorithm)
        self.checksums = {self.hasher.algorithm: actual}
        return digest.hex()


async def read_all(req: S3Request, limit: int) -> tuple[bytes, UploadDigest]:
    """A small request body (an XML document), verified, refused past ``limit`` bytes."""
    upload = UploadDigest(req)
    if upload.expected_length > limit:
        raise S3Error("MalformedXML", "The XML document is larger than this request allows.")
    data = bytearray()
    async for chunk in upload.chunks():
        data += chunk
    upload.verify()
    return bytes(data), upload
