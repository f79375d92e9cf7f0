"""py-spy profiles of the proxy worker while a workload runs, summarised as text.

``py-spy record --gil`` samples only the thread that holds the GIL: the event loop and
everything in Python, which is what limits a single worker. The summary lists the
functions with the most samples, by own time and including callees, for
bench/results/profiles/ (small text files, unlike flame graphs).
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.servers import ToolMissing, venv_tool

RATE = 250


def py_spy() -> str:
    exe = venv_tool("py-spy")
    if exe is None:
        raise ToolMissing("py-spy not found: install it with `uv pip install py-spy`")
    return exe


@contextlib.contextmanager
def record(pid: int, raw_out: Path, *, gil: bool = True) -> Iterator[None]:
    """Sample ``pid`` until the block ends; collapsed stacks go to ``raw_out``."""
    argv = [py_spy(), "record", "-p", str(pid), "-r", str(RATE), "-f", "raw", "-o", str(raw_out)]
    argv += ["--nonblocking", "-d", "3600"]
    if gil:
        argv.append("--gil")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        # py-spy writes its output when interrupted.
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if not raw_out.exists():
            print(f"py-spy wrote nothing: {err.decode(errors='replace')}", file=sys.stderr)


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py:123)`` without site paths."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def _function(frame: str) -> str:
    """A frame without its line number: samples of one function add up."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return _short(f"{name} ({path})")


def thread_times(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of each thread of ``pid``: {tid: (name, seconds)}."""
    out: dict[int, tuple[str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def thread_delta(
    pid: int, before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds spent between two ``thread_times`` snapshots, per kind of thread."""
    kinds: dict[str, float] = collections.defaultdict(float)
    for tid, (name, seconds) in after.items():
        used = seconds - before.get(tid, (name, 0.0))[1]
        if tid == pid:
            kind = "event loop (main thread: Python, the ASGI app)"
        elif name.startswith("tokio-rt-worker"):
            kind = "tokio threads (Granian's HTTP server and obstore's client, in Rust)"
        else:
            kind = "other threads (hashing executor, Granian's Python-side thread)"
        kinds[kind] += used
    return dict(kinds)


# Frames every sample shares (process start-up, the event loop): not worth listing.
_BOILERPLATE = (
    "multiprocessing/",
    "granian/",
    "<frozen runpy>",
    "s3proxy/__main__.py",
    "s3proxy/cli.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
)


def summarize(
    raw: Path, seconds: float, top: int = 25, threads: dict[str, float] | None = None
) -> str:
    """Own and inclusive sample shares per function, from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        total += n
        own[_function(frames[-1])] += n
        for fn in {_function(f) for f in frames}:
            incl[fn] += n
    out: list[str] = []
    if threads:
        used = sum(threads.values())
        out += [f"CPU of the proxy worker by thread: {used:.2f} s over {seconds:.1f} s wall"]
        out += [f"  {v:6.2f} s  {k}" for k, v in sorted(threads.items(), key=lambda kv: -kv[1])]
        out.append("")
    if not total:
        return "\n".join([*out, "no py-spy samples"]) + "\n"
    busy = total / (RATE * seconds) if seconds else 0.0
    out += [
        f"py-spy: {total} samples of the GIL holder over {seconds:.1f} s "
        f"(a thread held the GIL ~{busy:.0%} of the time)",
        "",
        "own time (the function itself, incl. native calls it makes):",
    ]
    out += [f"  {100 * n / total:5.1f}%  {fn}" for fn, n in own.most_common(top)]
    out += ["", "inclusive (the function and its callees):"]
    shown = [(fn, n) for fn, n in incl.most_common() if not any(b in fn for b in _BOILERPLATE)][
        : top * 2
    ]
    out += [f"  {100 * n / total:5.1f}%  {fn}" for fn, n in shown]
    return "\n".join(out) + "\n"


def available() -> bool:
    return venv_tool("py-spy") is not None or shutil.which("py-spy") is not None
