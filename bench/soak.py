"""Soak: the mixed S3 workload (PUT/GET/LIST/multipart/DELETE) from 32 clients for up to
10 minutes, against the local backend and against moto (aws backend), on loopback.

Every object is read back by checksum at the end; the run fails (exit 1) on any 5xx,
any lost or corrupted object, or an RSS slope above ``--max-slope`` MiB/min (measured
after the first quarter of the run, the warm-up). Run from the repository root:

    .venv/bin/python bench/soak.py [--minutes 5] [--clients 32] [--backend local aws]

CI runs the same workload for 20 s per backend (tests/reliability/test_soak.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s3proxy.testing import emulators
from tests.conftest import start_proxy, stop_proxy
from tests.reliability.helpers import MIN_PART
from tests.reliability.workload import SoakResult, run_soak

MAX_MINUTES = 10.0


def soak(backend: str, seconds: float, clients: int, tmp: Path) -> SoakResult:
    env = {"S3PROXY_MULTIPART__MIN_PART_SIZE": str(MIN_PART), "S3PROXY_LOGGING__LEVEL": "warning"}
    moto = None
    if backend == "aws":
        moto = emulators.STARTERS["aws"](tmp)
        cloud_bucket = emulators.new_name("soak")
        emulators.create_bucket(moto, cloud_bucket)
        env |= moto.proxy_env(bucket=cloud_bucket, layout="folders", prefix="soak")
    server = start_proxy(tmp, backend, env=env)
    try:
        return run_soak(
            server.endpoint, server.pid, seconds=seconds, clients=clients, min_part=MIN_PART
        )
    finally:
        stop_proxy(server)
        if moto is not None:
            moto.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="per backend (max 10)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--backend", nargs="+", default=["local", "aws"], choices=["local", "aws"])
    parser.add_argument("--max-slope", type=float, default=5.0, help="MiB/min of RSS growth")
    args = parser.parse_args()
    seconds = min(args.minutes, MAX_MINUTES) * 60
    failed = False
    for backend in args.backend:
        with tempfile.TemporaryDirectory(prefix=f"s3proxy-soak-{backend}-") as tmp:
            result = soak(backend, seconds, args.clients, Path(tmp))
        print(result.summary(backend), flush=True)
        for line in (result.client_errors + result.mismatches)[:20]:
            print(f"  {line}")
        slope = result.rss_slope_mib_per_min()
        bad = (
            result.server_errors
            or result.client_errors
            or result.mismatches
            or result.objects_lost
            or slope > args.max_slope
        )
        failed = failed or bool(bad)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
