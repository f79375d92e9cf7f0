"""Helpers of the reliability suites: what they count, and ways to look at the backend.

``TALLY`` adds up what the suites did (faults injected, fuzz cases, 5xx, objects lost);
the suites' conftest prints it at the end of the run.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psutil

from s3proxy.testing import emulators
from tests.conftest import ProxyServer
from tests.reliability.fault_proxy import FaultProxy

#: Prefix of the proxy's area inside the moto bucket: nothing may land outside it.
CLOUD_PREFIX = "tenant/rel"
#: Parts other than the last must be at least this big on these proxies.
MIN_PART = 64 * 1024
#: Bodies above this stream into a native multipart upload on the aws backend.
BUFFER_LIMIT = 1024 * 1024


@dataclass
class Tally:
    """What the reliability suites did, for the summary at the end of the run."""

    faults: int = 0
    fuzz_cases: int = 0
    server_errors: int = 0
    objects_lost: int = 0
    notes: list[str] = field(default_factory=list)


TALLY = Tally()


@dataclass
class FaultyAws:
    """An s3proxy on the aws backend, reaching moto through a fault proxy."""

    proxy: ProxyServer
    faults: FaultProxy
    moto: emulators.Emulator
    cloud_bucket: str


def aws_env(em: emulators.Emulator, endpoint: str, cloud_bucket: str) -> dict[str, str]:
    env = em.proxy_env(
        **{**em.settings, "endpoint": endpoint, "bucket": cloud_bucket},
        layout="folders",
        prefix=CLOUD_PREFIX,
        connect_timeout=2,
        request_timeout=2,
        read_timeout=2,
        max_retries=2,
        retry_timeout=8,
        buffer_limit=BUFFER_LIMIT,
    )
    env["S3PROXY_MULTIPART__MIN_PART_SIZE"] = str(MIN_PART)
    # Complete answers within this many seconds, or switches to 200 + whitespace.
    env["S3PROXY_MULTIPART__KEEPALIVE"] = "30"
    return env


def moto_client(em: emulators.Emulator) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=em.endpoint,
        aws_access_key_id="moto",
        aws_secret_access_key="moto",
        region_name="us-east-1",
    )


def cloud_keys(em: emulators.Emulator, cloud_bucket: str, prefix: str = "") -> list[str]:
    """Every object name in the moto bucket (under ``prefix``)."""
    client = moto_client(em)
    names: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=cloud_bucket, Prefix=prefix
    ):
        names.extend(o["Key"] for o in page.get("Contents", []))
    return names


def cloud_uploads(em: emulators.Emulator, cloud_bucket: str) -> list[str]:
    """Unfinished native multipart uploads in the moto bucket."""
    resp = moto_client(em).list_multipart_uploads(Bucket=cloud_bucket)
    return [u["Key"] for u in resp.get("Uploads", [])]


def new_bucket(s3: Any, prefix: str = "rel") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def proxy_processes(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def tree_rss(pid: int) -> int:
    total = 0
    for proc in proxy_processes(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def tree_fds(pid: int) -> int:
    total = 0
    for proc in proxy_processes(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.num_fds()
    return total


def tree_threads(pid: int) -> int:
    total = 0
    for proc in proxy_processes(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.num_threads()
    return total


def proxy_log_has_no_crash(server: ProxyServer) -> None:
    """No unhandled exception reached the S3 layer, and the server still answers."""
    text = server.log()
    assert "unhandled error" not in text, text[-4000:]
    assert server.process.poll() is None


def local_tmp(server: ProxyServer) -> Path:
    assert server.data_dir is not None
    return server.data_dir
