"""A/B comparison of proxy variants on one workload, by CPU time per request.

Throughput on a shared machine moves with everything else that runs; the CPU time the
proxy spends per request barely does. This starts one SeaweedFS and one proxy per
variant (each variant is a set of environment variables, e.g. a logging level or a
PYTHONPATH that makes uvloop importable), then runs the same wrk workload against each
in interleaved rounds and reports requests/s and proxy CPU per request::

    python -m bench.ab --variant base: --variant quiet:S3PROXY_LOGGING__LEVEL=warning
    python -m bench.ab --workload put --conns 32 --variant base: --variant uvloop:PYTHONPATH=/x

``--git-stash``-style comparisons of code changes: run it once per checkout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench import servers
from bench import workloads as wl
from bench.servers import Endpoint


def _parse_variant(raw: str) -> tuple[str, dict[str, str]]:
    name, _, rest = raw.partition(":")
    env = dict(item.split("=", 1) for item in rest.split(",") if item)
    return name, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, metavar="NAME:K=V,K=V")
    parser.add_argument("--workload", choices=["get", "put"], default="get")
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--direct", action="store_true", help="also run against SeaweedFS")
    args = parser.parse_args(argv)

    variants = [_parse_variant(v) for v in args.variant]
    with tempfile.TemporaryDirectory(prefix="s3proxy-ab-") as tmp:
        work = Path(tmp)
        seaweed = servers.start_seaweedfs(work)
        started: list[servers.Server] = [seaweed]
        try:
            servers.create_bucket(seaweed.port, "bench")
            endpoints: list[tuple[Endpoint, int]] = []
            if args.direct:
                endpoints.append((Endpoint("direct", "127.0.0.1", seaweed.port, "bench"), 0))
            for name, env in variants:
                full_env = servers.proxy_env(
                    "aws", seaweed_port=seaweed.port, bucket="bench", extra=env
                )
                proxy = servers.start_proxy(f"proxy-{name}", work, full_env)
                started.append(proxy)
                ep = Endpoint(name, "127.0.0.1", proxy.port, "bench")
                endpoints.append((ep, servers.worker_pid(proxy)))
            data = os.urandom(args.size)
            pids = {ep.name: [p.pid for p in seaweed.processes()] for ep, _ in endpoints}
            for ep, pid in endpoints:
                if pid:
                    pids[ep.name] = [pid]
                wl.put_bytes(ep, "ab/small", data)
                wl.small_get(ep, "ab/small", args.conns, 1)
            rps: dict[str, list[float]] = {}
            cpu: dict[str, list[float]] = {}
            p50: dict[str, list[float]] = {}
            for r in range(args.rounds):
                order = endpoints if r % 2 == 0 else endpoints[::-1]
                for ep, _ in order:
                    before = servers.cpu_seconds(pids[ep.name])
                    if args.workload == "get":
                        res = wl.small_get(ep, "ab/small", args.conns, args.seconds)
                    else:
                        res = wl.small_put(ep, "ab/put-", args.size, args.conns, args.seconds)
                    used = servers.cpu_seconds(pids[ep.name]) - before
                    rps.setdefault(ep.name, []).append(res.rps)
                    cpu.setdefault(ep.name, []).append(used / max(1, res.requests) * 1e6)
                    p50.setdefault(ep.name, []).append(res.p50_ms)
                    print(
                        f"round {r + 1} {ep.name:>12}: {res.rps:8,.0f} req/s  "
                        f"{cpu[ep.name][-1]:6,.0f} us CPU/req  p50 {res.p50_ms:.2f} ms",
                        file=sys.stderr,
                    )
            print(
                f"\n{args.workload.upper()} {args.size} B, {args.conns} conn, {args.rounds} rounds"
            )
            print(f"{'variant':>14} {'req/s':>10} {'CPU us/req':>11} {'p50 ms':>7}")
            for ep, _ in endpoints:
                print(
                    f"{ep.name:>14} {statistics.median(rps[ep.name]):10,.0f} "
                    f"{statistics.median(cpu[ep.name]):11,.0f} "
                    f"{statistics.median(p50[ep.name]):7.2f}"
                )
        finally:
            for server in reversed(started):
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
