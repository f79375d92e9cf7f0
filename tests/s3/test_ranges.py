"""Range header parsing (GetObject / HeadObject ``Range``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3proxy.s3.errors import S3Error
from s3proxy.s3.ranges import content_range, parse_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 1)),
        ("bytes=0-9", 10, (0, 10)),
        ("bytes=2-5", 10, (2, 6)),
        ("bytes=9-9", 10, (9, 10)),
        # An end past the object is clamped, not an error.
        ("bytes=5-100", 10, (5, 10)),
        ("bytes=0-99999999999999999999", 10, (0, 10)),
        # Open-ended: from start to the end of the object.
        ("bytes=0-", 10, (0, 10)),
        ("bytes=7-", 10, (7, 10)),
        # Suffix: the last n bytes, all of them when n exceeds the size.
        ("bytes=-1", 10, (9, 10)),
        ("bytes=-3", 10, (7, 10)),
        ("bytes=-10", 10, (0, 10)),
        ("bytes=-500", 10, (0, 10)),
        # Whitespace around the parts is tolerated.
        ("  bytes=2-5  ", 10, (2, 6)),
        ("bytes= 2 - 5", 10, (2, 6)),
    ],
)
def test_satisfiable_ranges(header: str, size: int, expected: tuple[int, int]) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes=-",
        "bytes=",
        "items=0-5",
        "bytes 0-5",
        "bytes=a-b",
        "bytes=0x1-5",
        "bytes=-5-",
        "bytes=1-2-3",
        # Multi-range: S3 serves the whole object.
        "bytes=0-1,3-4",
        "bytes=0-1, 3-4",
        "bytes=-1,0-",
        # last < first is a syntactically invalid range (RFC 9110): ignored.
        "bytes=5-2",
    ],
)
def test_malformed_or_multi_range_is_ignored(header: str | None) -> None:
    assert parse_range(header, 10) is None


def _assert_invalid_range(exc: S3Error, size: int) -> None:
    assert exc.code == "InvalidRange"
    assert exc.status == 416
    assert ("content-range", f"bytes */{size}") in exc.headers
    assert exc.extra["ActualObjectSize"] == str(size)


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=10-", 10),
        ("bytes=10-20", 10),
        ("bytes=11-12", 10),
        ("bytes=0-0", 0),
        ("bytes=0-", 0),
        # A suffix of zero bytes selects nothing.
        ("bytes=-0", 10),
        ("bytes=-0", 0),
        # Any suffix of an empty object selects nothing.
        ("bytes=-5", 0),
    ],
)
def test_unsatisfiable_range(header: str, size: int) -> None:
    with pytest.raises(S3Error) as info:
        parse_range(header, size)
    _assert_invalid_range(info.value, size)


def test_content_range_is_inclusive() -> None:
    assert content_range(0, 1, 10) == "bytes 0-0/10"
    assert content_range(2, 6, 10) == "bytes 2-5/10"
    assert content_range(0, 10, 10) == "bytes 0-9/10"


_NUM = st.integers(min_value=0, max_value=2**40)


@st.composite
def _well_formed(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["closed", "open", "suffix"]))
    if kind == "suffix":
        return f"bytes=-{draw(_NUM)}"
    first = draw(_NUM)
    if kind == "open":
        return f"bytes={first}-"
    last = draw(st.integers(min_value=first, max_value=first + 2**40))
    return f"bytes={first}-{last}"


@settings(max_examples=300)
@given(size=st.one_of(st.integers(0, 64), _NUM), header=_well_formed())
def test_well_formed_range_is_in_bounds_or_invalid(size: int, header: str) -> None:
    try:
        selected = parse_range(header, size)
    except S3Error as exc:
        _assert_invalid_range(exc, size)
        return
    assert selected is not None
    start, end = selected
    assert 0 <= start < end <= size
    # And it is the range the header asks for, clamped to the object.
    first, last = header.removeprefix("bytes=").split("-")
    if not first:
        assert (start, end) == (max(0, size - int(last)), size)
    else:
        assert start == int(first)
        assert end == (min(int(last) + 1, size) if last else size)
