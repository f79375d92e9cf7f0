"""The cache plugin in a running proxy (local backend) with a real Redis, driven by boto3."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from plugins.cache.tests.conftest import RedisServer, start_cached_proxy
from tests.conftest import ProxyServer, metric, s3_client, start_proxy, stop_proxy

HITS = "s3proxy_cache_hits_total"
MISSES = "s3proxy_cache_misses_total"
ERRORS = "s3proxy_cache_errors_total"


@pytest.fixture(scope="module")
def cached(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyServer]:
    server = start_cached_proxy(
        tmp_path_factory.mktemp("cached"), redis_server, max_object_size="64KiB"
    )
    yield server
    stop_proxy(server)


@pytest.fixture
def s3(cached: ProxyServer) -> Any:
    return s3_client(cached.endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"cache-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def body_of(s3: Any, bucket: str, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def test_second_read_is_a_hit(cached: ProxyServer, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"cached bytes", ContentType="text/plain")
    hits, misses = metric(cached.endpoint, HITS), metric(cached.endpoint, MISSES)
    first = s3.get_object(Bucket=bucket, Key="k")
    second = s3.get_object(Bucket=bucket, Key="k")
    assert first["Body"].read() == second["Body"].read() == b"cached bytes"
    assert second["ContentType"] == "text/plain"
    assert second["ETag"] == first["ETag"]
    assert second["LastModified"] == first["LastModified"]
    assert metric(cached.endpoint, MISSES, operation="get") == misses + 1
    assert metric(cached.endpoint, HITS, operation="get") == hits + 1
    head_hits = metric(cached.endpoint, HITS, operation="head")
    head_misses = metric(cached.endpoint, MISSES, operation="head")
    s3.head_object(Bucket=bucket, Key="k")
    # HEAD reads the entry the GET made (the backend's head is not asked).
    assert metric(cached.endpoint, HITS, operation="head") == head_hits + 1
    assert metric(cached.endpoint, MISSES, operation="head") == head_misses


def test_put_delete_copy_complete_invalidate(s3: Any, bucket: str) -> None:
    def warm(key: str, expected: bytes) -> None:
        for _ in range(2):
            assert body_of(s3, bucket, key) == expected

    s3.put_object(Bucket=bucket, Key="k", Body=b"one")
    warm("k", b"one")
    s3.put_object(Bucket=bucket, Key="k", Body=b"two")
    warm("k", b"two")

    s3.put_object(Bucket=bucket, Key="src", Body=b"copied")
    s3.copy_object(Bucket=bucket, Key="k", CopySource={"Bucket": bucket, "Key": "src"})
    warm("k", b"copied")
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == len(b"copied")

    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"mpu")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    warm("k", b"mpu")
    assert s3.head_object(Bucket=bucket, Key="k")["ETag"].endswith('-1"')

    s3.delete_object(Bucket=bucket, Key="k")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k")
    assert exc.value.response["Error"]["Code"] == "NoSuchKey"

    warm("src", b"copied")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "src"}]})
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="src")


def test_large_objects_are_not_cached(cached: ProxyServer, s3: Any, bucket: str) -> None:
    data = b"L" * (64 * 1024 + 1)  # one byte above S3PROXY_CACHE_MAX_OBJECT_SIZE
    s3.put_object(Bucket=bucket, Key="large", Body=data)
    misses = metric(cached.endpoint, MISSES, operation="get")
    for _ in range(3):
        assert body_of(s3, bucket, "large") == data
    assert metric(cached.endpoint, MISSES, operation="get") == misses + 3
    # Its metadata is cached: HEAD is a hit.
    hits = metric(cached.endpoint, HITS, operation="head")
    assert s3.head_object(Bucket=bucket, Key="large")["ContentLength"] == len(data)
    assert metric(cached.endpoint, HITS, operation="head") == hits + 1


# -- the same answers with and without the cache ---------------------------------------


@pytest.fixture(scope="module")
def twins(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ProxyServer, ProxyServer]]:
    """Two proxies over the same data directory, one without the cache, one with it."""
    tmp = tmp_path_factory.mktemp("twins")
    plain = start_proxy(tmp, "local")
    try:
        cached = start_cached_proxy(tmp, redis_server)
    except Exception:
        stop_proxy(plain)
        raise
    yield plain, cached
    stop_proxy(cached)
    stop_proxy(plain)


_VOLATILE = {"x-amz-request-id", "x-amz-id-2", "date", "server"}


def observe(s3: Any, method: str, **kwargs: Any) -> tuple[Any, ...]:
    """Status, headers and body of a GetObject/HeadObject, as the client sees them."""
    try:
        resp = getattr(s3, method)(**kwargs)
    except ClientError as exc:
        meta = exc.response["ResponseMetadata"]
        headers = {k: v for k, v in meta["HTTPHeaders"].items() if k not in _VOLATILE}
        return ("error", exc.response["Error"]["Code"], meta["HTTPStatusCode"], headers)
    meta = resp["ResponseMetadata"]
    headers = {k: v for k, v in meta["HTTPHeaders"].items() if k not in _VOLATILE}
    body = resp["Body"].read() if "Body" in resp else b""
    return (meta["HTTPStatusCode"], headers, body)


def read_variants(etag: str, modified: Any) -> list[dict[str, Any]]:
    later, earlier = modified + timedelta(days=1), modified - timedelta(days=1)
    return [
        {},
        {"Range": "bytes=0-4"},
        {"Range": "bytes=-3"},
        {"Range": "bytes=6-"},
        {"Range": "bytes=1000-2000"},
        {"PartNumber": 1},
        {"PartNumber": 2},
        {"IfMatch": etag},
        {"IfMatch": '"0123"'},
        {"IfNoneMatch": etag},
        {"IfNoneMatch": '"0123"', "Range": "bytes=2-3"},
        {"IfModifiedSince": later},
        {"IfModifiedSince": earlier},
        {"IfUnmodifiedSince": earlier},
        {"IfMatch": etag, "IfUnmodifiedSince": earlier},
        {"IfNoneMatch": etag, "IfModifiedSince": earlier},
        {"ResponseContentType": "text/x-override", "Range": "bytes=1-1"},
        {"ChecksumMode": "ENABLED"},
    ]


@pytest.mark.parametrize("size", [40, 20_000])
def test_conditionals_and_ranges_as_uncached(
    twins: tuple[ProxyServer, ProxyServer], size: int
) -> None:
    plain, cached = (s3_client(p.endpoint) for p in twins)
    bucket = f"twins-{uuid.uuid4().hex[:10]}"
    plain.create_bucket(Bucket=bucket)
    data = bytes(i % 253 for i in range(size))
    put = plain.put_object(
        Bucket=bucket,
        Key="obj",
        Body=data,
        ContentType="application/x-thing",
        Metadata={"m": "1"},
        ChecksumAlgorithm="CRC32",
    )
    head = plain.head_object(Bucket=bucket, Key="obj")
    hits = metric(twins[1].endpoint, HITS)
    compared = 0
    for variant in read_variants(put["ETag"], head["LastModified"]):
        for method in ("get_object", "head_object"):
            if method == "head_object" and "ResponseContentType" in variant:
                continue
            args = {"Bucket": bucket, "Key": "obj", **variant}
            expected = observe(plain, method, **args)
            for _ in range(2):  # cold, then from the cache
                assert observe(cached, method, **args) == expected, (method, variant)
            compared += 1
    assert metric(twins[1].endpoint, HITS) >= hits + compared


# -- Redis going away ----------------------------------------------------------------------


def test_redis_killed_mid_test(tmp_path: Path, private_redis: RedisServer) -> None:
    server = start_cached_proxy(tmp_path, private_redis, retry_after="0", timeout="0.5")
    try:
        s3 = s3_client(server.endpoint)
        s3.create_bucket(Bucket="outage")
        s3.put_object(Bucket="outage", Key="k", Body=b"before")
        assert body_of(s3, "outage", "k") == b"before"
        assert body_of(s3, "outage", "k") == b"before"
        assert metric(server.endpoint, HITS) >= 1

        private_redis.kill()
        assert body_of(s3, "outage", "k") == b"before"
        s3.put_object(Bucket="outage", Key="k", Body=b"during")
        assert body_of(s3, "outage", "k") == b"during"
        assert s3.head_object(Bucket="outage", Key="k")["ContentLength"] == len(b"during")
        s3.copy_object(Bucket="outage", Key="c", CopySource={"Bucket": "outage", "Key": "k"})
        s3.delete_object(Bucket="outage", Key="k")
        with pytest.raises(ClientError):
            s3.get_object(Bucket="outage", Key="k")
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="outage")["Contents"]] == ["c"]
        assert metric(server.endpoint, ERRORS) >= 4
        assert server.log().count("is unavailable") == 1  # logged once, not per request

        private_redis.start()  # same port, empty
        hits = metric(server.endpoint, HITS)
        assert body_of(s3, "outage", "c") == b"during"
        assert body_of(s3, "outage", "c") == b"during"
        assert metric(server.endpoint, HITS) == hits + 1
        assert "is available again" in server.log()
    finally:
        stop_proxy(server)
