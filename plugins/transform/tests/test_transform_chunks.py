"""The chunked at-rest format (s3proxy_transform.chunks): round trips, ranges, tampering."""

from __future__ import annotations

import os
import struct

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from s3proxy_transform.chunks import (
    FIXED,
    FRAMED,
    MAX_MARKS,
    TAG,
    ChunkCipher,
    ChunkReader,
    ChunkWriter,
    FormatError,
    Marks,
    chunk_count,
    fixed_stored_size,
    plan_read,
)

CHUNK = 4096
KEY = bytes(range(32))
NONCE = b"\x01" * 8
TEXTY = b"the quick brown fox jumps over the lazy dog; " * 40


def cipher(layout: int, key: bytes = KEY, nonce: bytes = NONCE) -> ChunkCipher:
    return ChunkCipher(key, nonce, layout)


def write(data: bytes, layout: int, piece: int = 1000) -> tuple[bytes, ChunkWriter]:
    zstd = zstandard.ZstdCompressor(level=3) if layout == FRAMED else None
    writer = ChunkWriter(cipher(layout), CHUNK, zstd)
    out = [writer.feed(data[i : i + piece]) for i in range(0, len(data), piece)]
    out.append(writer.finish())
    return b"".join(out), writer


def read(
    stored: bytes,
    writer: ChunkWriter,
    start: int,
    end: int,
    piece: int = 777,
    key: bytes = KEY,
) -> bytes:
    layout = writer.layout
    plan = plan_read(
        layout=layout,
        size=writer.size,
        chunk_size=CHUNK,
        stored_size=len(stored),
        start=start,
        end=end,
        marks=writer.marks,
    )
    reader = ChunkReader(
        cipher(layout, key),
        layout=layout,
        size=writer.size,
        chunk_size=CHUNK,
        plan=plan,
        start=start,
        end=end,
    )
    lo, hi = plan.stored
    fetched = stored[lo:hi]
    out: list[bytes] = []
    for i in range(0, len(fetched), piece):
        out.extend(reader.feed(fetched[i : i + piece]))
    reader.check_complete()
    return b"".join(out)


def payload(size: int, texty: bool) -> bytes:
    if texty:
        return (TEXTY * (size // len(TEXTY) + 1))[:size]
    return os.urandom(size)


# Sizes around chunk boundaries: empty, one byte, exactly n chunks, n chunks +- 1.
boundary_sizes = st.one_of(
    st.integers(0, 3 * CHUNK + 5),
    st.builds(lambda n, d: max(0, n * CHUNK + d), st.integers(0, 6), st.integers(-1, 1)),
)


@settings(max_examples=60, deadline=None)
@given(
    size=boundary_sizes,
    layout=st.sampled_from([FIXED, FRAMED]),
    texty=st.booleans(),
    piece=st.integers(1, 3 * CHUNK),
)
def test_round_trip(size: int, layout: int, texty: bool, piece: int) -> None:
    data = payload(size, texty)
    stored, writer = write(data, layout, piece)
    assert writer.size == size
    # (Short plaintexts could turn up in random ciphertext by chance.)
    assert size < 16 or data not in stored
    if layout == FIXED:
        assert len(stored) == fixed_stored_size(size, CHUNK)
    if size:
        assert read(stored, writer, 0, size, piece=max(1, piece // 3)) == data


@settings(max_examples=80, deadline=None)
@given(data=st.data(), layout=st.sampled_from([FIXED, FRAMED]))
def test_any_range_reads_only_its_chunks(data: st.DataObject, layout: int) -> None:
    size = data.draw(st.integers(1, 5 * CHUNK + 3))
    body = payload(size, texty=data.draw(st.booleans()))
    stored, writer = write(body, layout)
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start + 1, size))
    assert read(stored, writer, start, end) == body[start:end]
    if layout == FIXED:
        plan = plan_read(
            layout=FIXED,
            size=size,
            chunk_size=CHUNK,
            stored_size=len(stored),
            start=start,
            end=end,
        )
        # Only whole chunks that overlap the range are fetched.
        chunks_read = -(-(plan.stored[1] - plan.stored[0]) // (CHUNK + TAG))
        assert chunks_read == (end - 1) // CHUNK - start // CHUNK + 1


def test_compression_shrinks_text_and_keeps_random_data_raw() -> None:
    text = payload(10 * CHUNK, texty=True)
    stored, _ = write(text, FRAMED)
    assert len(stored) < len(text) // 4
    noise = os.urandom(10 * CHUNK)
    stored, writer = write(noise, FRAMED)
    # Incompressible chunks are kept raw: one codec byte, a length and a tag each.
    assert len(stored) == len(noise) + 10 * (1 + 4 + TAG)
    assert read(stored, writer, 5, 9 * CHUNK) == noise[5 : 9 * CHUNK]


def test_seek_marks_stay_bounded_and_point_at_frames() -> None:
    marks = Marks()
    for index in range(10 * MAX_MARKS + 7):
        marks.note(index, index * 100)
    assert len(marks.offsets) <= MAX_MARKS
    assert all(off == i * marks.step * 100 for i, off in enumerate(marks.offsets))
    assert Marks.unpack(marks.step, marks.pack()) == marks


def test_seeking_in_a_large_compressed_object() -> None:
    size = (MAX_MARKS * 3 + 5) * CHUNK  # enough chunks that the marks thin out
    text = payload(size, texty=True)
    stored, writer = write(text, FRAMED, piece=64 * 1024)
    assert writer.marks.step > 1
    start, end = size - 3 * CHUNK - 10, size - CHUNK + 10
    assert read(stored, writer, start, end) == text[start:end]


def fixed_object(chunks: int = 4) -> tuple[bytes, ChunkWriter, bytes]:
    data = os.urandom(chunks * CHUNK - 7)
    stored, writer = write(data, FIXED)
    return stored, writer, data


def test_tampered_byte_fails() -> None:
    stored, writer, data = fixed_object()
    for pos in (0, CHUNK + TAG + 5, len(stored) - 1):
        bad = bytearray(stored)
        bad[pos] ^= 1
        with pytest.raises(FormatError, match="authentication"):
            read(bytes(bad), writer, 0, len(data))


def test_reordered_chunks_fail() -> None:
    stored, writer, data = fixed_object()
    frame = CHUNK + TAG
    swapped = stored[frame : 2 * frame] + stored[:frame] + stored[2 * frame :]
    with pytest.raises(FormatError, match="chunk 0"):
        read(swapped, writer, 0, len(data))
    # Also when reading only the second chunk: it carries chunk 0's bytes now.
    with pytest.raises(FormatError, match="chunk 1"):
        read(swapped, writer, frame, frame + 1)


def test_truncated_object_fails() -> None:
    stored, writer, data = fixed_object()
    frame = CHUNK + TAG
    # Whole chunks dropped from the end, and the size shrunk to match: the new last
    # chunk was not sealed as the last one.
    short = stored[: 2 * frame]
    writer.size = 2 * CHUNK
    with pytest.raises(FormatError, match="chunk 1"):
        read(short, writer, 0, 2 * CHUNK)
    # A stream that stops early is noticed too.
    writer.size = len(data)
    with pytest.raises(FormatError, match="ends before"):
        read(stored[: 3 * frame], writer, 0, len(data))


def test_chunk_from_another_object_fails() -> None:
    stored, writer, data = fixed_object()
    other = ChunkWriter(ChunkCipher(KEY, b"\x02" * 8, FIXED), CHUNK)
    foreign = other.feed(os.urandom(2 * CHUNK))[: CHUNK + TAG]
    spliced = foreign + stored[CHUNK + TAG :]
    with pytest.raises(FormatError, match="chunk 0"):
        read(spliced, writer, 0, len(data))


def test_wrong_key_fails() -> None:
    stored, writer, data = fixed_object()
    with pytest.raises(FormatError):
        read(stored, writer, 0, len(data), key=bytes(32))


def test_framed_length_and_codec_are_checked() -> None:
    stored, writer = write(payload(3 * CHUNK, texty=True), FRAMED)
    bad = struct.pack(">I", 10 * CHUNK) + stored[4:]
    with pytest.raises(FormatError, match="impossible length"):
        read(bad, writer, 0, writer.size)
    # A chunk of another layout never opens: the layout is authenticated.
    with pytest.raises(FormatError):
        ChunkReader(
            cipher(FIXED),
            layout=FRAMED,
            size=writer.size,
            chunk_size=CHUNK,
            plan=plan_read(
                layout=FRAMED,
                size=writer.size,
                chunk_size=CHUNK,
                stored_size=len(stored),
                start=0,
                end=1,
                marks=writer.marks,
            ),
            start=0,
            end=1,
        ).feed(stored)


def test_writer_counts_chunks_like_the_reader() -> None:
    assert [chunk_count(n, CHUNK) for n in (0, 1, CHUNK, CHUNK + 1)] == [1, 1, 1, 2]
    with pytest.raises(ValueError):
        plan_read(layout=FIXED, size=10, chunk_size=CHUNK, stored_size=26, start=5, end=11)
    writer = ChunkWriter(cipher(FIXED), CHUNK)
    writer.finish()
    with pytest.raises(ValueError):
        writer.feed(b"late")
