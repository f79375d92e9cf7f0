"""GCS behaviour the gcp backend handles: transcoding, metadata limits, error mapping."""

from __future__ import annotations

import gzip
import hashlib
import json
import urllib.request
from typing import Any

import pytest
from s3proxy_gcp.plugin import GcpSettings, make_gcp

from s3proxy.storage.native import NativeObstoreBackend
from s3proxy.storage.obstore_errors import (
    BackendAccessDenied,
    BackendThrottled,
    BackendTimeout,
    forget_logged,
)
from s3proxy.testing import emulators
from s3proxy.testing.backend_contract import make_body, read, read_key


@pytest.fixture
async def gcs(fake_gcs: emulators.Emulator) -> Any:
    name = emulators.new_name("q")
    emulators.create_bucket(fake_gcs, name)
    settings = {**emulators.bucket_settings(fake_gcs, name), "max_retries": 0}
    backend = make_gcp(GcpSettings(**settings))  # type: ignore[arg-type]
    await backend.start()
    yield backend, name
    await backend.close()


def inject(fake_gcs: emulators.Emulator, **fault: object) -> None:
    request = urllib.request.Request(
        f"{fake_gcs.endpoint}/_fake/faults", data=json.dumps(fault).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


async def test_gzip_objects_are_served_as_stored(gcs: tuple[NativeObstoreBackend, str]) -> None:
    backend, bucket = gcs
    compressed = gzip.compress(b"hello " * 1000)
    await backend.put(bucket, "page.html.gz", make_body(compressed, content_encoding="gzip"))
    got = await backend.get(bucket, "page.html.gz", lambda info: (0, info.size))
    assert got.info.size == len(compressed)
    assert got.info.metadata.content_encoding == "gzip"
    assert await read(got) == compressed  # not transcoded: size, ETag and ranges agree
    assert got.info.etag == f'"{hashlib.md5(compressed).hexdigest()}"'
    ranged = await backend.get(bucket, "page.html.gz", lambda info: (10, 20))
    assert await read(ranged) == compressed[10:20]


async def test_metadata_over_the_budget_goes_to_a_record(
    gcs: tuple[NativeObstoreBackend, str],
) -> None:
    backend, bucket = gcs
    body = make_body(b"x", user_metadata={f"k{i}": "v" * 1000 for i in range(12)})
    await backend.put(bucket, "heavy", body)
    assert (await backend.head(bucket, "heavy")).metadata == body.finish()


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (503, "SlowDown", BackendThrottled),
        (429, "rateLimitExceeded", BackendThrottled),
        (403, "AccessDenied", BackendAccessDenied),
        (401, "AuthenticationRequired", BackendAccessDenied),
    ],
)
async def test_backend_errors_are_classified(
    gcs: tuple[NativeObstoreBackend, str],
    fake_gcs: emulators.Emulator,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: str,
    error: type[Exception],
) -> None:
    backend, bucket = gcs
    await backend.put(bucket, "k", make_body(b"data"))
    forget_logged()
    inject(fake_gcs, status=status, code=code, count=1)
    with pytest.raises(error):
        await backend.head(bucket, "k")
    assert "backend gcp" in caplog.text
    if error is BackendAccessDenied:
        assert "static bearer token (development / emulator)" in caplog.text
    assert await read_key(backend, bucket, "k") == b"data"  # the next request is fine


async def test_timeout(fake_gcs: emulators.Emulator) -> None:
    name = emulators.new_name("q")
    emulators.create_bucket(fake_gcs, name)
    settings = {**emulators.bucket_settings(fake_gcs, name), "max_retries": 0}
    backend = make_gcp(GcpSettings(**settings, request_timeout=0.2))  # type: ignore[arg-type]
    await backend.start()
    inject(fake_gcs, delay=2, count=1)
    with pytest.raises(BackendTimeout):
        await backend.head(name, "k")
