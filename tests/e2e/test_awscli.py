"""The AWS CLI against a running proxy: the commands a new user tries first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import ProxyServer

AWS = shutil.which("aws") or str(Path(sys.executable).with_name("aws"))


@pytest.fixture
def aws(proxy: ProxyServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    config = tmp_path / "aws-config"
    # Single PUTs here; tests/e2e/test_multipart.py drives the CLI's multipart uploads.
    config.write_text("[default]\nregion = us-east-1\ns3 =\n    multipart_threshold = 1GB\n")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test-access-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key",
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }

    def run(*args: str) -> str:
        result = subprocess.run(
            [AWS, "--endpoint-url", proxy.endpoint, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    return run


def test_aws_s3_cp_ls_sync_rm(aws, tmp_path: Path) -> None:
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    aws("s3", "mb", f"s3://{bucket}")
    assert bucket in aws("s3", "ls")

    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    big = os.urandom(20 * 1024 * 1024)
    (src / "big.bin").write_bytes(big)
    (src / "nested" / "hello world.txt").write_text("hello")
    aws("s3", "cp", str(src / "big.bin"), f"s3://{bucket}/big.bin")
    aws("s3", "sync", str(src / "nested"), f"s3://{bucket}/nested/")

    listing = aws("s3", "ls", "--recursive", f"s3://{bucket}")
    assert "big.bin" in listing and "nested/hello world.txt" in listing
    top = aws("s3", "ls", f"s3://{bucket}/")
    assert "PRE nested/" in top

    down = tmp_path / "down.bin"
    aws("s3", "cp", f"s3://{bucket}/big.bin", str(down))
    assert down.read_bytes() == big

    head = aws("s3api", "head-object", "--bucket", bucket, "--key", "nested/hello world.txt")
    assert '"ContentLength": 5' in head

    aws("s3", "rm", "--recursive", f"s3://{bucket}")
    aws("s3", "rb", f"s3://{bucket}")
    assert bucket not in aws("s3", "ls")
