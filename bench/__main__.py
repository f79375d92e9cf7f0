"""``python -m bench``: run the benchmarks and write bench/results/.

python -m bench --quick                 # < 5 minutes, smaller sizes
python -m bench                         # full sizes (20-30 minutes)
python -m bench --only small,rejected   # some groups
python -m bench --profile get_small_c32 # py-spy profile of the proxy (last round)
python -m bench report                  # re-render results.md / chart.png from JSON
python -m bench check                   # are the tools installed?
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from bench import profiling, report, run, servers, wrk

RESULTS = Path(__file__).resolve().parent / "results"


def _check() -> list[str]:
    missing = []
    for probe in (servers.weed_executable, wrk.wrk_executable, profiling.py_spy):
        try:
            probe()
        except servers.ToolMissing as exc:
            missing.append(str(exc))
    if servers.venv_tool("moto_server") is None:
        missing.append("moto_server not found (local group): `uv pip install 'moto[server]'`")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        missing.append("matplotlib not found: `uv pip install matplotlib`")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="run", choices=["run", "report", "check"])
    parser.add_argument("--quick", action="store_true", help="small sizes, under 5 minutes")
    parser.add_argument("--rounds", type=int, help="rounds per workload")
    parser.add_argument("--seconds", type=float, help="duration of each wrk run")
    parser.add_argument("--only", help=f"comma-separated groups: {','.join(run.GROUPS)}")
    parser.add_argument("--skip", help="comma-separated groups to leave out")
    parser.add_argument(
        "--profile", help="workload keys to profile with py-spy (comma-separated, or 'all')"
    )
    parser.add_argument(
        "--proxy-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the proxies (e.g. S3PROXY_LOGGING__LEVEL=warning)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a setting of bench/run.py Settings, e.g. stream_size=1073741824",
    )
    parser.add_argument("--out", type=Path, help="results directory (default bench/results)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a target that ran is not met"
    )
    args = parser.parse_args(argv)

    out = args.out or (RESULTS / "quick" if args.quick else RESULTS)
    if args.command == "check":
        missing = _check()
        for line in missing:
            print(line)
        return 1 if missing else 0
    if args.command == "report":
        results = report.load(out)
        for path in report.write(results, out):
            print(path)
        return 0

    missing = _check()
    if missing:
        for line in missing:
            print(f"python -m bench: {line}", file=sys.stderr)
        return 2
    settings = run.QUICK if args.quick else run.FULL
    groups = list(settings.groups)
    if args.only:
        groups = [g.strip() for g in args.only.split(",") if g.strip()]
    if args.skip:
        skipped = {g.strip() for g in args.skip.split(",")}
        groups = [g for g in groups if g not in skipped]
    unknown = set(groups) - set(run.GROUPS)
    if unknown:
        parser.error(f"unknown groups: {', '.join(sorted(unknown))}")
    # Always in the documented order (the local group stops the SeaweedFS-backed proxy).
    groups = sorted(set(groups), key=run.GROUPS.index)
    changes: dict[str, object] = {"groups": tuple(groups)}
    if args.rounds:
        changes["rounds"] = args.rounds
        changes["local_rounds"] = min(args.rounds, settings.local_rounds)
    if args.seconds:
        changes["seconds"] = args.seconds
    if args.profile:
        changes["profile"] = tuple(p.strip() for p in args.profile.split(","))
    fields = {f.name: f.type for f in dataclasses.fields(settings)}
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in fields or name in ("groups", "profile", "mode"):
            parser.error(f"--set: unknown setting {name!r}")
        changes[name] = float(value) if fields[name] == "float" else int(value)
    settings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
    env = dict(item.split("=", 1) for item in args.proxy_env)
    results = run.execute(
        settings,
        proxy_env=env,
        profile_dir=out / "profiles" if args.profile else None,
        keep=args.keep,
    )
    paths = report.write(results, out)
    print(report.render_markdown(results))
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    if args.strict:
        failed = [t for t in report.TARGETS if (got := report.evaluate(t, results)) and not got[1]]
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
