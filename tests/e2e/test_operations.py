"""Operator-facing behaviour: Prometheus metrics, request ids, limits, compression,
draining on SIGTERM."""

from __future__ import annotations

import gzip
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config as BotoConfig
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy

MiB = 1024 * 1024
KEYS = {"S3PROXY_AUTH__ACCESS_KEY_ID": "ops-key", "S3PROXY_AUTH__SECRET_ACCESS_KEY": "ops-secret"}


def scrape(server: ProxyServer, path: str = "/_s3proxy/metrics") -> dict[str, list]:  # type: ignore[type-arg]
    resp = httpx.get(server.endpoint + path)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    families: dict[str, list] = {}  # type: ignore[type-arg]
    for family in text_string_to_metric_families(resp.text):
        families[family.name] = family.samples
    return families


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    server = start_proxy(
        tmp_path_factory.mktemp("ops"),
        "local",
        env={**KEYS, "S3PROXY_SERVER__REQUEST_ID_HEADER": "x-request-id"},
    )
    yield server
    stop_proxy(server)


def authed(server: ProxyServer):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=KEYS["S3PROXY_AUTH__ACCESS_KEY_ID"],
        aws_secret_access_key=KEYS["S3PROXY_AUTH__SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def test_metrics_after_traffic(observed: ProxyServer) -> None:
    s3 = authed(observed)
    s3.create_bucket(Bucket="metered")
    s3.put_object(Bucket="metered", Key="a/b.txt", Body=b"x" * 5000)
    s3.get_object(Bucket="metered", Key="a/b.txt")["Body"].read()
    s3.list_objects_v2(Bucket="metered")
    httpx.get(f"{observed.endpoint}/metered/a/b.txt")  # unsigned: an auth failure

    families = scrape(observed)
    assert "s3proxy_requests" in scrape(observed, "/metrics")  # the conventional path too
    duration = families["http_server_request_duration_seconds"]
    routes = {s.labels.get("http_route") for s in duration}
    assert routes >= {"/{bucket}", "/{bucket}/{key}"}
    assert not any("a/b.txt" in str(s.labels) for fam in families.values() for s in fam)
    requests = {
        (s.labels["operation"], s.labels["status_class"]): s.value
        for s in families["s3proxy_requests"]
        if s.name.endswith("_total")
    }
    assert requests[("PutObject", "2xx")] >= 1
    assert requests[("GetObject", "4xx")] >= 1
    received = [s for s in families["s3proxy_received_bytes"] if s.name.endswith("_total")]
    assert any(s.labels["operation"] == "PutObject" and s.value >= 5000 for s in received)
    sent = [s for s in families["s3proxy_sent_bytes"] if s.name.endswith("_total")]
    assert any(s.labels["operation"] == "GetObject" and s.value >= 5000 for s in sent)
    backend = families["s3proxy_backend_duration_seconds"]
    assert {s.labels["backend"] for s in backend} == {"local"}
    assert {s.labels["operation"] for s in backend} >= {"put", "get", "list"}
    assert "http_server_active_requests" in families


def test_metrics_path_does_not_hide_a_bucket_named_metrics(observed: ProxyServer) -> None:
    s3 = authed(observed)
    s3.create_bucket(Bucket="metrics")
    s3.put_object(Bucket="metrics", Key="k", Body=b"x")
    # Signed: S3's ListObjects of the bucket. Unsigned, no query: the Prometheus scrape.
    assert [o["Key"] for o in s3.list_objects(Bucket="metrics")["Contents"]] == ["k"]
    assert "s3proxy_requests_total" in httpx.get(f"{observed.endpoint}/metrics").text


def test_multipart_events_counted(observed: ProxyServer) -> None:
    s3 = authed(observed)
    s3.create_bucket(Bucket="mpu-metrics")

    def events() -> dict[str, float]:
        samples = scrape(observed).get("s3proxy_multipart_uploads", [])
        return {s.labels["event"]: s.value for s in samples if s.name.endswith("_total")}

    before = events()
    upload = s3.create_multipart_upload(Bucket="mpu-metrics", Key="k")
    s3.abort_multipart_upload(Bucket="mpu-metrics", Key="k", UploadId=upload["UploadId"])
    after = events()
    assert after["created"] == before.get("created", 0) + 1
    assert after["aborted"] == before.get("aborted", 0) + 1


def test_auth_failures_counted(observed: ProxyServer) -> None:
    before = _counter(observed, "s3proxy_auth_failures")
    httpx.get(
        f"{observed.endpoint}/metered/x",
        headers={
            "authorization": "AWS4-HMAC-SHA256 Credential=nobody/20250101/us-east-1/s3/"
            "aws4_request, SignedHeaders=host, Signature=00",
            "x-amz-date": "20250101T000000Z",
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        },
    )
    assert _counter(observed, "s3proxy_auth_failures") == before + 1


def _counter(server: ProxyServer, name: str) -> float:
    samples = scrape(server).get(name, [])
    return sum(s.value for s in samples if s.name.endswith("_total"))


def test_request_id_from_trusted_header(observed: ProxyServer) -> None:
    resp = httpx.get(f"{observed.endpoint}/", headers={"x-request-id": "req-from-lb-42"})
    assert resp.headers["x-amz-request-id"] == "req-from-lb-42"
    assert "<RequestId>req-from-lb-42</RequestId>" in resp.text
    bad = httpx.get(f"{observed.endpoint}/", headers={"x-request-id": "x" * 500})
    assert bad.headers["x-amz-request-id"] != "x" * 500


def test_xml_is_compressed_objects_are_not(observed: ProxyServer) -> None:
    s3 = authed(observed)
    s3.create_bucket(Bucket="squeeze")
    for i in range(40):
        s3.put_object(
            Bucket="squeeze", Key=f"key-{i:03d}", Body=b"a" * 4000, ContentType="application/xml"
        )
    listing = s3.list_objects_v2(Bucket="squeeze")
    assert listing["KeyCount"] == 40  # boto3 decodes gzip transparently
    url = s3.generate_presigned_url("list_objects_v2", Params={"Bucket": "squeeze"})
    with httpx.stream("GET", url, headers={"accept-encoding": "gzip"}) as raw:
        assert raw.headers["content-encoding"] == "gzip"
        body = gzip.decompress(b"".join(raw.iter_raw()))
    assert b"<Key>key-039</Key>" in body
    obj_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "squeeze", "Key": "key-000"}
    )
    with httpx.stream("GET", obj_url, headers={"accept-encoding": "gzip"}) as obj:
        assert "content-encoding" not in obj.headers
        assert b"".join(obj.iter_raw()) == b"a" * 4000


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    server = start_proxy(
        tmp_path_factory.mktemp("limits"),
        "local",
        env={
            "S3PROXY_LIMITS__MAX_OBJECT_SIZE": str(4 * MiB),
            "S3PROXY_LIMITS__MAX_HEADER_BYTES": "8192",
            "S3PROXY_LIMITS__BODY_IDLE_TIMEOUT": "1",
            "S3PROXY_LIMITS__MAX_CONCURRENT_REQUESTS": "2",
        },
    )
    s3_client(server.endpoint).create_bucket(Bucket="lim")
    yield server
    stop_proxy(server)


def test_oversize_body_rejected_before_backend(limited: ProxyServer) -> None:
    resp = httpx.put(
        f"{limited.endpoint}/lim/big", content=b"x" * (4 * MiB + 1), headers={"expect": ""}
    )
    assert resp.status_code == 400
    assert "<Code>EntityTooLarge</Code>" in resp.text
    assert limited.data_dir is not None
    assert not [p for p in (limited.data_dir / "lim").rglob("*") if "big" in p.name]
    ok = httpx.put(f"{limited.endpoint}/lim/fits", content=b"x" * (4 * MiB))
    assert ok.status_code == 200


def test_header_section_too_large(limited: ProxyServer) -> None:
    resp = httpx.get(f"{limited.endpoint}/lim/k", headers={"x-amz-meta-big": "v" * 9000})
    assert resp.status_code == 400
    assert "<Code>RequestHeaderSectionTooLarge</Code>" in resp.text


def test_stalled_body_times_out(limited: ProxyServer) -> None:
    host, port = limited.endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"PUT /lim/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        response = sock.recv(65536)
    assert b" 400 " in response.split(b"\r\n", 1)[0]
    assert b"<Code>RequestTimeout</Code>" in response
    assert httpx.get(f"{limited.endpoint}/lim/stalled").status_code == 404


def test_load_shedding(limited: ProxyServer) -> None:
    host, port = limited.endpoint.removeprefix("http://").split(":")
    # Two uploads that trickle keep both slots busy.
    socks = []
    for i in range(2):
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(
            f"PUT /lim/slow{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\na".encode()
        )
        socks.append(sock)
    time.sleep(0.3)
    resp = httpx.get(f"{limited.endpoint}/lim?list-type=2")
    assert resp.status_code == 503
    assert "<Code>SlowDown</Code>" in resp.text
    assert resp.headers["retry-after"] == "1"
    for sock in socks:
        sock.close()


def test_rate_limit(tmp_path: Path) -> None:
    server = start_proxy(
        tmp_path,
        "memory",
        env={"S3PROXY_LIMITS__RATE_PER_CLIENT": "0.5", "S3PROXY_LIMITS__RATE_BURST": "3"},
    )
    try:
        statuses = [httpx.get(f"{server.endpoint}/").status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3:] == [503, 503]
        resp = httpx.get(f"{server.endpoint}/")
        assert "<Code>SlowDown</Code>" in resp.text
        assert int(resp.headers["retry-after"]) >= 1
        # Admin endpoints are not rate limited.
        assert httpx.get(f"{server.endpoint}/_s3proxy/health").status_code == 200
    finally:
        stop_proxy(server)


def test_drain_on_sigterm(tmp_path: Path) -> None:
    server = start_proxy(tmp_path, "local", env={"S3PROXY_SERVER__DRAIN_SECONDS": "2"})
    s3_client(server.endpoint).create_bucket(Bucket="drain")
    started = threading.Event()

    def slow_body() -> Iterator[bytes]:
        for i in range(25):
            if i == 1:
                started.set()
            time.sleep(0.1)
            yield b"d" * MiB

    result: dict[str, httpx.Response] = {}

    def upload() -> None:
        result["put"] = httpx.put(
            f"{server.endpoint}/drain/in-flight",
            content=slow_body(),
            headers={"content-length": str(25 * MiB)},
            timeout=60,
        )

    thread = threading.Thread(target=upload)
    thread.start()
    assert started.wait(10)
    server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while httpx.get(f"{server.endpoint}/_s3proxy/ready").status_code == 200:
        assert time.monotonic() < deadline, "readiness never turned false"
        time.sleep(0.05)
    assert httpx.get(f"{server.endpoint}/_s3proxy/ready").json()["status"] == "draining"
    refused = httpx.get(f"{server.endpoint}/drain?list-type=2")
    assert refused.status_code == 503
    assert httpx.get(f"{server.endpoint}/_s3proxy/health").status_code == 200
    thread.join(60)
    assert result["put"].status_code == 200
    assert server.process.wait(timeout=30) == 0
