"""Long fuzz run of the request surface (tests/reliability/test_fuzz_requests.py).

CI runs a few hundred fixed (derandomized) examples per property; this runs many more,
randomized, and stops by itself. Run from the repository root:

    .venv/bin/python bench/fuzz.py [--examples 5000] [-k EXPRESSION]

Exit status is pytest's; the closing "reliability" section counts the cases tried.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000, help="per hypothesis property")
    parser.add_argument("-k", default="", help="pytest -k expression to select properties")
    args = parser.parse_args()
    env = dict(os.environ, S3PROXY_FUZZ_EXAMPLES=str(args.examples))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmd += ["tests/reliability/test_fuzz_requests.py"]
    if args.k:
        cmd += ["-k", args.k]
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
