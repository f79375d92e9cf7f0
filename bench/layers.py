"""Storage layers: GET of small objects through the proxy with and without the Redis cache.

Starts a redis-server (``redis-server`` on PATH or in /usr/bin) and, per scenario, two
proxies on the same local-backend data directory: one plain, one with the s3proxy-cache
plugin (installed in the venv). Each phase GETs the same objects in a loop for a fixed
time over one keep-alive connection (unsigned requests, so the client's own cost stays
small); phases alternate so that drift hits both alike.

Scenarios: the local backend as it is (``--latency-ms 0``), and the local backend behind
a simulated remote round trip before every read (``--latency-ms 10``: what a cloud
store costs), added by this module as a ``tryfirst`` storage layer. Run from the
repository root:

    .venv/bin/python bench/layers.py [--objects 200] [--size 1024] [--seconds 3] \
        [--rounds 2] [--latency-ms 0 10]

Prints requests per second and latency percentiles of each, and the speedup ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3proxy.hookspecs import hookimpl

LATENCY_ENV = "BENCH_BACKEND_LATENCY_MS"
MODULE = "bench.layers"


# -- the simulated remote store (loaded into the proxies through S3PROXY_PLUGINS) --------


class _RemoteLatency:
    """Sleeps one round trip before each read, as a cloud store's first byte would."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self.seconds)
        return await self.inner.get(*args, **kwargs)

    async def head(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self.seconds)
        return await self.inner.head(*args, **kwargs)


@hookimpl(tryfirst=True)
def wrap_backend(backend: Any, config: Any) -> Any:
    ms = float(os.environ.get(LATENCY_ENV, "0"))
    return _RemoteLatency(backend, ms / 1000) if ms > 0 else None


# -- the benchmark ---------------------------------------------------------------------


@dataclass
class Phase:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run_phase(client: Any, urls: list[str], seconds: float, into: Phase) -> None:
    started = time.perf_counter()
    deadline = started + seconds
    i = 0
    while (t0 := time.perf_counter()) < deadline:
        resp = client.get(urls[i % len(urls)])
        if resp.status_code != 200:
            raise RuntimeError(f"GET {urls[i % len(urls)]}: {resp.status_code}")
        into.latencies.append(time.perf_counter() - t0)
        i += 1
    into.requests += i
    into.seconds += time.perf_counter() - started


def scenario(tmp: Path, redis: Any, args: argparse.Namespace, latency_ms: float) -> None:
    import httpx

    from plugins.cache.tests.conftest import cache_env, metric
    from tests.conftest import s3_client, start_proxy, stop_proxy

    tmp.mkdir(parents=True)
    env = {"S3PROXY_PLUGINS": MODULE, LATENCY_ENV: str(latency_ms)}
    plain = start_proxy(tmp, "local", env=env)
    try:
        # Same data directory and simulated latency as ``plain``, plus the cache.
        cached = start_proxy(tmp, "local", env={**env, **cache_env(redis)})
    except Exception:
        stop_proxy(plain)
        raise
    try:
        s3 = s3_client(plain.endpoint)
        s3.create_bucket(Bucket="bench")
        payload = (bytes(range(256)) * (args.size // 256 + 1))[: args.size]
        keys = [f"obj-{i:05d}" for i in range(args.objects)]
        for key in keys:
            s3.put_object(Bucket="bench", Key=key, Body=payload)
        endpoints = {"uncached": plain.endpoint, "cached": cached.endpoint}
        results = {name: Phase() for name in endpoints}
        with httpx.Client(timeout=30) as a, httpx.Client(timeout=30) as b:
            clients = {"uncached": a, "cached": b}
            urls = {name: [f"{endpoints[name]}/bench/{k}" for k in keys] for name in endpoints}
            for name in endpoints:  # warm-up: connections, and fill the cache
                for url in urls[name]:
                    clients[name].get(url)
            for _ in range(args.rounds):
                for name in endpoints:
                    run_phase(clients[name], urls[name], args.seconds, results[name])
        hits = metric(cached.endpoint, "s3proxy_cache_hits_total")
        misses = metric(cached.endpoint, "s3proxy_cache_misses_total")
    finally:
        stop_proxy(cached)
        stop_proxy(plain)

    where = f"local backend + {latency_ms:g} ms per read" if latency_ms else "local backend"
    print(f"GET of {args.objects} objects of {args.size} B, one connection, {where}")
    for name, phase in results.items():
        print(
            f"  {name:>8}: {phase.rate:7.0f} req/s  "
            f"p50 {phase.percentile(0.5):6.2f} ms  p99 {phase.percentile(0.99):6.2f} ms  "
            f"mean {statistics.fmean(phase.latencies) * 1000:6.2f} ms  ({phase.requests} requests)"
        )
    ratio = results["cached"].rate / results["uncached"].rate
    p50 = results["uncached"].percentile(0.5) / results["cached"].percentile(0.5)
    print(
        f"  cache hits {hits:.0f}, misses {misses:.0f}; "
        f"speedup {ratio:.2f}x (req/s), {p50:.2f}x (p50 latency)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024, help="object size in bytes")
    parser.add_argument("--seconds", type=float, default=3.0, help="per phase")
    parser.add_argument("--rounds", type=int, default=2, help="uncached+cached phase pairs")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 10.0])
    args = parser.parse_args()

    from plugins.cache.tests.conftest import RedisServer

    with tempfile.TemporaryDirectory(prefix="s3proxy-bench-layers-") as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp)
        redis.start()
        try:
            for i, latency in enumerate(args.latency_ms):
                scenario(tmp / f"scenario-{i}", redis, args, latency)
        finally:
            redis.kill()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
