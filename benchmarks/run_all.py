"""Run every benchmark and write benchmarks/RESULTS.md and results.json (`make bench`).

    .venv/bin/python benchmarks/run_all.py [--quick] [--only inference train ...]

Each `bench_*.py` prints one `RESULT {json}` line (see common.py); this script runs them one after
the other (never in parallel: they time the same cores), keeps their figures with the machine's
description, and draws the latency comparison into images/bench_latency.png.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, machine

HERE = Path(__file__).resolve().parent
ORDER = ["inference", "train", "stats", "notebooks"]  # every bench_<name>.py, in this order


def run_bench(name: str, quick: bool) -> dict:
    """Run benchmarks/bench_<name>.py and return its parsed RESULT line."""
    cmd = [sys.executable, str(HERE / f"bench_{name}.py")] + (["--quick"] if quick else [])
    print(f"▶ {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    sys.stdout.write(proc.stdout[-3000:])
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"bench_{name}.py failed with exit status {proc.returncode}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"bench_{name}.py printed no RESULT line")
    result = json.loads(lines[-1][len("RESULT "):])
    result["wall_s"] = time.perf_counter() - start
    return result


def fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def markdown(results: dict, info: dict, quick: bool) -> str:
    """RESULTS.md: machine, then one table per benchmark."""
    out = ["# Benchmark results", "",
           f"Written by `make bench` (`benchmarks/run_all.py{' --quick' if quick else ''}`) on "
           f"{time.strftime('%Y-%m-%d')}. Median and spread (min–max) over the runs shown.", "",
           "| machine | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in info.items()]
    out += ["", "![latency](../images/bench_latency.png)", ""]
    for name, result in results.items():
        out += [f"## {name}", "", "| figure | median | min – max | runs | unit |",
                "|---|---|---|---|---|"]
        for fig, s in result["figures"].items():
            out.append(f"| {fig} | {fmt(s['median'])} | {fmt(s['min'])} – {fmt(s['max'])} "
                       f"| {s['runs']} | {s['unit']} |")
        notes = result.get("notes")
        if notes:
            out += ["", notes]
        out.append("")
    return "\n".join(out)


def plot_latency(results: dict, path: Path) -> Path | None:
    """Grouped bars: latency per engine at each input size (figures named 'latency SIZE ENGINE')."""
    figures = results.get("inference", {}).get("figures", {})
    rows = [(m.group(1), m.group(2), s) for name, s in figures.items()
            if (m := re.fullmatch(r"latency (\S+) (\S+)", name))]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(r[0] for r in rows))
    engines = list(dict.fromkeys(r[1] for r in rows))
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.5 * len(sizes), 3.6), squeeze=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        stats = {e: s for sz, e, s in rows if sz == size}
        med = [stats[e]["median"] for e in engines]
        err = [[m - stats[e]["min"] for e, m in zip(engines, med, strict=True)],
               [stats[e]["max"] - m for e, m in zip(engines, med, strict=True)]]
        bars = ax.bar(engines, med, yerr=err, capsize=4, color=["#8c8c8c", "#4c72b0", "#55a868"])
        for bar, m, e in zip(bars, med, engines, strict=True):
            ax.annotate(f"{m:.2f} s\n{med[0] / m:.1f}×",
                        (bar.get_x() + bar.get_width() / 2, stats[e]["max"]),
                        xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                        fontsize=8)
        ax.set_title(f"PSPNet R50-D8, {size}")
        ax.set_ylabel("seconds per image (median)")
        ax.set_ylim(0, max(med) * 1.35)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller sizes")
    parser.add_argument("--only", nargs="*", choices=ORDER, help="run only these benchmarks")
    args = parser.parse_args()
    results_path = HERE / "results.json"
    previous = json.loads(results_path.read_text()) if results_path.exists() else {}
    results = previous.get("results", {}) if args.only else {}
    for name in args.only or ORDER:
        results[name] = run_bench(name, args.quick)
    results = {name: results[name] for name in ORDER if name in results}
    info = machine()
    results_path.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    plot_latency(results, ROOT / "images" / "bench_latency.png")
    (HERE / "RESULTS.md").write_text(markdown(results, info, args.quick))
    print(f"wrote {HERE / 'RESULTS.md'} and {results_path}")


if __name__ == "__main__":
    main()
