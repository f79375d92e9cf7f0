"""aws-chunked body decoding."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3proxy.s3.chunked import ChunkedDecoder
from s3proxy.s3.errors import S3Error

CRC_TRAILER = ("x-amz-checksum-crc32", "sOO8/Q==")


def chunks(data: bytes, chunk_sizes: Sequence[int]) -> list[bytes]:
    """The chunks ``encode`` frames, ending with the empty final chunk."""
    pieces: list[bytes] = []
    pos = 0
    while pos < len(data):
        n = chunk_sizes[len(pieces) % len(chunk_sizes)] if chunk_sizes else len(data)
        pieces.append(data[pos : pos + n])
        pos += n
    return [*pieces, b""]


def encode(
    data: bytes,
    chunk_sizes: Sequence[int] = (),
    *,
    signatures: Sequence[str] | None = None,
    trailers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """An aws-chunked encoding of ``data``: chunk sizes cycle, the last chunk takes the rest.

    ``signatures`` (one per chunk, including the final empty one) makes the chunk headers
    carry ``;chunk-signature=``.
    """
    pieces = chunks(data, chunk_sizes)
    out = bytearray()
    for index, piece in enumerate(pieces):
        out += f"{len(piece):x}".encode()
        if signatures is not None:
            out += f";chunk-signature={signatures[index]}".encode()
        out += b"\r\n"
        if piece:
            out += piece + b"\r\n"
    for name, value in trailers:
        out += f"{name}:{value}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def split(body: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(body)})
    bounds = [0, *points, len(body)]
    return [body[a:b] for a, b in pairwise(bounds)]


async def feed(parts: Sequence[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def decode(parts: Sequence[bytes]) -> tuple[bytes, ChunkedDecoder]:
    decoder = ChunkedDecoder(feed(parts))
    out = bytearray()
    async for piece in decoder:
        out += piece
    return bytes(out), decoder


async def decode_error(parts: Sequence[bytes]) -> S3Error:
    with pytest.raises(S3Error) as info:
        await decode(parts)
    return info.value


async def test_single_chunk() -> None:
    data, dec = await decode([b"5\r\nhello\r\n0\r\n\r\n"])
    assert data == b"hello"
    assert dec.trailers == {}
    assert dec.signatures == []


async def test_empty_body() -> None:
    data, dec = await decode([b"0\r\n\r\n"])
    assert data == b""
    assert dec.trailers == {}


async def test_uppercase_hex_size() -> None:
    payload = bytes(range(256)) * 2
    body = b"1F4\r\n" + payload[:500] + b"\r\n" + b"C\r\n" + payload[500:] + b"\r\n0\r\n\r\n"
    data, _ = await decode([body])
    assert data == payload


async def test_signatures_collected_in_order() -> None:
    sigs = [f"{i:064x}" for i in (1, 2, 3)]
    body = encode(b"abcdefghij", [4, 6], signatures=sigs)
    assert body.startswith(b"4;chunk-signature=" + sigs[0].encode() + b"\r\nabcd\r\n")
    data, dec = await decode([body])
    assert data == b"abcdefghij"
    assert dec.signatures == sigs


async def test_trailers_parsed() -> None:
    body = encode(
        b"hello world",
        [5],
        trailers=[CRC_TRAILER, ("X-Amz-Trailer-Signature", " abc123 ")],
    )
    data, dec = await decode([body])
    assert data == b"hello world"
    # Names are case-insensitive (stored lowercase), values stripped; the signature is
    # not a trailer of the object.
    assert dec.trailers == {"x-amz-checksum-crc32": "sOO8/Q=="}
    assert dec.trailer_signature == "abc123"


async def test_trailer_value_may_contain_colons() -> None:
    _, dec = await decode([encode(b"x", trailers=[("x-amz-meta", "a:b:c")])])
    assert dec.trailers == {"x-amz-meta": "a:b:c"}


async def test_stream_may_end_after_last_chunk_header() -> None:
    # Some clients omit the final CRLF when there are no trailers.
    data, dec = await decode([b"3\r\nabc\r\n0\r\n"])
    assert data == b"abc"
    assert dec.trailers == {}


async def test_data_yielded_before_chunk_complete() -> None:
    """A chunk is streamed as it arrives, not buffered whole."""
    consumed: list[int] = []

    async def source() -> AsyncIterator[bytes]:
        yield b"a\r\n01234"
        consumed.append(1)
        yield b"56789\r\n0\r\n\r\n"

    decoder = ChunkedDecoder(source())
    it = aiter(decoder)
    first = await anext(it)
    assert first == b"01234"
    assert consumed == []
    rest = b"".join([piece async for piece in it])
    assert first + rest == b"0123456789"


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=3000),
    chunk_sizes=st.lists(st.integers(1, 700), min_size=1, max_size=6),
    signed=st.booleans(),
    with_trailers=st.booleans(),
    cuts=st.lists(st.integers(0, 5000), max_size=25),
)
async def test_roundtrip_any_split(
    data: bytes,
    chunk_sizes: list[int],
    signed: bool,
    with_trailers: bool,
    cuts: list[int],
) -> None:
    n_chunks = len(chunks(data, chunk_sizes))
    sigs = [f"{i:064x}" for i in range(n_chunks)] if signed else None
    trailers = [CRC_TRAILER, ("x-amz-trailer-signature", "f" * 64)] if with_trailers else []
    body = encode(data, chunk_sizes, signatures=sigs, trailers=trailers)
    parts = split(body, cuts)
    assert b"".join(parts) == body

    decoded, dec = await decode(parts)

    assert decoded == data
    assert dec.trailers == dict(trailers[:1])
    assert dec.trailer_signature == ("f" * 64 if with_trailers else None)
    assert dec.signatures == (sigs or [])


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=500),
    chunk_sizes=st.lists(st.integers(1, 100), min_size=1, max_size=4),
    with_trailers=st.booleans(),
    cut=st.data(),
)
async def test_any_truncation_is_incomplete_body(
    data: bytes, chunk_sizes: list[int], with_trailers: bool, cut: st.DataObject
) -> None:
    trailers = [CRC_TRAILER] if with_trailers else []
    body = encode(data, chunk_sizes, trailers=trailers)
    # Cut anywhere before the last chunk header is complete ("0\r\n"); later cuts
    # (missing final CRLF) are tolerated, see test_stream_may_end_after_last_chunk_header.
    last_header_end = body.rindex(b"\r\n0\r\n") + len(b"\r\n0\r")
    length = cut.draw(st.integers(0, last_header_end))
    err = await decode_error([body[:length]])
    assert err.code == "IncompleteBody"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"5",
        b"5\r",
        b"5\r\nhel",
        b"5\r\nhello",
        b"5\r\nhello\r",
        b"5;chunk-signature=ab",
        b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:abc",
    ],
)
async def test_truncated(body: bytes) -> None:
    err = await decode_error([body])
    assert err.code == "IncompleteBody"
    assert err.status == 400


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        b";chunk-signature=ab\r\n",
        b"-1\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"0_5\r\nhello\r\n0\r\n\r\n",
        b"5 5\r\nhello\r\n0\r\n\r\n",
        b"\xff\r\n",
    ],
)
async def test_bad_chunk_size(body: bytes) -> None:
    err = await decode_error([body])
    assert err.code == "InvalidRequest"
    assert "chunk size" in err.message


@pytest.mark.parametrize(
    "body",
    [
        b"5\r\nhelloXX0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"3\r\nhello\r\n0\r\n\r\n",  # declared size shorter than the data
    ],
)
async def test_missing_crlf_after_data(body: bytes) -> None:
    err = await decode_error([body])
    assert err.code == "InvalidRequest"
    assert "CRLF" in err.message


async def test_missing_crlf_after_data_split_across_reads() -> None:
    err = await decode_error([b"5\r\nhello", b"X", b"Y0\r\n\r\n"])
    assert err.code == "InvalidRequest"


async def test_trailer_without_colon() -> None:
    err = await decode_error([b"0\r\nnot-a-trailer\r\n\r\n"])
    assert err.code == "InvalidRequest"


async def test_overlong_chunk_header() -> None:
    err = await decode_error([b"5;" + b"x" * 10_000])
    assert err.code == "InvalidRequest"
    assert "too long" in err.message
