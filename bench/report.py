"""Results as Markdown tables, a PNG chart and JSON, and the targets they are held to."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from bench.run import DIRECT, LOCAL, MOTO, PROXY, PROXY_AUTH, Metric, Results


@dataclass(frozen=True)
class Target:
    """A goal from the benchmarks issue, checked against one metric."""

    metric: str
    #: "ratio": proxy / direct >= value; "added": proxy - direct <= value;
    #: "min" / "max": the proxy's own median against value.
    kind: str
    value: float
    label: str


TARGETS = (
    Target("get_big", "ratio", 0.9, "large GET >= 0.9x direct"),
    Target("put_big", "ratio", 0.9, "large PUT >= 0.9x direct"),
    Target("get_small_c32", "ratio", 0.6, "1 KiB GET, 32 conn >= 0.6x direct"),
    Target("put_small_c32", "ratio", 0.6, "1 KiB PUT, 32 conn >= 0.6x direct"),
    Target("get_small_c1_p50", "added", 0.5, "1 KiB GET, 1 conn: added p50 <= 0.5 ms"),
    Target("put_small_c1_p50", "added", 0.5, "1 KiB PUT, 1 conn: added p50 <= 0.5 ms"),
    Target("rejected_signature", "min", 15_000, "bad signature >= 15,000 req/s"),
    Target("rejected_304", "min", 15_000, "304 Not Modified >= 15,000 req/s"),
    Target("idle_rss", "max", 150, "RSS at idle (worker) <= 150 MB"),
    Target("mem_put", "max", 64, "RSS growth, streamed PUT <= 64 MiB"),
    Target("mem_get", "max", 64, "RSS growth, streamed GET <= 64 MiB"),
    Target("mem_parallel", "max", 512, "RSS growth, 32 concurrent uploads <= 512 MiB"),
)


def _proxy_name(m: Metric) -> str:
    for name in (PROXY, PROXY_AUTH, LOCAL):
        if name in m.values:
            return name
    return next(iter(m.values))


def evaluate(target: Target, results: Results) -> tuple[float, bool] | None:
    """(measured value, met) or None when the metric was not run."""
    m = results.metrics.get(target.metric)
    if m is None:
        return None
    proxy = m.median(_proxy_name(m))
    if proxy is None:
        return None
    if target.kind in ("ratio", "added"):
        direct = m.median(DIRECT)
        if direct is None:
            return None
        if target.kind == "ratio":
            value = proxy / direct if direct else 0.0
            return value, value >= target.value
        value = proxy - direct
        return value, value <= target.value
    if target.kind == "min":
        return proxy, proxy >= target.value
    return proxy, proxy <= target.value


def _num(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _cell(values: list[float] | None) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return _num(med)
    return f"{_num(med)} ({_num(min(values))}-{_num(max(values))})"


def _detail(m: Metric, endpoint: str, what: str) -> list[float] | None:
    return m.details.get(f"{endpoint}|{what}")


def _ratio_cell(m: Metric, a: str, b: str) -> str:
    """median(b)/median(a) and the range of per-round ratios (rounds are paired)."""
    va, vb = m.values.get(a), m.values.get(b)
    if not va or not vb:
        return "-"
    per_round = [y / x for x, y in zip(va, vb, strict=False) if x]
    ma, mb = statistics.median(va), statistics.median(vb)
    if not m.higher_is_better:
        return f"+{_num(mb - ma)} {m.unit}"
    ratio = mb / ma if ma else 0.0
    if len(per_round) > 1:
        return f"{ratio:.2f}x ({min(per_round):.2f}-{max(per_round):.2f})"
    return f"{ratio:.2f}x"


def _targets_table(results: Results) -> list[str]:
    lines = ["| target | measured | met |", "| --- | --- | --- |"]
    for t in TARGETS:
        got = evaluate(t, results)
        if got is None:
            lines.append(f"| {t.label} | not run | - |")
            continue
        value, ok = got
        if t.kind == "ratio":
            shown = f"{value:.2f}x"
        elif t.kind == "added":
            shown = f"{value:+.2f} ms"
        else:
            shown = f"{_num(value)} {results.metrics[t.metric].unit}"
        lines.append(f"| {t.label} | {shown} | {'yes' if ok else '**no**'} |")
    return lines


def _pair_table(results: Results, keys: list[str]) -> list[str]:
    lines = [
        f"| workload | {DIRECT} direct | through {PROXY} | proxy / direct "
        f"| CPU: {DIRECT} / proxy | CPU-bound ceiling | client CPU (cores) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in keys:
        m = results.metrics.get(key)
        if m is None:
            continue
        proxy = _proxy_name(m)
        cpu_cell = f"{_cpu(m, DIRECT)} / {_cpu(m, proxy)}"
        client = [
            v
            for name in (DIRECT, proxy)
            for v in (_detail(m, name, "client_cpu") or [])
            if v is not None
        ]
        client_cell = f"<= {max(client):.2f}" if client else "-"
        ceiling = _ceiling(m, proxy)
        ceiling_cell = f"{ceiling:.2f}x" if ceiling is not None else "-"
        if m.unit == "ms":
            cpu_cell = client_cell = ceiling_cell = "-"
        lines.append(
            f"| {m.title} ({m.unit}) | {_cell(m.values.get(DIRECT))} | "
            f"{_cell(m.values.get(proxy))} | {_ratio_cell(m, DIRECT, proxy)} | "
            f"{cpu_cell} | {ceiling_cell} | {client_cell} |"
        )
    return lines


def _cost(m: Metric, endpoint: str) -> float | None:
    """CPU seconds per unit of work (per request, or per MB)."""
    per_request = _detail(m, endpoint, "server_cpu_us_per_request")
    if per_request:
        return statistics.median(per_request) / 1e6
    cores = _detail(m, endpoint, "server_cores")
    values = m.values.get(endpoint)
    if not cores or not values:
        return None
    return statistics.median([c / v for c, v in zip(cores, values, strict=False) if v] or [0])


def _ceiling(m: Metric, proxy: str) -> float | None:
    """The best proxy/direct ratio when the machine's CPU is the limit.

    Through the proxy every unit of work costs the backend's CPU plus the proxy's; if the
    direct run already used all cores, the proxied run can reach at most
    direct / (direct + proxy) of its rate.
    """
    direct, through = _cost(m, DIRECT), _cost(m, proxy)
    if not direct or through is None:
        return None
    return direct / (direct + through)


def _cpu(m: Metric, endpoint: str) -> str:
    """The endpoint's own CPU: per request (small requests) or per MB (transfers)."""
    per_request = _detail(m, endpoint, "server_cpu_us_per_request")
    if per_request:
        return f"{statistics.median(per_request):,.0f} us/req"
    cores = _detail(m, endpoint, "server_cores")
    values = m.values.get(endpoint)
    if not cores or not values:
        return "-"
    if m.unit == "MB/s":
        per_mb = [c / v * 1000 for c, v in zip(cores, values, strict=False) if v]
        return f"{statistics.median(per_mb):.2f} ms/MB" if per_mb else "-"
    return f"{statistics.median(cores):.2f} cores"


def render_markdown(results: Results) -> str:
    s, env = results.settings, results.environment
    out = [
        f"# s3proxy benchmark results ({s['mode']} mode)",
        "",
        f"{env.get('started', '')}, commit {env.get('commit', '?')}, {env.get('cpus')} CPUs "
        f"({env.get('machine')}), Python {env.get('python')}, Granian {env.get('granian')}, "
        f"{env.get('seaweedfs', '')}, {env.get('wrk', '')}. "
        f"Load average before/after: {env.get('load_before', 0):.2f} / "
        f"{env.get('load_after', 0):.2f}.",
        "",
        f"{s['rounds']} interleaved rounds per workload ({s['seconds']:g} s per wrk run); "
        "cells are median (min-max over rounds); ratios are of medians, with the range "
        "of per-round ratios.",
    ]
    if s.get("proxy_env"):
        out += ["", f"Proxy environment overrides: `{s['proxy_env']}`."]
    out += ["", "## Targets", "", *_targets_table(results)]
    pair_keys = [
        "get_small_c1",
        "get_small_c1_p50",
        "get_small_c1_p99",
        "get_small_c32",
        "get_small_c32_p99",
        "put_small_c1",
        "put_small_c1_p50",
        "put_small_c1_p99",
        "put_small_c32",
        "put_small_c32_p99",
        "get_big",
        "put_big",
        "multipart",
        "list",
        "rejected_304",
    ]
    if any(k in results.metrics for k in pair_keys):
        out += ["", f"## Through the proxy vs {DIRECT} directly", ""]
        out += _pair_table(results, pair_keys)
        out += [
            "",
            "CPU: CPU time of the server's own processes (SeaweedFS; the proxy without "
            "SeaweedFS) per request or per MB moved, which noise on the machine moves far "
            "less than throughput. CPU-bound ceiling: direct / (direct + proxy) CPU per unit "
            "of work, the best ratio possible when the direct run already keeps every core "
            "busy (SeaweedFS, the proxy and the client share this machine's cores). Client "
            "CPU: the load generator's cores in use (1.0 would mean the client is the limit).",
        ]
    rej = results.metrics.get("rejected_signature")
    if rej is not None:
        out += [
            "",
            "## Rejected without touching the backend",
            "",
            "| workload | requests/s | proxy CPU |",
            "| --- | --- | --- |",
            f"| {rej.title} | {_cell(rej.values.get(PROXY_AUTH))} | "
            f"{_cpu_us(_detail(rej, PROXY_AUTH, 'server_cpu_us_per_request'))} |",
        ]
    mem_keys = ["idle_rss", "idle_rss_total", "idle_pss_total", "mem_put", "mem_get"]
    mem_keys.append("mem_parallel")
    if any(k in results.metrics for k in mem_keys):
        out += [
            "",
            "## Proxy memory",
            "",
            "| measure | value | throughput |",
            "| --- | --- | --- |",
        ]
        for key in mem_keys:
            m = results.metrics.get(key)
            if m is None:
                continue
            rate = _detail(m, PROXY, "mb_per_s")
            rate_cell = f"{statistics.median(rate):,.0f} MB/s" if rate else ""
            out.append(f"| {m.title} | {_cell(m.values.get(PROXY))} {m.unit} | {rate_cell} |")
    local_keys = ["local_get_small", "local_put_small", "local_get_big", "local_put_big"]
    if any(k in results.metrics for k in local_keys):
        out += [
            "",
            "## The local backend vs peer local S3 servers",
            "",
            f"| workload | {DIRECT} | {MOTO} | {LOCAL} | {LOCAL} / {DIRECT} |",
            "| --- | --- | --- | --- | --- |",
        ]
        for key in local_keys:
            m = results.metrics.get(key)
            if m is None:
                continue
            out.append(
                f"| {m.title} ({m.unit}) | {_cell(m.values.get(DIRECT))} | "
                f"{_cell(m.values.get(MOTO))} | {_cell(m.values.get(LOCAL))} | "
                f"{_ratio_cell(m, DIRECT, LOCAL)} |"
            )
    if results.notes:
        out += ["", "## Notes", "", *(f"- {n}" for n in results.notes)]
    return "\n".join(out) + "\n"


def _cpu_us(values: list[float] | None) -> str:
    return f"{statistics.median(values):,.0f} us/req" if values else "-"


def render_chart(results: Results, path: Path) -> None:
    """Bars of proxy/direct ratios against their targets, and the local comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratio_keys = [
        ("get_small_c1", None),
        ("get_small_c32", 0.6),
        ("put_small_c1", None),
        ("put_small_c32", 0.6),
        ("get_big", 0.9),
        ("put_big", 0.9),
        ("multipart", None),
        ("list", None),
        ("rejected_304", None),
    ]
    bars = []
    for key, goal in ratio_keys:
        m = results.metrics.get(key)
        if m is None:
            continue
        d, p = m.median(DIRECT), m.median(_proxy_name(m))
        if d and p is not None:
            bars.append((m.title, p / d, goal))
    local = [
        results.metrics[k]
        for k in ("local_get_small", "local_put_small", "local_get_big", "local_put_big")
        if k in results.metrics
    ]
    panels = 1 + bool(local)
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 5), squeeze=False)
    ax = axes[0][0]
    if bars:
        ys = range(len(bars))
        colors = [
            "#4c72b0" if goal is None else ("#55a868" if r >= goal else "#c44e52")
            for _, r, goal in bars
        ]
        ax.barh(list(ys), [r for _, r, _ in bars], color=colors)
        for y, (_, r, goal) in zip(ys, bars, strict=True):
            ax.text(r + 0.01, y, f"{r:.2f}x", va="center", fontsize=8)
            if goal is not None:
                ax.plot([goal, goal], [y - 0.4, y + 0.4], color="black", linewidth=2)
        ax.set_yticks(list(ys), [t for t, _, _ in bars], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(f"throughput through {PROXY} / {DIRECT} direct (black: target)")
        ax.set_title(f"Proxy cost ({results.settings['mode']} run)")
    if local:
        ax = axes[0][1]
        names = [DIRECT, MOTO, LOCAL]
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            vals = []
            for m in local:
                base, v = m.median(DIRECT), m.median(name)
                vals.append(v / base if base and v is not None else 0.0)
            ax.barh([y + i * width for y in range(len(local))], vals, height=width, label=name)
        ax.set_yticks(
            [y + width for y in range(len(local))],
            [f"{m.title} ({m.unit})" for m in local],
            fontsize=8,
        )
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel(f"throughput relative to {DIRECT} (log scale)")
        ax.set_title("Local servers")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: Results, out: Path) -> list[Path]:
    """results.json, results.md and chart.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(results.to_json(), indent=1) + "\n")
    md_path = out / "results.md"
    md_path.write_text(render_markdown(results))
    png_path = out / "chart.png"
    render_chart(results, png_path)
    return [md_path, png_path, json_path]


def load(out: Path) -> Results:
    return Results.from_json(json.loads((out / "results.json").read_text()))
