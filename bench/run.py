"""The benchmark run: start the servers, run every workload in interleaved rounds.

Proxy-vs-direct workloads alternate the order of the two endpoints each round (A B, B A,
...) so that drift in the machine's load hits both alike; results keep every round, and
reports use the median and the spread. Each workload is bounded by time (wrk runs) or
size (transfers), so a run ends by itself.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import profiling, servers, wrk
from bench import workloads as wl
from bench.servers import Endpoint, Server
from bench.workloads import GiB, KiB, MiB

BUCKET = "bench"
DIRECT = "SeaweedFS"
PROXY = "s3proxy"
PROXY_AUTH = "s3proxy (credentials)"
MOTO = "moto"
LOCAL = "s3proxy (local)"
AUTH_KEY = ("bench-key", "bench-secret-key-0123456789")
#: Shortest profile: short workloads repeat until it is reached.
PROFILE_SECONDS = 6.0
#: moto serves reads only to signed requests, but does not check the signature.
MOTO_AUTH = (
    "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/s3/aws4_request, "
    f"SignedHeaders=host, Signature={'0' * 64}"
)


@dataclass(frozen=True)
class Settings:
    """Sizes, durations and repetitions of one run (``QUICK`` and ``FULL``)."""

    mode: str
    rounds: int
    #: Duration of each wrk run.
    seconds: float
    small_size: int
    big_size: int
    multipart_size: int
    part_size: int
    part_concurrency: int
    list_keys: int
    stream_size: int
    parallel_uploads: int
    parallel_size: int
    local_rounds: int
    local_big_size: int
    groups: tuple[str, ...] = ()
    #: Workload keys to profile with py-spy (proxy side, last round); "all" for all.
    profile: tuple[str, ...] = ()


# Memory first: its growth is then measured from a fresh worker, the conservative case.
GROUPS = ("memory", "small", "rejected", "large", "multipart", "listing", "local")

FULL = Settings(
    mode="full",
    rounds=5,
    seconds=10,
    small_size=KiB,
    big_size=256 * MiB,
    multipart_size=GiB,
    part_size=64 * MiB,
    part_concurrency=4,
    list_keys=10_000,
    stream_size=5 * GiB,
    parallel_uploads=32,
    parallel_size=256 * MiB,
    local_rounds=3,
    local_big_size=256 * MiB,
    groups=GROUPS,
)
QUICK = Settings(
    mode="quick",
    rounds=3,
    seconds=3,
    small_size=KiB,
    big_size=64 * MiB,
    multipart_size=256 * MiB,
    part_size=32 * MiB,
    part_concurrency=4,
    list_keys=2_000,
    stream_size=GiB,
    parallel_uploads=32,
    parallel_size=16 * MiB,
    local_rounds=2,
    local_big_size=64 * MiB,
    groups=GROUPS,
)


def size_label(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


@dataclass
class Metric:
    """One workload's results: a value per round for each endpoint."""

    key: str
    title: str
    unit: str
    higher_is_better: bool = True
    values: dict[str, list[float]] = field(default_factory=dict)
    #: Side measurements per round, "<endpoint>|<what>" (client CPU, server CPU, ...).
    details: dict[str, list[float]] = field(default_factory=dict)

    def add(self, endpoint: str, value: float, **details: float) -> None:
        self.values.setdefault(endpoint, []).append(value)
        for name, v in details.items():
            self.details.setdefault(f"{endpoint}|{name}", []).append(v)

    def median(self, endpoint: str) -> float | None:
        got = self.values.get(endpoint)
        return statistics.median(got) if got else None


@dataclass
class Results:
    settings: dict[str, Any]
    environment: dict[str, Any]
    metrics: dict[str, Metric] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def metric(self, key: str, title: str, unit: str, higher: bool = True) -> Metric:
        if key not in self.metrics:
            self.metrics[key] = Metric(key, title, unit, higher)
        return self.metrics[key]

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "environment": self.environment,
            "metrics": {k: asdict(m) for k, m in self.metrics.items()},
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Results:
        metrics = {k: Metric(**m) for k, m in data["metrics"].items()}
        return cls(data["settings"], data["environment"], metrics, data.get("notes", []))


def _version(argv: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else ""
    return ""


def environment() -> dict[str, Any]:
    import granian

    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "granian": granian.__version__,
        "seaweedfs": _version([servers.weed_executable(), "version"]),
        "wrk": _version([wrk.wrk_executable(), "-v"]),
        "commit": _version(["git", "-C", str(servers.REPO), "rev-parse", "--short", "HEAD"]),
        "load_before": os.getloadavg()[0],
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def slug(ep: Endpoint) -> str:
    return "".join(c if c.isalnum() else "-" for c in ep.name.lower()).strip("-")


class Run:
    """One benchmark run in a scratch directory ``work``."""

    def __init__(
        self,
        settings: Settings,
        work: Path,
        *,
        proxy_env: dict[str, str] | None = None,
        profile_dir: Path | None = None,
    ) -> None:
        self.s = settings
        self.work = work
        self.proxy_extra = proxy_env or {}
        self.profile_dir = profile_dir
        self.results = Results(
            settings={**asdict(settings), "proxy_env": self.proxy_extra}, environment={}
        )
        self._servers: list[Server] = []
        #: Worker pid to profile per endpoint name (default: the main proxy's worker).
        self._profile_pid: dict[str, int] = {}

    # -- servers -------------------------------------------------------------------------

    def _keep(self, server: Server) -> Server:
        self._servers.append(server)
        return server

    def _stop(self, server: Server) -> None:
        server.stop()
        self._servers.remove(server)

    def _endpoint(self, name: str, server: Server) -> Endpoint:
        return Endpoint(name, "127.0.0.1", server.port, BUCKET, [p.pid for p in server.processes()])

    def _start_proxy(self, name: str, backend: str, **kwargs: Any) -> Server:
        env = servers.proxy_env(backend, bucket=BUCKET, extra=self.proxy_extra, **kwargs)
        server = self._keep(servers.start_proxy(slug(Endpoint(name, "", 0, "")), self.work, env))
        if backend != "aws":
            servers.create_bucket(server.port, BUCKET)
        return server

    # -- running -------------------------------------------------------------------------

    def execute(self) -> Results:
        self.results.environment = environment()
        try:
            seaweed = self._keep(servers.start_seaweedfs(self.work))
            servers.create_bucket(seaweed.port, BUCKET)
            self.direct = self._endpoint(DIRECT, seaweed)
            self.proxy_server = self._start_proxy(PROXY, "aws", seaweed_port=seaweed.port)
            self.proxy = self._endpoint(PROXY, self.proxy_server)
            self.worker = servers.worker_pid(self.proxy_server)
            log(f"SeaweedFS on :{seaweed.port}, s3proxy on :{self.proxy.port}")
            self._idle_memory()
            for group in self.s.groups:
                log(f"== {group}")
                try:
                    getattr(self, f"group_{group}")()
                except (RuntimeError, OSError) as exc:
                    # One failed group must not lose the others' results.
                    note = f"group {group} failed: {str(exc).splitlines()[0][:300]}"
                    for server in self._servers:
                        if server.process.poll() is not None or server.name == "seaweedfs":
                            tail = server.log_tail(5).replace("\n", " | ")[-600:]
                            note += f" ({server.name} log: {tail})"
                    log(note)
                    self.results.notes.append(note)
        finally:
            for server in list(self._servers):
                server.stop()
            self.results.environment["load_after"] = os.getloadavg()[0]
            self.results.environment["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        return self.results

    @staticmethod
    def _order(endpoints: list[Endpoint], round_: int) -> list[Endpoint]:
        """A B, B A, A B, ... (rotations for more than two endpoints)."""
        shift = round_ % len(endpoints)
        return endpoints[shift:] + endpoints[:shift]

    def _profile(
        self,
        key: str,
        endpoints: list[Endpoint],
        measure: Callable[[Endpoint], tuple[float, dict[str, float]]],
    ) -> None:
        """After the measured rounds: profile the proxy side while ``measure`` repeats.

        py-spy slows what it samples, so profiles never overlap a measured round. The
        workload repeats for at least ``PROFILE_SECONDS`` (short transfers too).
        """
        wanted = self.profile_dir is not None and ("all" in self.s.profile or key in self.s.profile)
        proxied = [ep for ep in endpoints if ep.name in (PROXY, PROXY_AUTH, LOCAL)]
        if not wanted or not proxied or self.profile_dir is None:
            return
        ep = proxied[0]
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        raw = self.work / f"{key}.pyspy"
        pid = self._profile_pid.get(ep.name, self.worker)
        threads_before = profiling.thread_times(pid)
        started = time.perf_counter()
        runs = 0
        with profiling.record(pid, raw):
            while runs < 50 and (runs == 0 or time.perf_counter() - started < PROFILE_SECONDS):
                measure(ep)
                runs += 1
        wall = time.perf_counter() - started
        threads = profiling.thread_delta(pid, threads_before, profiling.thread_times(pid))
        text = profiling.summarize(raw, wall, threads=threads)
        path = self.profile_dir / f"{key}.txt"
        path.write_text(f"{key}: {ep.name}, {runs} runs in {wall:.1f} s\n\n{text}")
        log(f"profile written to {path}")

    def _rounds(
        self,
        metric: Metric,
        endpoints: list[Endpoint],
        measure: Callable[[Endpoint], tuple[float, dict[str, float]]],
        rounds: int | None = None,
    ) -> None:
        """Run ``measure`` on every endpoint, ``rounds`` times, alternating the order."""
        rounds = rounds or self.s.rounds
        for r in range(rounds):
            for ep in self._order(endpoints, r):
                cpu_before = servers.cpu_seconds(ep.pids)
                started = time.perf_counter()
                value, details = measure(ep)
                wall = time.perf_counter() - started
                details["server_cores"] = (servers.cpu_seconds(ep.pids) - cpu_before) / wall
                metric.add(ep.name, value, **details)
            log(
                f"{metric.title} round {r + 1}/{rounds}: "
                + ", ".join(f"{n} {v[-1]:,.1f}" for n, v in metric.values.items())
            )
        self._profile(metric.key, endpoints, measure)

    # -- memory at idle ------------------------------------------------------------------

    def _idle_memory(self) -> None:
        wl.put_bytes(self.proxy, "warmup", b"x")
        wl.get_object(self.proxy, "warmup", 1)
        time.sleep(1)
        procs = [p.pid for p in self.proxy_server.processes()]
        total_rss = sum(servers.rss(pid) for pid in procs)
        m = self.results.metric("idle_rss", "RSS at idle (worker)", "MiB", higher=False)
        m.add(PROXY, servers.rss(self.worker) / MiB)
        m = self.results.metric("idle_rss_total", "RSS at idle (all processes)", "MiB", False)
        m.add(PROXY, total_rss / MiB)
        m = self.results.metric("idle_pss_total", "PSS at idle (all processes)", "MiB", False)
        m.add(PROXY, servers.pss(procs) / MiB)

    # -- groups --------------------------------------------------------------------------

    def _wrk_measure(
        self, run: Callable[[Endpoint], wrk.WrkResult], latency: dict[str, Metric] | None = None
    ) -> Callable[[Endpoint], tuple[float, dict[str, float]]]:
        def measure(ep: Endpoint) -> tuple[float, dict[str, float]]:
            cpu_before = servers.cpu_seconds(ep.pids)
            res = run(ep)
            cpu_us = (servers.cpu_seconds(ep.pids) - cpu_before) / max(1, res.requests) * 1e6
            for name, m in (latency or {}).items():
                m.add(ep.name, res.p50_ms if name == "p50" else res.p99_ms)
            return res.rps, {
                "client_cpu": res.client_cpu,
                "server_cpu_us_per_request": cpu_us,
                "p50_ms": res.p50_ms,
                "p99_ms": res.p99_ms,
            }

        return measure

    def group_small(self) -> None:
        s, res = self.s, self.results
        eps = [self.direct, self.proxy]
        data = os.urandom(s.small_size)
        for ep in eps:
            wl.put_bytes(ep, f"{slug(ep)}/small", data)
            wl.small_get(ep, f"{slug(ep)}/small", 32, 1)  # warm-up: connections, caches
        label = size_label(s.small_size)
        for method in ("GET", "PUT"):
            for conns in (1, 32):
                key = f"{method.lower()}_small_c{conns}"
                m = res.metric(key, f"{method} {label}, {conns} conn", "req/s")
                lat = {
                    "p50": res.metric(f"{key}_p50", f"{method} {label}, {conns} conn p50", "ms", 0),
                    "p99": res.metric(f"{key}_p99", f"{method} {label}, {conns} conn p99", "ms", 0),
                }

                def run(ep: Endpoint, method: str = method, conns: int = conns) -> wrk.WrkResult:
                    if method == "GET":
                        return wl.small_get(ep, f"{slug(ep)}/small", conns, s.seconds)
                    return wl.small_put(ep, f"{slug(ep)}/put-", s.small_size, conns, s.seconds)

                self._rounds(m, eps, self._wrk_measure(run, lat))

    def group_rejected(self) -> None:
        s, res = self.s, self.results
        auth_server = self._start_proxy(
            PROXY_AUTH, "aws", seaweed_port=self.direct.port, credentials=AUTH_KEY
        )
        auth = self._endpoint(PROXY_AUTH, auth_server)
        self._profile_pid[PROXY_AUTH] = servers.worker_pid(auth_server)
        try:
            key = f"{slug(self.proxy)}/small"
            etag = wl.put_bytes(self.proxy, key, os.urandom(s.small_size))
            wl.put_bytes(self.direct, f"{slug(self.direct)}/small", os.urandom(s.small_size))
            check = wl.rawhttp.request(
                auth.host, auth.port, "GET", wl.key_path(auth, key),
                headers=wl.bad_signature_headers(AUTH_KEY[0]),
            )  # fmt: skip
            if check.status != 403 or b"SignatureDoesNotMatch" not in check.body:
                raise RuntimeError(f"bad signature answered {check.status}: {check.body[:300]!r}")

            def bad_sig(ep: Endpoint) -> wrk.WrkResult:
                out = wl.rejected(ep, key, wl.bad_signature_headers(AUTH_KEY[0]), 32, s.seconds)
                if out.status_errors != out.requests or out.socket_errors:
                    raise RuntimeError(f"bad signature: {out}")
                return out

            m = res.metric("rejected_signature", "Rejected: bad signature, 32 conn", "req/s")
            wl.rejected(auth, key, wl.bad_signature_headers(AUTH_KEY[0]), 32, 1)
            self._rounds(m, [auth], self._wrk_measure(bad_sig))
        finally:
            self._stop(auth_server)

        etags = {
            self.proxy.name: etag,
            self.direct.name: wl.put_bytes(self.direct, f"{slug(self.direct)}/small304", b"x"),
        }
        paths = {self.proxy.name: key, self.direct.name: f"{slug(self.direct)}/small304"}
        for ep in (self.direct, self.proxy):
            r = wl.rawhttp.request(
                ep.host, ep.port, "GET", wl.key_path(ep, paths[ep.name]),
                headers={"If-None-Match": etags[ep.name]},
            )  # fmt: skip
            if r.status != 304:
                raise RuntimeError(f"{ep.name}: If-None-Match answered {r.status}")

        def not_modified(ep: Endpoint) -> wrk.WrkResult:
            headers = {"If-None-Match": etags[ep.name]}
            out = wl.rejected(ep, paths[ep.name], headers, 32, s.seconds)
            if out.status_errors or out.socket_errors:
                raise RuntimeError(f"304: {out}")
            return out

        m = res.metric("rejected_304", "Rejected: 304 Not Modified, 32 conn", "req/s")
        self._rounds(m, [self.direct, self.proxy], self._wrk_measure(not_modified))

    def _transfer(
        self, run: Callable[[Endpoint], wl.Transfer]
    ) -> Callable[[Endpoint], tuple[float, dict[str, float]]]:
        def measure(ep: Endpoint) -> tuple[float, dict[str, float]]:
            t = run(ep)
            return t.mb_per_s, {"client_cpu": t.client_cpu / t.seconds}

        return measure

    def group_large(self) -> None:
        s, res = self.s, self.results
        eps = [self.direct, self.proxy]
        label = size_label(s.big_size)
        for ep in eps:
            wl.put_object(ep, f"{slug(ep)}/big", s.big_size)
        m = res.metric("get_big", f"GET {label}", "MB/s")
        self._rounds(
            m, eps, self._transfer(lambda ep: wl.get_object(ep, f"{slug(ep)}/big", s.big_size))
        )
        m = res.metric("put_big", f"PUT {label}", "MB/s")
        self._rounds(
            m, eps, self._transfer(lambda ep: wl.put_object(ep, f"{slug(ep)}/big-put", s.big_size))
        )

    def group_multipart(self) -> None:
        s = self.s
        title = (
            f"Multipart upload {size_label(s.multipart_size)} "
            f"({size_label(s.part_size)} parts, {s.part_concurrency} at a time)"
        )
        m = self.results.metric("multipart", title, "MB/s")

        def measure(ep: Endpoint) -> tuple[float, dict[str, float]]:
            seconds = wl.multipart_upload(
                ep, f"{slug(ep)}/mpu", s.multipart_size, s.part_size, s.part_concurrency
            )
            return s.multipart_size / 1e6 / seconds, {}

        self._rounds(m, [self.direct, self.proxy], measure)

    def group_listing(self) -> None:
        s = self.s
        prefix = "list/"
        log(f"writing {s.list_keys} keys for the listing")
        wl.populate(self.direct, prefix, s.list_keys)
        m = self.results.metric(
            "list", f"ListObjectsV2 of {s.list_keys:,} keys (1000 a page)", "keys/s"
        )

        def measure(ep: Endpoint) -> tuple[float, dict[str, float]]:
            seconds, keys = wl.list_all(ep, prefix)
            if keys != s.list_keys:
                raise RuntimeError(f"{ep.name} listed {keys} keys, expected {s.list_keys}")
            return keys / seconds, {"seconds": seconds}

        self._rounds(m, [self.direct, self.proxy], measure)

    def group_memory(self) -> None:
        s, res = self.s, self.results
        ep = self.proxy
        key = f"{slug(ep)}/stream"
        label = size_label(s.stream_size)

        with servers.RssSampler(self.worker) as put_rss:
            t = wl.put_object(ep, key, s.stream_size)
        res.metric("mem_put", f"RSS growth, {label} PUT", "MiB", False).add(
            PROXY, put_rss.growth / MiB, mb_per_s=t.mb_per_s
        )
        log(f"{label} PUT: {t.mb_per_s:.0f} MB/s, RSS +{put_rss.growth / MiB:.1f} MiB")
        with servers.RssSampler(self.worker) as get_rss:
            t = wl.get_object(ep, key, s.stream_size)
        res.metric("mem_get", f"RSS growth, {label} GET", "MiB", False).add(
            PROXY, get_rss.growth / MiB, mb_per_s=t.mb_per_s
        )
        log(f"{label} GET: {t.mb_per_s:.0f} MB/s, RSS +{get_rss.growth / MiB:.1f} MiB")
        wl.delete_object(ep, key)

        n, size = s.parallel_uploads, s.parallel_size
        with servers.RssSampler(self.worker) as par_rss, ThreadPoolExecutor(n) as pool:
            started = time.perf_counter()
            list(pool.map(lambda i: wl.put_object(ep, f"{slug(ep)}/par-{i}", size), range(n)))
            seconds = time.perf_counter() - started
        title = f"RSS growth, {n} concurrent {size_label(size)} PUTs"
        res.metric("mem_parallel", title, "MiB", False).add(
            PROXY, par_rss.growth / MiB, mb_per_s=n * size / 1e6 / seconds
        )
        log(f"{title}: +{par_rss.growth / MiB:.1f} MiB ({n * size / 1e6 / seconds:.0f} MB/s)")
        for i in range(n):
            wl.delete_object(ep, f"{slug(ep)}/par-{i}")

    def group_local(self) -> None:
        s, res = self.s, self.results
        # The SeaweedFS-backed proxy is done: stop it so three servers do not compete.
        if self.proxy_server in self._servers:
            self._stop(self.proxy_server)
        moto = self._keep(servers.start_moto(self.work))
        servers.create_bucket(moto.port, BUCKET)
        local_server = self._start_proxy(LOCAL, "local", data_dir=self.work / "local-data")
        self._profile_pid[LOCAL] = servers.worker_pid(local_server)
        moto_ep = self._endpoint(MOTO, moto)
        moto_ep.headers = {"Authorization": MOTO_AUTH}
        eps = [self.direct, moto_ep, self._endpoint(LOCAL, local_server)]
        data = os.urandom(s.small_size)
        for ep in eps:
            wl.put_bytes(ep, f"{slug(ep)}/small", data)
            wl.small_get(ep, f"{slug(ep)}/small", 32, 1)
            wl.put_object(ep, f"{slug(ep)}/big", s.local_big_size)
        small = size_label(s.small_size)
        big = size_label(s.local_big_size)
        rounds = s.local_rounds

        def get_small(ep: Endpoint) -> wrk.WrkResult:
            return wl.small_get(ep, f"{slug(ep)}/small", 32, s.seconds)

        def put_small(ep: Endpoint) -> wrk.WrkResult:
            return wl.small_put(ep, f"{slug(ep)}/put-", s.small_size, 32, s.seconds)

        m = res.metric("local_get_small", f"GET {small}, 32 conn", "req/s")
        self._rounds(m, eps, self._wrk_measure(get_small), rounds)
        m = res.metric("local_put_small", f"PUT {small}, 32 conn", "req/s")
        self._rounds(m, eps, self._wrk_measure(put_small), rounds)
        m = res.metric("local_get_big", f"GET {big}", "MB/s")
        self._rounds(
            m,
            eps,
            self._transfer(lambda ep: wl.get_object(ep, f"{slug(ep)}/big", s.local_big_size)),
            rounds,
        )
        m = res.metric("local_put_big", f"PUT {big}", "MB/s")
        self._rounds(
            m,
            eps,
            self._transfer(lambda ep: wl.put_object(ep, f"{slug(ep)}/big-put", s.local_big_size)),
            rounds,
        )


def execute(
    settings: Settings,
    *,
    proxy_env: dict[str, str] | None = None,
    profile_dir: Path | None = None,
    keep: bool = False,
) -> Results:
    """Run in a scratch directory under the system temp dir, removed afterwards."""
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="s3proxy-bench-"))
    try:
        return Run(settings, work, proxy_env=proxy_env, profile_dir=profile_dir).execute()
    finally:
        if keep:
            log(f"kept scratch directory {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


__all__ = ["FULL", "GROUPS", "QUICK", "Results", "Settings", "execute", "replace"]
