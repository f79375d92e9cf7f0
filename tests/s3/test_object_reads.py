"""GetObject/HeadObject ``partNumber`` on multipart objects, at handler level.

A multipart object is made by writing ``ObjectMetadata.part_sizes`` through the backend
directly, so these do not depend on the multipart operations.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3proxy.s3 import checksums
from s3proxy.s3.errors import S3Error
from s3proxy.s3.http import S3Request, S3Response
from s3proxy.s3.operations.objects import get_object, head_object, http_date
from s3proxy.storage.backend import ObjectInfo, ObjectMetadata, PutBody, StorageBackend
from s3proxy.storage.builtin import make_memory

PARTS = [b"a" * 5, b"b" * 5, b"c" * 3]
DATA = b"".join(PARTS)
ETAG = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in PARTS)).hexdigest() + "-3"


@pytest.fixture
async def backend() -> AsyncIterator[StorageBackend]:
    made = make_memory(None)
    await made.start()
    await made.create_bucket("b")

    async def chunks() -> AsyncIterator[bytes]:
        yield DATA

    meta = ObjectMetadata(
        etag=ETAG,
        part_sizes=[len(p) for p in PARTS],
        checksums={"CRC32": checksums.compute("CRC32", b"composite") + "-3"},
    )
    await made.put("b", "mp", PutBody(chunks(), lambda: meta))
    yield made
    await made.close()


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


def request(
    backend: StorageBackend, method: str, query: dict[str, str], **headers: str
) -> S3Request:
    return S3Request(
        method=method,
        operation="GetObject",
        bucket="b",
        key="mp",
        query=query,
        headers=headers,
        body=_empty(),
        backend=backend,
        request_id="r",
        resource="/b/mp",
    )


async def body_of(resp: S3Response) -> bytes:
    if isinstance(resp.body, bytes):
        return resp.body
    return b"".join([chunk async for chunk in resp.body])


@pytest.mark.parametrize(("number", "start"), [(1, 0), (2, 5), (3, 10)])
async def test_part_number_reads_one_part(backend: StorageBackend, number: int, start: int) -> None:
    resp = await get_object(request(backend, "GET", {"partNumber": str(number)}))
    headers = dict(resp.headers)
    part = PARTS[number - 1]
    assert resp.status == 206
    assert await body_of(resp) == part
    assert headers["content-range"] == f"bytes {start}-{start + len(part) - 1}/{len(DATA)}"
    assert headers["x-amz-mp-parts-count"] == "3"
    # The ETag is the whole object's, as S3 answers.
    assert headers["etag"] == f'"{ETAG}"'
    assert resp.content_length == len(part)


async def test_head_part_number(backend: StorageBackend) -> None:
    resp = await head_object(request(backend, "HEAD", {"partNumber": "3"}))
    assert (resp.status, resp.content_length, resp.body) == (206, 3, b"")
    assert dict(resp.headers)["x-amz-mp-parts-count"] == "3"


async def test_part_number_out_of_range(backend: StorageBackend) -> None:
    with pytest.raises(S3Error) as exc:
        await get_object(request(backend, "GET", {"partNumber": "4"}))
    assert (exc.value.code, exc.value.status) == ("InvalidPartNumber", 416)
    assert exc.value.extra["ActualPartCount"] == "3"


async def test_whole_multipart_object_with_checksum_mode(backend: StorageBackend) -> None:
    resp = await get_object(request(backend, "GET", {}, **{"x-amz-checksum-mode": "ENABLED"}))
    headers = dict(resp.headers)
    assert resp.status == 200
    assert await body_of(resp) == DATA
    assert "x-amz-mp-parts-count" not in headers
    assert headers["x-amz-checksum-type"] == "COMPOSITE"
    assert headers["x-amz-checksum-crc32"].endswith("-3")
    # A part is not the whole object: its checksum is not the object's.
    part = await get_object(
        request(backend, "GET", {"partNumber": "1"}, **{"x-amz-checksum-mode": "ENABLED"})
    )
    assert "x-amz-checksum-crc32" not in dict(part.headers)


@given(st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)))
def test_http_date_is_imf_fixdate(when: datetime) -> None:
    info = ObjectInfo(key="k", size=0, last_modified=when, metadata=ObjectMetadata(etag="e"))
    assert http_date(info) == format_datetime(when.replace(microsecond=0), usegmt=True)
