"""A large multipart upload keeps the proxy's memory bounded (parts and Complete stream).

The 5 GiB variant is ``bench/multipart_5gib.py``; it costs minutes, so CI runs 1 GiB.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy
from tests.e2e.test_streaming import RssSampler, pattern_chunks, tree_rss

MiB = 1024 * 1024
RSS_LIMIT = 64 * MiB


@dataclass
class Transfer:
    seconds: float
    rss_growth: int


def multipart_round_trip(server: ProxyServer, size: int, part_size: int) -> Transfer:
    """Upload ``size`` bytes in parts, complete, read back; the proxy's peak RSS growth."""
    s3 = s3_client(server.endpoint, read_timeout=900)
    bucket = f"large-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    # Warm up so that lazily built state is part of the baseline.
    warm = s3.create_multipart_upload(Bucket=bucket, Key="warm")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="warm", UploadId=warm, PartNumber=1, Body=b"w")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="warm",
        UploadId=warm,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag["ETag"]}]},
    )
    s3.get_object(Bucket=bucket, Key="warm")["Body"].read()
    baseline = tree_rss(server.pid)
    started = time.monotonic()

    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    expected = hashlib.md5()
    done = []
    with RssSampler(server.pid) as rss:
        offset = 0
        number = 1
        while offset < size:
            length = min(part_size, size - offset)

            def body(offset: int = offset, length: int = length) -> Iterator[bytes]:
                for chunk in pattern_chunks(length):
                    # Distinct content per part, so a misplaced part changes the digest.
                    chunk = offset.to_bytes(8, "big") + chunk[8:]
                    expected.update(chunk)
                    yield chunk

            url = f"{server.endpoint}/{bucket}/big?partNumber={number}&uploadId={upload_id}"
            resp = httpx.put(
                url, content=body(), headers={"content-length": str(length)}, timeout=600
            )
            assert resp.status_code == 200, resp.text
            done.append({"PartNumber": number, "ETag": resp.headers["etag"]})
            offset += length
            number += 1
        result = s3.complete_multipart_upload(
            Bucket=bucket, Key="big", UploadId=upload_id, MultipartUpload={"Parts": done}
        )
        assert result["ETag"].endswith(f'-{len(done)}"')
        got = hashlib.md5()
        received = 0
        with httpx.stream("GET", f"{server.endpoint}/{bucket}/big", timeout=600) as stream:
            assert stream.status_code == 200
            for chunk in stream.iter_bytes(MiB):
                got.update(chunk)
                received += len(chunk)
    assert received == size
    assert got.hexdigest() == expected.hexdigest()
    s3.delete_object(Bucket=bucket, Key="big")
    return Transfer(time.monotonic() - started, rss.peak - baseline)


@pytest.fixture(scope="module")
def local_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    server = start_proxy(tmp_path_factory.mktemp("mp-large"), "local")
    yield server
    stop_proxy(server)


@pytest.mark.slow
def test_1gib_multipart_bounded_memory(local_proxy: ProxyServer) -> None:
    result = multipart_round_trip(local_proxy, 1024 * MiB, 64 * MiB)
    assert result.rss_growth <= RSS_LIMIT, (
        f"multipart upload grew RSS by {result.rss_growth / MiB:.1f} MiB"
    )
