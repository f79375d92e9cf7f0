"""Faults between the proxy and its backend: moto behind a fault proxy (aws backend).

What must hold whatever the backend does: transient faults on idempotent calls are
retried and the client never notices; lasting faults become S3 XML errors (5xx with a
request id), never a partial, corrupted or mixed object; a failed overwrite leaves the
previous version whole; staged multipart parts survive a failed part or a failed
Complete and are cleaned up once the upload ends; and the proxy stays healthy.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import s3_client
from tests.reliability.fault_proxy import Fault, FaultKind
from tests.reliability.helpers import (
    BUFFER_LIMIT,
    CLOUD_PREFIX,
    MIN_PART,
    TALLY,
    FaultyAws,
    cloud_keys,
    cloud_uploads,
    new_bucket,
    proxy_log_has_no_crash,
)

MiB = 1024 * 1024
# Backend errors a client may see while the backend is failing.
BACKEND_ERRORS = {"ServiceUnavailable", "SlowDown", "InternalError"}


@pytest.fixture
def env(faulty_aws: FaultyAws) -> Iterator[FaultyAws]:
    yield faulty_aws
    faulty_aws.faults.clear()


@pytest.fixture
def s3(faulty_aws: FaultyAws) -> Any:
    return s3_client(faulty_aws.proxy.endpoint, read_timeout=120, connect_timeout=10)


@pytest.fixture
def bucket(s3: Any) -> str:
    return new_bucket(s3)


def object_path(bucket: str, key: str) -> str:
    """Regex for the backend request target of an object (not its records or parts)."""
    return rf"/{re.escape(CLOUD_PREFIX)}/{bucket}/{re.escape(key)}(\?|$)"


def assert_backend_error(exc: pytest.ExceptionInfo[ClientError]) -> None:
    resp = exc.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] in (500, 503), resp
    assert resp["Error"]["Code"] in BACKEND_ERRORS, resp
    assert resp["ResponseMetadata"]["RequestId"], resp


def read(s3: Any, bucket: str, key: str) -> tuple[bytes, str]:
    got = s3.get_object(Bucket=bucket, Key=key)
    return got["Body"].read(), got["ETag"]


def wait_ready(env: FaultyAws) -> None:
    """Readiness turns 200 again once its cached probe expires (a safety net, not a bound)."""
    deadline = time.monotonic() + 60
    status = 0
    while time.monotonic() < deadline:
        status = httpx.get(f"{env.proxy.endpoint}/_s3proxy/ready", timeout=60).status_code
        if status == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"/_s3proxy/ready still answers {status}")


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


# -- transient faults are retried ----------------------------------------------------------


TRANSIENT: list[tuple[FaultKind, dict[str, Any]]] = [
    ("status", {"status": 503}),
    ("status", {"status": 500}),
    ("reset_request", {}),
    ("reset_response", {}),
    ("delay", {"seconds": 0.5}),
]


@pytest.mark.parametrize(("kind", "extra"), TRANSIENT, ids=lambda v: str(v))
@pytest.mark.parametrize("op", ["PUT", "GET", "HEAD", "LIST", "DELETE"])
def test_transient_fault_is_invisible(
    env: FaultyAws, s3: Any, bucket: str, op: str, kind: FaultKind, extra: dict[str, Any]
) -> None:
    key = f"obj-{uuid.uuid4().hex[:8]}"
    data = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    method, path = {
        "PUT": ("PUT", object_path(bucket, key)),
        "GET": ("GET", object_path(bucket, key)),
        "HEAD": ("HEAD", object_path(bucket, key)),
        "LIST": ("GET", rf"list-type=2.*{bucket}"),
        # obstore deletes through S3's DeleteObjects (POST ?delete).
        "DELETE": ("POST", r"\?delete$"),
    }[op]
    with env.faults.fault(Fault(kind, method=method, path=path, times=1, **extra)) as fault:
        if op == "PUT":
            data = os.urandom(120_000)
            assert s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"] == md5_etag(data)
        elif op == "GET":
            assert read(s3, bucket, key) == (data, md5_etag(data))
        elif op == "HEAD":
            assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(data)
        elif op == "LIST":
            listed = s3.list_objects_v2(Bucket=bucket)
            assert [o["Key"] for o in listed["Contents"]] == [key]
        else:
            s3.delete_object(Bucket=bucket, Key=key)
    assert fault.fired == 1
    # A HEAD answer is all headers: a reset after them (before a body) loses nothing.
    if kind != "delay" and not (op == "HEAD" and kind == "reset_response"):
        # The failed attempt was retried: the backend saw the same request again.
        assert len(env.faults.seen(method, path)) >= 2
    if op == "DELETE":
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    else:
        assert read(s3, bucket, key) == (data, md5_etag(data))


def test_ambiguous_write_is_retried_to_a_consistent_object(
    env: FaultyAws, s3: Any, bucket: str
) -> None:
    # The backend applies the PUT but the answer is lost (500): the retry rewrites it.
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    fault = env.faults.add(Fault("status_after", method="PUT", path=object_path(bucket, "k")))
    new = os.urandom(50_000)
    assert s3.put_object(Bucket=bucket, Key="k", Body=new)["ETag"] == md5_etag(new)
    assert fault.fired == 1
    assert read(s3, bucket, "k") == (new, md5_etag(new))
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["ETag"] == md5_etag(new)


# -- lasting faults: S3 errors, previous version intact --------------------------------------


LASTING: list[tuple[FaultKind, dict[str, Any]]] = [
    ("status", {"status": 500}),
    ("status", {"status": 503}),
    ("reset_request", {"after_bytes": 30_000}),
    ("status_after", {"status": 500}),
    ("stall", {}),
]


# Bodies that go up in one PUT, and bodies streamed into a native multipart upload; one
# stall case only, as each costs the backend timeouts and retries.
OVERWRITES = [
    pytest.param(kind, extra, size, id=f"{kind}-{extra.get('status', '')}-{label}")
    for kind, extra in LASTING
    for size, label in ((200_000, "buffered"), (BUFFER_LIMIT * 10, "streamed"))
    if not (kind == "stall" and label == "streamed")
]


@pytest.mark.parametrize(("kind", "extra", "size"), OVERWRITES)
def test_failed_overwrite_keeps_previous_version(
    env: FaultyAws, s3: Any, bucket: str, kind: FaultKind, extra: dict[str, Any], size: int
) -> None:
    old = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="doc", Body=old, Metadata={"v": "1"})
    new = os.urandom(size)
    # Every write of the object's bytes fails: the single PUT, or each part of the
    # native multipart upload a streamed body goes into.
    path = object_path(bucket, "doc")
    fault = env.faults.add(Fault(kind, method="PUT", path=path, times=-1, **extra))
    if kind == "status_after":
        # The object PUT lands but the answer is lost, again and again: the write may
        # have happened, so only a whole version (old or new) may ever be visible.
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="doc", Body=new, Metadata={"v": "2"})
        assert_backend_error(exc)
        env.faults.clear()
        body, etag = read(s3, bucket, "doc")
        assert (body, etag) in ((old, md5_etag(old)), (new, md5_etag(new)))
        return
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="doc", Body=new, Metadata={"v": "2"})
    assert_backend_error(exc)
    assert fault.fired >= 1
    env.faults.clear()
    got = s3.get_object(Bucket=bucket, Key="doc")
    assert got["Body"].read() == old
    assert got["ETag"] == md5_etag(old)
    assert got["Metadata"] == {"v": "1"}
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [("doc", len(old), md5_etag(old))]


def test_failed_new_object_is_not_visible(env: FaultyAws, s3: Any, bucket: str) -> None:
    data = os.urandom(BUFFER_LIMIT * 10)
    # The second part of the native multipart upload is cut, every time.
    path = object_path(bucket, "fresh") + r".*partNumber=2"
    fault = env.faults.add(
        Fault("reset_request", method="PUT", path=path, times=-1, after_bytes=MiB)
    )
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="fresh", Body=data)
    assert_backend_error(exc)
    assert fault.fired >= 1
    env.faults.clear()
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="fresh")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    object_name = f"{CLOUD_PREFIX}/{bucket}/fresh"
    assert object_name not in cloud_keys(env.moto, env.cloud_bucket, f"{CLOUD_PREFIX}/{bucket}/")


def test_failed_streamed_put_leaves_no_native_upload(env: FaultyAws, s3: Any, bucket: str) -> None:
    # A streamed body goes into a native multipart upload: a failure must abort it.
    data = os.urandom(BUFFER_LIMIT * 10)
    path = object_path(bucket, "leak") + r".*partNumber=2"
    env.faults.add(Fault("status", method="PUT", path=path, times=-1, status=500))
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="leak", Body=data)
    assert_backend_error(exc)
    env.faults.clear()
    assert env.faults.seen("POST", r"/leak\?uploads")  # it was a native upload
    leftover = [k for k in cloud_uploads(env.moto, env.cloud_bucket) if f"/{bucket}/" in k]
    assert leftover == []


# -- downloads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "after"),
    [(1, 512 * 1024), (-1, 512 * 1024), (-1, 0)],
    ids=["once", "always-after-some-bytes", "always-before-any-byte"],
)
def test_reset_mid_download_is_never_a_silent_short_read(
    env: FaultyAws, s3: Any, bucket: str, times: int, after: int
) -> None:
    data = os.urandom(3 * MiB)
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    # The first backend read (attributes + first bytes) passes; the body read is cut.
    fault = env.faults.add(
        Fault(
            "reset_response",
            method="GET",
            path=object_path(bucket, "big"),
            skip=1,
            times=times,
            after_bytes=after,
        )
    )
    received = bytearray()
    failed = False
    try:
        with httpx.stream("GET", f"{env.proxy.endpoint}/{bucket}/big", timeout=60) as resp:
            assert resp.status_code in (200, 503), resp.status_code
            if resp.status_code == 503:
                resp.read()
                assert b"<Code>ServiceUnavailable</Code>" in resp.content
                failed = True
            else:
                assert int(resp.headers["content-length"]) == len(data)
                for chunk in resp.iter_bytes():
                    received += chunk
    except httpx.HTTPError:
        failed = True  # the connection was cut: the client knows the body is incomplete
    assert fault.fired >= 1
    if not failed:
        # Whatever was retried underneath, a 200 must carry exactly the object.
        assert bytes(received) == data
    else:
        assert times == -1 and len(received) < len(data)
        assert data.startswith(bytes(received))
    if after == 0:
        # Nothing ever came from the backend: an S3 error, not a started 200 (nor the
        # ASGI server's bare 500 for a response that failed before its first byte).
        assert failed and not received
    env.faults.clear()
    assert read(s3, bucket, "big") == (data, md5_etag(data))


# -- staged multipart uploads ------------------------------------------------------------------


def part_path(upload_id: str, number: int) -> str:
    return rf"mpu/p/{upload_id}/{number:05d}"


def staged(env: FaultyAws, bucket: str, upload_id: str) -> list[str]:
    return [
        k
        for k in cloud_keys(env.moto, env.cloud_bucket, f"{CLOUD_PREFIX}/{bucket}/")
        if upload_id in k
    ]


def test_failed_part_is_recoverable(env: FaultyAws, s3: Any, bucket: str) -> None:
    parts = [os.urandom(MIN_PART), os.urandom(MIN_PART + 7), b"tail"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etags = {1: s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1,
                               Body=parts[0])["ETag"]}  # fmt: skip
    fault = env.faults.add(
        Fault("status", method="PUT", path=part_path(upload_id, 2), times=-1, status=500)
    )
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=2, Body=parts[1])
    assert_backend_error(exc)
    assert fault.fired >= 1
    env.faults.clear()
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in listed] == [(1, etags[1])]
    for number in (2, 3):
        etags[number] = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=parts[number - 1]
        )["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in etags.items()]},
    )
    assert done["ETag"].endswith('-3"')
    assert read(s3, bucket, "mp")[0] == b"".join(parts)
    assert staged(env, bucket, upload_id) == []


def test_failed_complete_is_recoverable(env: FaultyAws, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="mp", Body=b"previous")
    parts = [os.urandom(MIN_PART), os.urandom(100)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    spec = []
    for number, body in enumerate(parts, start=1):
        etag = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=body
        )["ETag"]
        spec.append({"PartNumber": number, "ETag": etag})
    # The assembled object cannot be written: Complete fails, and nothing changes.
    fault = env.faults.add(Fault("reset_request", method="PUT", path=object_path(bucket, "mp"),
                                 times=-1, after_bytes=1000))  # fmt: skip
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": spec}
        )
    assert_backend_error(exc)
    assert fault.fired >= 1
    env.faults.clear()
    assert read(s3, bucket, "mp")[0] == b"previous"
    assert len(staged(env, bucket, upload_id)) >= len(parts)  # the parts are still there
    # The same Complete, once the backend is back, finishes the upload.
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": spec}
    )
    assert read(s3, bucket, "mp")[0] == b"".join(parts)
    assert staged(env, bucket, upload_id) == []


def test_abort_after_failures_removes_staged_parts(env: FaultyAws, s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    s3.upload_part(
        Bucket=bucket, Key="gone", UploadId=upload_id, PartNumber=1, Body=os.urandom(MIN_PART)
    )
    with (
        env.faults.fault(
            Fault("reset_request", method="PUT", path=part_path(upload_id, 2), times=-1)
        ),
        pytest.raises(ClientError),
    ):
        s3.upload_part(
            Bucket=bucket, Key="gone", UploadId=upload_id, PartNumber=2, Body=b"x" * MIN_PART
        )
    # The first abort fails on its deletes (DeleteObjects); the retried abort completes.
    deletes = Fault("status", method="POST", path=r"\?delete$", times=-1, status=500)
    with env.faults.fault(deletes):
        with pytest.raises(ClientError) as exc:
            s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=upload_id)
        assert_backend_error(exc)
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=upload_id)
    assert staged(env, bucket, upload_id) == []
    with pytest.raises(ClientError) as missing:
        s3.list_parts(Bucket=bucket, Key="gone", UploadId=upload_id)
    assert missing.value.response["Error"]["Code"] == "NoSuchUpload"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


# -- afterwards ----------------------------------------------------------------------------


def test_backend_outage_then_recovery(env: FaultyAws, s3: Any, bucket: str) -> None:
    """Every backend call fails for a while; readiness says so; then all is well."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"before")
    with env.faults.fault(Fault("status", times=-1, status=503)) as fault:
        for call in (
            lambda: s3.get_object(Bucket=bucket, Key="k"),
            lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"during"),
            lambda: s3.list_objects_v2(Bucket=bucket),
            lambda: s3.delete_object(Bucket=bucket, Key="k"),
        ):
            with pytest.raises(ClientError) as exc:
                call()
            assert_backend_error(exc)
        ready = httpx.get(f"{env.proxy.endpoint}/_s3proxy/ready", timeout=60)
        assert ready.status_code == 503
    assert fault.fired >= 4
    wait_ready(env)
    assert read(s3, bucket, "k")[0] == b"before"


def test_proxy_is_healthy_after_all_faults(env: FaultyAws, s3: Any) -> None:
    # Runs last in the module: whatever was injected before, the proxy still serves.
    assert httpx.get(f"{env.proxy.endpoint}/_s3proxy/health").status_code == 200
    wait_ready(env)
    bucket = new_bucket(s3)
    data = os.urandom(2 * BUFFER_LIMIT)
    s3.put_object(Bucket=bucket, Key="after", Body=data)
    assert read(s3, bucket, "after") == (data, md5_etag(data))
    proxy_log_has_no_crash(env.proxy)
    # Nothing the proxy wrote landed outside its prefix in the cloud bucket.
    everything = cloud_keys(env.moto, env.cloud_bucket)
    assert everything and all(k.startswith(CLOUD_PREFIX + "/") for k in everything)
    assert env.faults.injected > 0
    TALLY.notes.append(f"backend faults: {env.faults.injected} injected on moto's path")
