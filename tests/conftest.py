"""Shared fixtures: a real s3proxy server (Granian subprocess) and boto3 clients."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config as BotoConfig

from s3proxy.testing import emulators


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ProxyServer:
    endpoint: str
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path | None
    backend: str = "local"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_proxy(
    tmp: Path, backend: str = "local", env: dict[str, str] | None = None, timeout: float = 30
) -> ProxyServer:
    """Start ``s3proxy serve`` on a free port and wait until it answers."""
    port = free_port()
    data_dir = tmp / "data" if backend == "local" else None
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("S3PROXY_")}
    full_env.update(
        {
            "S3PROXY_LOGGING__FORMAT": "json",
            "S3PROXY_LOGGING__LEVEL": "info",
        }
    )
    if data_dir is not None:
        full_env["S3PROXY_BACKENDS__LOCAL__PATH"] = str(data_dir)
    full_env.update(env or {})
    log_path = tmp / f"proxy-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "s3proxy", "serve", "--backend", backend, "--port", str(port)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"proxy exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{endpoint}/_s3proxy/health", timeout=1).status_code == 200:
                return ProxyServer(endpoint, process, log_path, data_dir, backend)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"proxy did not start:\n{log_path.read_text()}")


def stop_proxy(server: ProxyServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def s3_client(endpoint: str, **config: object) -> object:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test-access-key",
        aws_secret_access_key="test-secret-key",
        region_name="us-east-1",
        config=BotoConfig(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            **config,  # type: ignore[arg-type]
        ),
    )


#: Backend lanes: the built-in backends, then the cloud plugins against their emulators
#: (s3proxy.testing.emulators). A module runs on all of them by overriding ``proxy``
#: with ``params=ALL_LANES`` (see tests/e2e/test_boto3_core.py).
BUILTIN_LANES = ["local", "memory"]
ALL_LANES = [*BUILTIN_LANES, "aws", "azure", "gcp"]


def s3_code_of(exc: Exception) -> str:
    """The S3 error code the S3 layer answers for a storage error.

    Tests of backend errors that carry their own S3 ``code`` (obstore_errors, routing)
    xfail while the S3 layer does not map them yet, and run once it does.
    """
    from s3proxy.s3.errors import from_storage

    return from_storage(exc).code  # type: ignore[arg-type]


class Lanes:
    """One proxy per lane, started on first use and shared by the session."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.servers: dict[str, ProxyServer] = {}
        self.emulators: dict[str, emulators.Emulator] = {}

    def emulator(self, lane: str) -> emulators.Emulator:
        if lane not in self.emulators:
            self.emulators[lane] = emulators.start(lane, self.tmp.mktemp(f"emulator-{lane}"))
        return self.emulators[lane]

    def get(self, lane: str) -> ProxyServer:
        if lane not in self.servers:
            env: dict[str, str] = {}
            if lane not in BUILTIN_LANES:
                # Proxy buckets as folders of one cloud bucket: CreateBucket works.
                em = self.emulator(lane)
                cloud_bucket = emulators.new_name("e2e")
                emulators.create_bucket(em, cloud_bucket)
                settings = emulators.bucket_settings(em, cloud_bucket)
                env = em.proxy_env(**settings, layout="folders", prefix="e2e")
            self.servers[lane] = start_proxy(self.tmp.mktemp(f"proxy-{lane}"), lane, env)
        return self.servers[lane]

    def close(self) -> None:
        for server in self.servers.values():
            stop_proxy(server)
        for em in self.emulators.values():
            em.stop()


@pytest.fixture(scope="session")
def lanes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lanes]:
    started = Lanes(tmp_path_factory)
    yield started
    started.close()


@pytest.fixture(scope="session", params=BUILTIN_LANES)
def proxy(request: pytest.FixtureRequest, lanes: Lanes) -> ProxyServer:
    """A running proxy per built-in backend lane, shared by the session."""
    return lanes.get(request.param)


@pytest.fixture
def s3(proxy: ProxyServer):  # type: ignore[no-untyped-def]
    return s3_client(proxy.endpoint)


@pytest.fixture
def bucket(s3) -> str:  # type: ignore[no-untyped-def]
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def raw_request(endpoint: str, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request with the path exactly as given (HTTP clients normalise ``..``)."""
    host, port = endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), payload


_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$"
)


def metric(endpoint: str, name: str, **labels: str) -> float:
    """Sum of the samples of Prometheus metric ``name`` whose labels include ``labels``."""
    text = httpx.get(f"{endpoint}/_s3proxy/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match["value"])
    return total
