"""A real redis-server on a free loopback port, and helpers to run the proxy with the cache.

redis-server missing skips these tests, unless ``S3PROXY_REQUIRE_EMULATORS=1`` (set by
``.ci/run``) makes that a failure, as for the cloud emulators.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3proxy_cache.settings import CacheSettings

from s3proxy.testing import emulators
from tests.conftest import ProxyServer, start_proxy

START_TIMEOUT = 20.0


class RedisServer:
    """One redis-server process; ``kill`` and ``start`` again keep the port."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
        if exe is None:
            if emulators.required():
                raise RuntimeError("redis-server not found (apt-get install redis-server)")
            pytest.skip("redis-server not installed")
        self.exe = exe
        self.workdir = workdir
        self.port = emulators.free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited early (port {self.port})")
            if self.answers():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("redis-server did not start")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Shared by the session: tests isolate themselves with their own key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, for tests that kill it."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def cache_settings(redis: RedisServer, **overrides: object) -> CacheSettings:
    values: dict[str, object] = {"url": redis.url, "key_prefix": f"t-{uuid.uuid4().hex[:8]}"}
    return CacheSettings(**{**values, **overrides})  # type: ignore[arg-type]


def cache_env(redis: RedisServer, **overrides: str) -> dict[str, str]:
    env = {"S3PROXY_CACHE_URL": redis.url, "S3PROXY_CACHE_KEY_PREFIX": uuid.uuid4().hex[:8]}
    env.update({f"S3PROXY_CACHE_{k.upper()}": v for k, v in overrides.items()})
    return env


def start_cached_proxy(tmp: Path, redis: RedisServer, **overrides: str) -> ProxyServer:
    return start_proxy(tmp, "local", env=cache_env(redis, **overrides))
