"""aws-chunked body decoding (``Content-Encoding: aws-chunked``).

Frames::

    <hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n ... 0[;...]\\r\\n
    [<trailer-name>:<value>\\r\\n ...]\\r\\n

Data is yielded as it arrives (a chunk is never buffered whole), so memory stays
bounded whatever chunk size the client picked. Chunk signatures are returned to the
caller through ``signatures`` for verification by the authentication layer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any

from s3proxy.s3.errors import S3Error
from s3proxy.s3.sigv4 import ChunkSigner

_MAX_LINE = 4096
_HEX = re.compile(rb"[0-9a-fA-F]+")


def _malformed(detail: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked body: {detail}")


class ChunkedDecoder:
    """Decode an aws-chunked stream; ``trailers`` is filled once the stream is consumed."""

    def __init__(self, source: AsyncIterator[bytes], signer: ChunkSigner | None = None) -> None:
        self._source = source
        # Streaming SigV4: every chunk (and the trailer) carries a chained signature.
        self._signer = signer
        self._buf = bytearray()
        self._eof = False
        self.trailers: dict[str, str] = {}
        self.signatures: list[str] = []
        self.trailer_signature: str | None = None

    async def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            chunk = await anext(self._source)
        except StopAsyncIteration:
            self._eof = True
            return False
        self._buf += chunk
        return True

    async def _line(self) -> bytes:
        while True:
            idx = self._buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self._buf[:idx])
                del self._buf[: idx + 2]
                return line
            if len(self._buf) > _MAX_LINE:
                raise _malformed("chunk header too long")
            if not await self._fill():
                raise S3Error("IncompleteBody")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            header = await self._line()
            size_part, _, ext = header.partition(b";")
            size_part = size_part.strip()
            # int(x, 16) alone would also take "0x10", "+a", "1_0" and "-1".
            if not _HEX.fullmatch(size_part):
                raise _malformed("bad chunk size")
            size = int(size_part, 16)
            signature = None
            if ext.startswith(b"chunk-signature="):
                signature = ext[len(b"chunk-signature=") :].decode("ascii", "replace")
                self.signatures.append(signature)
            digest = hashlib.sha256() if self._signer is not None else None
            if size == 0:
                self._verify(digest, signature)
                break
            remaining = size
            while remaining:
                if not self._buf and not await self._fill():
                    raise S3Error("IncompleteBody")
                take = min(remaining, len(self._buf))
                piece = bytes(self._buf[:take])
                del self._buf[:take]
                remaining -= take
                if digest is not None:
                    digest.update(piece)
                yield piece
            while len(self._buf) < 2:
                if not await self._fill():
                    raise S3Error("IncompleteBody")
            if self._buf[:2] != b"\r\n":
                raise _malformed("chunk data not followed by CRLF")
            del self._buf[:2]
            self._verify(digest, signature)
        await self._read_trailers()
        self.trailer_signature = self.trailers.pop("x-amz-trailer-signature", None)
        if self._signer is not None and self.trailers:
            if self.trailer_signature is None:
                raise S3Error("SignatureDoesNotMatch", "The trailer signature is missing.")
            self._signer.verify_trailer(self.trailers, self.trailer_signature)

    def _verify(self, digest: Any, signature: str | None) -> None:
        if self._signer is None:
            return
        if signature is None:
            raise S3Error("SignatureDoesNotMatch", "A chunk signature is missing.")
        self._signer.verify_chunk(digest.hexdigest(), signature)

    async def _read_trailers(self) -> None:
        while True:
            if not self._buf and self._eof:
                return  # some clients end right after the last chunk header
            try:
                line = await self._line()
            except S3Error:
                if not self._buf:
                    return
                raise
            if not line:
                return
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise _malformed("bad trailer")
            self.trailers[name.strip().lower()] = value.strip()
