"""Small-request load with wrk (C, epoll): requests/s and latency percentiles.

wrk runs with one thread so that it takes at most one of the machine's cores; its own
CPU time (from ``wait4``) is reported with every run, so a client that became the
bottleneck shows up as ``client_cpu`` close to 1.0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.servers import ToolMissing

LUA = Path(__file__).resolve().parent / "lua"
INSTALL_HINT = (
    "wrk not found: install it with `apt-get install -y wrk` (Debian/Ubuntu), "
    "`brew install wrk` (macOS) or build it from https://github.com/wg/wrk"
)


def wrk_executable() -> str:
    exe = shutil.which("wrk")
    if exe is None:
        raise ToolMissing(INSTALL_HINT)
    return exe


@dataclass
class WrkResult:
    requests: int
    seconds: float
    #: Responses with a status >= 400 (wrk counts them as "status" errors).
    status_errors: int
    #: Socket errors and timeouts.
    socket_errors: int
    p50_ms: float
    p99_ms: float
    #: Cores the client used on average (user + system time / wall time).
    client_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run(
    url: str,
    script: str,
    args: list[str],
    *,
    connections: int,
    seconds: float,
    timeout: float = 10.0,
) -> WrkResult:
    """One wrk run of ``seconds`` against ``url`` with ``bench/lua/<script>.lua``."""
    argv = [
        wrk_executable(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout))}s",
        "-s",
        str(LUA / f"{script}.lua"),
        url,
        "--",
        *args,
    ]
    # The client's CPU time: what the reaped child adds to this process's children times.
    before = os.times()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=seconds + timeout + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"wrk did not finish: {' '.join(argv)}") from None
    after = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode(errors='replace')}")
    line = next((ln for ln in out.decode().splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out.decode()}\n{err.decode()}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    wall = data["duration_us"] / 1e6
    used = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return WrkResult(
        requests=data["requests"],
        seconds=wall,
        status_errors=data["status"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        client_cpu=used / wall if wall else 0.0,
    )
