"""Run every benchmark and write benchmarks/RESULTS.md and results.json (`make bench`).

    .venv/bin/python benchmarks/run_all.py [--quick] [--only inference accuracy ...] [--render]

Each `bench_*.py` prints one `RESULT {json}` line (see common.py); this script runs them one after
the other (never in parallel: they time the same cores), keeps their figures with the machine's
description, joins limits, latency and mIoU into the per-path summary (summary.py), and writes
RESULTS.md and images/bench_latency.png (report.py). results.json keeps one run per CPU family
("AMD Zen 5", "Intel with AMX", ...: ``helpers.bench_results.cpu_family``); a run replaces only
its own family's entry, and RESULTS.md lists every family's run beside this one. The GPU
figures of bench_gpu.py, measured on a machine with a GPU, are shown from
benchmarks/results_gpu.json when that file exists.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, machine
from report import markdown, plot_latency, readme_rows, rewrite_readme
from summary import summarize_run

from helpers.bench_results import cpu_family, load_runs, store_run

HERE = Path(__file__).resolve().parent
#: every CPU bench_<name>.py, in this order: the limits first, then the paths measured against them
ORDER = ["limits", "inference", "int8", "accuracy", "train", "stats", "notebooks"]
GPU_RESULTS = HERE / "results_gpu.json"
#: int8 kernel paths measured on an Intel CPU with AMX (int8_kernels.py, bench_limits.py)
AMX_RESULTS = HERE / "results_int8_amx.json"
#: grading figures of bench_grade.py (run on its own: it grades a class several times)
GRADE_RESULTS = HERE / "results_grade.json"

def run_bench(name: str, quick: bool) -> dict:
    """Run benchmarks/bench_<name>.py; its parsed RESULT line, or {"error": ...} if it failed.

    One failed benchmark does not lose the others' figures: the page then says which failed.
    """
    cmd = [sys.executable, str(HERE / f"bench_{name}.py")] + (["--quick"] if quick else [])
    print(f"▶ {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    sys.stdout.write("\n".join(ln for ln in proc.stdout.splitlines()[-40:]
                                if not ln.startswith("RESULT ")) + "\n")
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-5000:])
        why = f"exit status {proc.returncode}" if proc.returncode else "no RESULT line"
        print(f"bench_{name}.py failed ({why})", file=sys.stderr, flush=True)
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"figures": {}, "error": f"bench_{name}.py failed ({why}): {tail}",
                "wall_s": time.perf_counter() - start}
    result = json.loads(lines[-1][len("RESULT "):])
    result["wall_s"] = time.perf_counter() - start
    result["load_average"] = os.getloadavg()  # 1, 5, 15 min: did other work share the cores?
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller sizes")
    parser.add_argument("--only", nargs="*", choices=ORDER, help="run only these benchmarks")
    parser.add_argument("--render", action="store_true",
                        help="run nothing: rewrite RESULTS.md and the plot from results.json")
    parser.add_argument("--family", help="with --render: the CPU family whose run RESULTS.md "
                        "and the README show (default: the first reference family with a run)")
    args = parser.parse_args()
    results_path = HERE / "results.json"
    info = machine()
    runs = load_runs(results_path)
    stored = {f: run for f, run in runs.items() if "missing" not in run}
    family = cpu_family(info)
    if args.render:
        family = args.family or next(iter(stored), family)
    previous = stored.get(family, {})
    results = previous.get("results", {}) if args.only or args.render else {}
    for name in [] if args.render else args.only or ORDER:
        results[name] = run_bench(name, args.quick)
    results = {name: results[name] for name in ORDER if name in results}
    info = previous.get("machine", {}) if args.render else info
    summary = summarize_run(results)
    store_run({"machine": info, "summary": summary, "results": results}, results_path)
    runs = load_runs(results_path)
    plot_latency(summary, ROOT / "images" / "bench_latency.png")
    gpu, amx, grade = (json.loads(p.read_text()) if p.exists() else None
                       for p in (GPU_RESULTS, AMX_RESULTS, GRADE_RESULTS))
    (HERE / "RESULTS.md").write_text(markdown(results, info, summary, args.quick, gpu, amx,
                                              grade, runs))
    print(f"wrote {HERE / 'RESULTS.md'} and {results_path} (entry {family!r})")
    if not args.quick and rewrite_readme(ROOT / "README.md", readme_rows(results, info, summary)):
        print(f"rewrote the figures in {ROOT / 'README.md'}")
    failed = [name for name, result in results.items() if result.get("error")]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (see RESULTS.md)")


if __name__ == "__main__":
    main()
