"""Cloud emulators for tests: moto (S3), Azurite (Azure Blob), the repo's fake GCS.

Each starts on a free loopback port as a child process that dies with the test run
(the fixture stops it; on Linux the kernel also signals it if the test process dies
first), and describes how to reach it: obstore-free settings for the backends, and the
``S3PROXY_*`` environment that makes a proxy use it.

An emulator that is not installed skips the tests that need it, unless
``S3PROXY_REQUIRE_EMULATORS=1`` (set by ``.ci/run``) turns that into a failure.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AZURITE_DIR = REPO / "plugins" / "azure" / "tests" / "azurite"
FAKE_GCS = REPO / "plugins" / "gcp" / "tests" / "fake_gcs.py"
#: Azurite's documented, public development account (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
START_TIMEOUT = 60.0


class EmulatorMissing(Exception):
    """The emulator is not installed here."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Emulator:
    """A running emulator process."""

    name: str
    endpoint: str
    process: subprocess.Popen[bytes]
    log_path: Path
    #: ``backend settings`` to reach it, as in ``[backends.<backend>]``.
    settings: dict[str, object] = field(default_factory=dict)
    backend: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def proxy_env(self, **extra: object) -> dict[str, str]:
        """S3PROXY_* variables selecting this emulator as the default backend."""
        env = {"S3PROXY_BACKEND": self.backend}
        for key, value in {**self.settings, **extra}.items():
            name = f"S3PROXY_BACKENDS__{self.backend.upper()}__{key.upper()}"
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _start(
    name: str, argv: list[str], port: int, log_dir: Path, ready: Callable[[], bool]
) -> Emulator:
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=log_dir,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
    emulator = Emulator(name, f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{emulator.log()}")
        with contextlib.suppress(OSError):
            if ready():
                return emulator
        time.sleep(0.1)
    emulator.stop()
    raise RuntimeError(f"{name} did not start in {START_TIMEOUT:.0f}s:\n{emulator.log()}")


def _answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer means it is listening
        except (urllib.error.URLError, OSError):
            return False

    return check


def start_moto(log_dir: Path) -> Emulator:
    """moto's S3 server (PyPI ``moto[server]``); any access key is accepted."""
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which(
        "moto_server"
    )
    if exe is None:
        raise EmulatorMissing("moto_server not found (install moto[server])")
    port = free_port()
    em = _start(
        "moto",
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        port,
        log_dir,
        _answers(f"http://127.0.0.1:{port}/moto-api/"),
    )
    em.backend = "aws"
    em.settings = {
        "endpoint": em.endpoint,
        "allow_http": True,
        "region": "us-east-1",
        "access_key_id": "moto",
        "secret_access_key": "moto",
    }
    return em


def azurite_executable() -> str | None:
    local = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    return shutil.which("azurite-blob")


def start_azurite(log_dir: Path) -> Emulator:
    """Azurite's blob service, in memory, on loopback (npm ``azurite``)."""
    exe = azurite_executable()
    if exe is None:
        raise EmulatorMissing(f"azurite not installed (npm ci in {AZURITE_DIR})")
    port = free_port()
    argv = [
        exe,
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        "--inMemoryPersistence",
        "--silent",
    ]
    em = _start("azurite", argv, port, log_dir, _answers(f"http://127.0.0.1:{port}/"))
    em.endpoint = f"{em.endpoint}/{AZURITE_ACCOUNT}"
    em.backend = "azure"
    em.settings = {
        "account": AZURITE_ACCOUNT,
        "account_key": AZURITE_KEY,
        "endpoint": em.endpoint,
        "allow_http": True,
    }
    return em


def start_fake_gcs(log_dir: Path) -> Emulator:
    """The repo's fake GCS server (``plugins/gcp/tests/fake_gcs.py``, stdlib only)."""
    if not FAKE_GCS.exists():
        raise EmulatorMissing(f"{FAKE_GCS} not found (needs a source checkout)")
    port = free_port()
    argv = [sys.executable, str(FAKE_GCS), "--port", str(port)]
    em = _start("fake-gcs", argv, port, log_dir, _answers(f"http://127.0.0.1:{port}/_fake/health"))
    em.backend = "gcp"
    em.settings = {"endpoint": em.endpoint, "allow_http": True, "bearer_token": "fake-gcs-token"}
    return em


STARTERS: dict[str, Callable[[Path], Emulator]] = {
    "aws": start_moto,
    "azure": start_azurite,
    "gcp": start_fake_gcs,
}


def required() -> bool:
    return os.environ.get("S3PROXY_REQUIRE_EMULATORS", "") not in ("", "0")


def start(backend: str, log_dir: Path) -> Emulator:
    """Start the emulator for ``backend``; skip the test if it is missing (see module doc)."""
    import pytest

    try:
        return STARTERS[backend](log_dir)
    except EmulatorMissing as exc:
        if required():
            raise
        pytest.skip(f"{backend} emulator unavailable: {exc}")


@contextlib.contextmanager
def running(backend: str, log_dir: Path) -> Iterator[Emulator]:
    emulator = start(backend, log_dir)
    try:
        yield emulator
    finally:
        emulator.stop()


def new_name(prefix: str = "s3p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _azure_request(em: Emulator, method: str, container: str, query: dict[str, str]) -> int:
    """One Shared Key signed request to Azurite (obstore cannot manage containers)."""
    date = formatdate(usegmt=True)
    headers = {"x-ms-date": date, "x-ms-version": "2021-08-06"}
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
    resource = f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}"
    resource += "".join(f"\n{k}:{v}" for k, v in sorted(query.items()))
    to_sign = "\n".join([method, *[""] * 11]) + "\n" + canonical_headers + resource
    key = base64.b64decode(AZURITE_KEY)
    signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest())
    headers["Authorization"] = f"SharedKey {AZURITE_ACCOUNT}:{signature.decode()}"
    url = f"{em.endpoint}/{container}?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def create_bucket(em: Emulator, name: str) -> None:
    """Create a bucket/container in the emulator (cloud buckets are made outside s3proxy)."""
    if em.backend == "aws":
        import boto3  # type: ignore[import-untyped]

        client = boto3.client(
            "s3",
            endpoint_url=em.endpoint,
            aws_access_key_id="moto",
            aws_secret_access_key="moto",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name)
    elif em.backend == "azure":
        status = _azure_request(em, "PUT", name, {"restype": "container"})
        if status not in (201, 409):
            raise RuntimeError(f"azurite: creating container {name} answered {status}")
    else:
        request = urllib.request.Request(f"{em.endpoint}/_fake/buckets/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10):
            pass


def bucket_settings(em: Emulator, name: str) -> dict[str, object]:
    """Backend settings for the cloud bucket ``name`` of this emulator."""
    field_name = "container" if em.backend == "azure" else "bucket"
    return {**em.settings, field_name: name}
