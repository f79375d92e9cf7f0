"""5 GiB multipart upload through the proxy (local backend): time and RSS growth.

Too slow for CI (a few minutes on 2 cores; CI runs the 1 GiB variant in
tests/e2e/test_multipart_large.py). Run from the repository root:

    .venv/bin/python bench/multipart_5gib.py [--gib 5] [--part-mib 64]

Exits 1 if the proxy's RSS grew by more than 64 MiB.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import start_proxy, stop_proxy
from tests.e2e.test_multipart_large import RSS_LIMIT, MiB, multipart_round_trip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=5.0)
    parser.add_argument("--part-mib", type=int, default=64)
    args = parser.parse_args()
    size = int(args.gib * 1024 * MiB)
    with tempfile.TemporaryDirectory(prefix="s3proxy-bench-") as tmp:
        server = start_proxy(Path(tmp), "local")
        try:
            result = multipart_round_trip(server, size, args.part_mib * MiB)
        finally:
            stop_proxy(server)
    rate = size / MiB / result.seconds
    print(
        f"{args.gib:g} GiB in {args.part_mib} MiB parts: {result.seconds:.1f} s "
        f"({rate:.0f} MiB/s upload+complete+download), "
        f"RSS growth {result.rss_growth / MiB:.1f} MiB (limit {RSS_LIMIT / MiB:.0f})"
    )
    return 0 if result.rss_growth <= RSS_LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
