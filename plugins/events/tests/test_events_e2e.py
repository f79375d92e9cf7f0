"""The events plugin in a running proxy, delivering to a loopback receiver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugins.events.tests.conftest import Received, Receiver, wait_until
from s3proxy.testing.emulators import free_port
from tests.conftest import ProxyServer, metric, s3_client, start_proxy, stop_proxy

DELIVERED = "s3proxy_events_delivered_total"
FAILED = "s3proxy_events_failed_total"
RETRIES = "s3proxy_events_retries_total"
DROPPED = "s3proxy_events_dropped_total"


@pytest.fixture(scope="module")
def hook() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def proxy(hook: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    env = {
        "S3PROXY_EVENTS_WEBHOOKS": f"{hook.url('/s3')} name=receiver",
        "S3PROXY_EVENTS_BACKOFF": "0.05",
        "S3PROXY_EVENTS_MAX_ATTEMPTS": "4",
    }
    server = start_proxy(tmp_path_factory.mktemp("events"), "local", env=env)
    yield server
    stop_proxy(server)


@pytest.fixture
def s3(proxy: ProxyServer) -> Any:
    return s3_client(proxy.endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"events-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def records_of(hook: Receiver, bucket: str, count: int) -> list[Any]:
    """The first ``count`` records about ``bucket``, waiting for them to arrive."""
    found: list[Received] = []

    def enough() -> bool:
        found[:] = [r for r in hook.received if r.record["s3"]["bucket"]["name"] == bucket]
        return len(found) >= count

    wait_until(enough)
    return [r.record for r in found[:count]]


def test_events_arrive_in_s3_shape(hook: Receiver, s3: Any, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="dir/a b.txt", Body=b"hello")
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "dir/a b.txt"})
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=upload, PartNumber=1, Body=b"p")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mpu",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    s3.delete_object(Bucket=bucket, Key="copy")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "mpu"}, {"Key": "dir/a b.txt"}]})
    records = records_of(hook, bucket, 6)
    seen = [(r["eventName"], r["s3"]["object"]["key"]) for r in records]
    assert seen[:4] == [
        ("ObjectCreated:Put", "dir/a+b.txt"),
        ("ObjectCreated:Copy", "copy"),
        ("ObjectCreated:CompleteMultipartUpload", "mpu"),
        ("ObjectRemoved:Delete", "copy"),
    ]
    # DeleteObjects deletes its keys concurrently: their events come in either order.
    assert sorted(seen[4:]) == [
        ("ObjectRemoved:Delete", "dir/a+b.txt"),
        ("ObjectRemoved:Delete", "mpu"),
    ]
    first = records[0]
    assert first["eventVersion"] == "2.1"
    assert first["eventSource"] == "aws:s3"
    assert first["awsRegion"] == "us-east-1"
    assert first["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
    assert first["s3"]["object"]["size"] == 5
    assert f'"{first["s3"]["object"]["eTag"]}"' == put["ETag"]
    assert first["responseElements"]["x-amz-request-id"] == put["ResponseMetadata"]["RequestId"]
    assert records[2]["s3"]["object"]["eTag"].endswith("-1")
    sequencers = [r["s3"]["object"]["sequencer"] for r in records[:4]]
    assert sequencers == sorted(sequencers)
    requests = [r for r in hook.received if r.record["s3"]["bucket"]["name"] == bucket]
    assert all(r.path == "/s3" for r in requests)
    assert all(r.headers["content-type"] == "application/json" for r in requests)


def test_retried_then_delivered_once(
    hook: Receiver, proxy: ProxyServer, s3: Any, bucket: str
) -> None:
    delivered = metric(proxy.endpoint, DELIVERED, webhook="receiver")
    retries = metric(proxy.endpoint, RETRIES, webhook="receiver")
    hook.respond_with(500, 500)
    s3.put_object(Bucket=bucket, Key="retried", Body=b"x")
    attempts = [r.body for r in hook.wait_for(len(hook.received) + 3)[-3:]]
    assert len(set(attempts)) == 1  # the same notification, three times
    wait_until(lambda: metric(proxy.endpoint, DELIVERED, webhook="receiver") == delivered + 1)
    assert metric(proxy.endpoint, RETRIES, webhook="receiver") == retries + 2
    assert metric(proxy.endpoint, FAILED) == 0
    records = records_of(hook, bucket, 3)
    assert [r["s3"]["object"]["key"] for r in records] == ["retried"] * 3


def test_receiver_down_leaves_the_proxy_serving(tmp_path: Path) -> None:
    env = {
        "S3PROXY_EVENTS_WEBHOOKS": f"http://127.0.0.1:{free_port()}/gone",
        "S3PROXY_EVENTS_BACKOFF": "0.01",
        "S3PROXY_EVENTS_MAX_ATTEMPTS": "3",
        "S3PROXY_EVENTS_TIMEOUT": "2",
    }
    server = start_proxy(tmp_path, "local", env=env)
    try:
        s3 = s3_client(server.endpoint)
        s3.create_bucket(Bucket="nobody-listens")
        for i in range(5):
            s3.put_object(Bucket="nobody-listens", Key=f"k{i}", Body=b"x")
        assert s3.get_object(Bucket="nobody-listens", Key="k4")["Body"].read() == b"x"
        wait_until(lambda: metric(server.endpoint, FAILED) == 5)
        assert metric(server.endpoint, RETRIES) == 10  # 3 attempts each
        assert metric(server.endpoint, DELIVERED) == 0
        assert metric(server.endpoint, DROPPED) == 0
        assert server.log().count("gave up on") == 1
    finally:
        stop_proxy(server)
