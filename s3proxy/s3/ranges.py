"""HTTP Range header handling as S3 does it (one range of ``bytes``)."""

from __future__ import annotations

import re

from s3proxy.s3.errors import S3Error

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The half-open ``(start, end)`` a Range header selects, or None for the whole object.

    Syntactically invalid or multi-range headers are ignored (the whole object is sent),
    as S3 does; a well-formed range that selects nothing is InvalidRange (416).
    """
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None:
        return None
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise invalid_range(size)
        return max(0, size - n), size
    start = int(first)
    if last and int(last) < start:
        return None  # invalid syntax per RFC 9110: ignore the header
    if start >= size:
        raise invalid_range(size)
    end = min(int(last) + 1, size) if last else size
    return start, end


def invalid_range(size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        extra={"ActualObjectSize": str(size)},
        headers=[("content-range", f"bytes */{size}")],
    )


def content_range(start: int, end: int, size: int) -> str:
    return f"bytes {start}-{end - 1}/{size}"
