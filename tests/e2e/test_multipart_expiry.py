"""Abandoned multipart uploads expire: the proxy's background sweep and ``s3proxy gc``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.conftest import ProxyServer, s3_client, start_proxy, stop_proxy

ROOT = Path(__file__).resolve().parents[2]


def _staged(server: ProxyServer, bucket: str) -> list[Path]:
    assert server.data_dir is not None
    root = server.data_dir / bucket
    return [p for p in root.rglob("*") if p.is_file() and "mpu" in str(p.relative_to(root))]


def _abandon(server: ProxyServer) -> str:
    s3 = s3_client(server.endpoint)
    bucket = f"exp-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for number in (1, 2):
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=number, Body=b"x")
    s3.put_object(Bucket=bucket, Key="kept", Body=b"kept")
    assert len(_staged(server, bucket)) == 3
    return bucket


def test_background_sweep_removes_expired_uploads(tmp_path: Path) -> None:
    server = start_proxy(
        tmp_path,
        "local",
        env={"S3PROXY_MULTIPART__EXPIRY": "1", "S3PROXY_MULTIPART__SWEEP_INTERVAL": "0.5"},
    )
    try:
        bucket = _abandon(server)
        s3 = s3_client(server.endpoint)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _staged(server, bucket):
            time.sleep(0.2)
        assert _staged(server, bucket) == []
        assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
        assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"kept"
    finally:
        stop_proxy(server)


def test_gc_command(tmp_path: Path) -> None:
    server = start_proxy(tmp_path, "local", env={"S3PROXY_MULTIPART__SWEEP_INTERVAL": "0"})
    try:
        bucket = _abandon(server)
        env = {k: v for k, v in os.environ.items() if not k.startswith("S3PROXY_")}
        env.update({"PYTHONPATH": str(ROOT), "S3PROXY_BACKENDS__LOCAL__PATH": str(server.data_dir)})

        def gc(*args: str) -> str:
            result = subprocess.run(
                [sys.executable, "-m", "s3proxy", "gc", "--backend", "local", *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        # Within the default expiry (7 days) nothing is touched.
        assert "removed 0 expired multipart uploads, 0 staged parts" in gc()
        assert len(_staged(server, bucket)) == 3
        assert "removed 1 expired multipart uploads, 2 staged parts" in gc("--older-than", "0")
        assert _staged(server, bucket) == []
        s3 = s3_client(server.endpoint)
        assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
        assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"kept"
    finally:
        stop_proxy(server)
