"""Reading the start of an upload body to choose between a buffered and a streamed put."""

from __future__ import annotations

from collections.abc import AsyncIterator

from s3proxy.storage.native_put import take


class Chunk(bytes):
    """Records when the last reference to it goes."""

    freed: list[bytes] = []

    def __del__(self) -> None:
        Chunk.freed.append(bytes(self))


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield Chunk(part)


async def test_a_body_within_the_limit_comes_back_whole() -> None:
    assert await take(_chunks(b"ab", b"cd"), 4) == b"abcd"
    assert await take(_chunks(), 4) == b""


async def test_a_larger_body_streams_from_its_first_byte() -> None:
    body = await take(_chunks(b"ab", b"cd", b"ef", b"gh"), 3)
    assert not isinstance(body, bytes)
    assert b"".join([chunk async for chunk in body]) == b"abcdefgh"


async def test_the_chunks_read_ahead_are_let_go_once_passed_on() -> None:
    Chunk.freed.clear()
    body = await take(_chunks(b"ab", b"cd", b"ef"), 3)
    assert not isinstance(body, bytes)
    first = await anext(body)
    assert first == b"ab"
    del first
    second = await anext(body)
    # The first chunk is gone while the upload goes on: only the store held it.
    assert Chunk.freed == [b"ab"]
    assert second == b"cd"
