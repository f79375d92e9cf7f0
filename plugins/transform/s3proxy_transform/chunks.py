"""The chunked at-rest format: AES-256-GCM over fixed-size plaintext chunks.

An object's plaintext is cut into chunks of ``chunk_size`` bytes (the last one shorter,
possibly empty: an empty object is one empty chunk, so even "nothing" is
authenticated). Chunk ``i`` is sealed with the object's own data key under

- nonce ``prefix (8 random bytes per object) || u32be(i)``: unique per (key, chunk);
- associated data ``b"s3pt" || version || layout || u32be(i) || last flag``: a chunk
  only opens at its own index, and only the real last chunk opens as the last one, so
  chunks cannot be reordered, dropped from the end, or moved into another object (which
  has another data key anyway).

Two layouts:

- ``FIXED`` (no compression): the stored object is the sealed chunks back to back. Every
  sealed chunk is ``chunk_size + 16`` bytes but the last, so the stored range of any
  plaintext range is computed, and a range read fetches and decrypts only its chunks.
- ``FRAMED`` (compression on): each chunk is compressed on its own (an independent zstd
  frame, or kept raw when that is not smaller) and sealed as ``codec byte || body``;
  stored as ``u32be(len(sealed)) || sealed``. Sizes vary, so the writer records the
  stored offset of every ``step``-th chunk ("marks", at most ``MAX_MARKS`` of them, the
  stride doubling as the object grows); a range read starts at the mark before its
  first chunk and skips, without decrypting, at most ``step - 1`` frames.

Everything here is synchronous and pure; ``layer.py`` does the I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
FIXED = 0
FRAMED = 1
TAG = 16
NONCE_PREFIX = 8
DEFAULT_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
# Stored offsets a FRAMED object keeps for seeking (8 bytes each, in the metadata).
MAX_MARKS = 256
_RAW = 0
_ZSTD = 1
_LEN = struct.Struct(">I")
_AAD = struct.Struct(">4sBBIB")
_MAGIC = b"s3pt"


class FormatError(Exception):
    """Stored data that does not decrypt or decode: tampered, truncated, wrong key."""


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks of an object of ``size`` plaintext bytes (an empty object has one)."""
    return max(1, -(-size // chunk_size))


def fixed_stored_size(size: int, chunk_size: int) -> int:
    return size + TAG * chunk_count(size, chunk_size)


class ChunkCipher:
    """Seals and opens the chunks of one object (one data key, one nonce prefix)."""

    def __init__(self, data_key: bytes, nonce_prefix: bytes, layout: int) -> None:
        if len(data_key) != 32:
            raise ValueError("the data key must be 32 bytes (AES-256)")
        if len(nonce_prefix) != NONCE_PREFIX:
            raise ValueError(f"the nonce prefix must be {NONCE_PREFIX} bytes")
        self._aead = AESGCM(data_key)
        self._prefix = nonce_prefix
        self._layout = layout

    def _nonce_aad(self, index: int, last: bool) -> tuple[bytes, bytes]:
        nonce = self._prefix + _LEN.pack(index)
        return nonce, _AAD.pack(_MAGIC, VERSION, self._layout, index, last)

    def seal(self, index: int, last: bool, data: bytes | memoryview) -> bytes:
        nonce, aad = self._nonce_aad(index, last)
        return self._aead.encrypt(nonce, data, aad)

    def open(self, index: int, last: bool, sealed: bytes | memoryview) -> bytes:
        nonce, aad = self._nonce_aad(index, last)
        try:
            return self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise FormatError(f"chunk {index} failed authentication") from None


@dataclass(slots=True)
class Marks:
    """Stored offsets of chunks 0, step, 2*step, ... of a FRAMED object."""

    step: int = 1
    offsets: list[int] = field(default_factory=list)

    def note(self, index: int, offset: int) -> None:
        if index % self.step:
            return
        self.offsets.append(offset)
        if len(self.offsets) > MAX_MARKS:
            self.offsets = self.offsets[::2]
            self.step *= 2

    def pack(self) -> bytes:
        return struct.pack(f">{len(self.offsets)}Q", *self.offsets)

    @classmethod
    def unpack(cls, step: int, packed: bytes) -> Marks:
        if step < 1 or len(packed) % 8:
            raise FormatError("invalid chunk index")
        return cls(step, list(struct.unpack(f">{len(packed) // 8}Q", packed)))


class ChunkWriter:
    """Turns a plaintext stream into the stored stream, chunk by chunk.

    ``feed`` returns the stored bytes of every chunk that is complete and known not to
    be the last; ``finish`` returns the last chunk's. Afterwards ``size`` is the
    plaintext size and ``marks`` the seek marks (FRAMED).
    """

    def __init__(
        self,
        cipher: ChunkCipher,
        chunk_size: int,
        compressor: zstandard.ZstdCompressor | None = None,
    ) -> None:
        self._cipher = cipher
        self._chunk = chunk_size
        self._zstd = compressor
        self._buf = bytearray()
        self._index = 0
        self._stored = 0
        self.size = 0
        self.marks = Marks()
        self.finished = False

    @property
    def layout(self) -> int:
        return FIXED if self._zstd is None else FRAMED

    def _frame(self, data: bytes | memoryview, last: bool) -> bytes:
        if self._zstd is None:
            out = self._cipher.seal(self._index, last, data)
        else:
            packed = self._zstd.compress(data) if data else b""
            codec, kept = (_ZSTD, packed) if len(packed) < len(data) else (_RAW, data)
            body = bytes([codec]) + kept
            sealed = self._cipher.seal(self._index, last, body)
            self.marks.note(self._index, self._stored)
            out = _LEN.pack(len(sealed)) + sealed
        self._index += 1
        self._stored += len(out)
        return out

    def feed(self, data: bytes) -> bytes:
        if self.finished:
            raise ValueError("writer already finished")
        self.size += len(data)
        if self._buf:
            self._buf += data
            src: bytes | bytearray = self._buf
        else:
            src = data  # the common case: no copy into the buffer first
        frames: list[bytes] = []
        pos = 0
        with memoryview(src) as view:
            # Strictly more than a chunk: the chunk cut is then known not to be last.
            while len(src) - pos > self._chunk:
                frames.append(self._frame(view[pos : pos + self._chunk], last=False))
                pos += self._chunk
            rest = view[pos:].tobytes() if pos else None
        if rest is not None:
            self._buf = bytearray(rest)
        elif src is data:
            self._buf = bytearray(data)
        return b"".join(frames)

    def finish(self) -> bytes:
        if self.finished:
            raise ValueError("writer already finished")
        self.finished = True
        out = self._frame(bytes(self._buf), last=True)
        self._buf = bytearray()
        return out


@dataclass(slots=True, frozen=True)
class ReadPlan:
    """Where to read a plaintext range ``[start, end)`` in the stored object."""

    #: Stored byte range to fetch.
    stored: tuple[int, int]
    #: Index of the first chunk in the fetched bytes (FRAMED may start before ``first``).
    from_chunk: int
    #: Chunks to decrypt, inclusive.
    first: int
    last: int


def plan_read(
    *,
    layout: int,
    size: int,
    chunk_size: int,
    stored_size: int,
    start: int,
    end: int,
    marks: Marks | None = None,
) -> ReadPlan:
    """The stored range to fetch for plaintext ``[start, end)`` (``start < end``)."""
    if not 0 <= start < end <= size:
        raise ValueError(f"range {start}-{end} outside an object of {size} bytes")
    first, last = start // chunk_size, (end - 1) // chunk_size
    if layout == FIXED:
        frame = chunk_size + TAG
        return ReadPlan((first * frame, min(stored_size, (last + 1) * frame)), first, first, last)
    if marks is None or not marks.offsets:
        raise FormatError("chunk index missing")
    offsets = marks.offsets
    m = first // marks.step
    after = last // marks.step + 1
    if m >= len(offsets):
        raise FormatError("chunk index too short for the object's size")
    stored_end = offsets[after] if after < len(offsets) else stored_size
    return ReadPlan((offsets[m], stored_end), m * marks.step, first, last)


class ChunkReader:
    """Turns fetched stored bytes back into the plaintext of ``[start, end)``.

    ``feed`` returns plaintext pieces as chunks complete; ``done`` says whether the
    last wanted chunk has been decoded (then the rest of the stream is not needed);
    ``check_complete`` raises if the stored stream ended early.
    """

    def __init__(
        self,
        cipher: ChunkCipher,
        *,
        layout: int,
        size: int,
        chunk_size: int,
        plan: ReadPlan,
        start: int,
        end: int,
    ) -> None:
        self._cipher = cipher
        self._layout = layout
        self._size = size
        self._chunk = chunk_size
        self._count = chunk_count(size, chunk_size)
        self._plan = plan
        self._start = start
        self._end = end
        self._index = plan.from_chunk
        self._buf = bytearray()
        self._zstd = zstandard.ZstdDecompressor() if layout == FRAMED else None

    @property
    def done(self) -> bool:
        return self._index > self._plan.last

    def _plain_len(self, index: int) -> int:
        return self._chunk if index < self._count - 1 else self._size - index * self._chunk

    def _next_frame(self, pos: int) -> tuple[int, int] | None:
        """(body start, body end) of the frame at ``pos`` in the buffer, if complete."""
        buf = self._buf
        if self._layout == FIXED:
            need = self._plain_len(self._index) + TAG
            return (pos, pos + need) if len(buf) - pos >= need else None
        if len(buf) - pos < _LEN.size:
            return None
        (length,) = _LEN.unpack_from(buf, pos)
        if length > self._chunk + 1 + TAG:
            raise FormatError(f"chunk {self._index} has an impossible length")
        body = pos + _LEN.size
        return (body, body + length) if len(buf) - body >= length else None

    def _decode(self, sealed: memoryview) -> bytes:
        index = self._index
        last = index == self._count - 1
        plain = self._cipher.open(index, last, sealed)
        if self._zstd is not None:
            codec, body = plain[:1], plain[1:]
            if codec == bytes([_ZSTD]):
                try:
                    plain = self._zstd.decompress(body, max_output_size=self._chunk)
                except zstandard.ZstdError:
                    raise FormatError(f"chunk {index} does not decompress") from None
            elif codec == bytes([_RAW]):
                plain = body
            else:
                raise FormatError(f"chunk {index} has an unknown codec")
        if len(plain) != self._plain_len(index):
            raise FormatError(f"chunk {index} has the wrong length")
        return plain

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self.done:
            return out
        self._buf += data
        pos = 0
        view = memoryview(self._buf)
        try:
            pos = self._decode_frames(view, out)
        finally:
            view.release()
        if pos:
            del self._buf[:pos]
        return out

    def _decode_frames(self, view: memoryview, out: list[bytes]) -> int:
        """Decode the complete frames in the buffer; returns the bytes consumed."""
        pos = 0
        while not self.done and (frame := self._next_frame(pos)) is not None:
            lo, hi = frame
            index = self._index
            if index >= self._plan.first:
                plain = self._decode(view[lo:hi])
                offset = index * self._chunk
                cut_lo = max(self._start - offset, 0)
                cut_hi = min(self._end - offset, len(plain))
                piece = plain[cut_lo:cut_hi] if (cut_lo, cut_hi) != (0, len(plain)) else plain
                if piece:
                    out.append(piece)
            self._index += 1
            pos = hi
        return pos

    def check_complete(self) -> None:
        if not self.done:
            raise FormatError(f"stored data ends before chunk {self._index}")
