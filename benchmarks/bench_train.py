"""Training time of the smoke preset on the demo data: seconds per iteration, total, peak memory.

    .venv/bin/python benchmarks/bench_train.py [--quick] [--runs N]

Each run trains ``build_config("smoke", ...)`` (what notebook 03 does under SMOKE=1) in a fresh
process on the default demo dataset (created under build/bench/ when missing), so that peak
memory is per run. Uses the GPU when there is one (then it also reports iterations per second
there). Measure on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

from common import ROOT, emit, summarize

DATA = ROOT / "build" / "bench" / "train_demo" / "VOCdevkit" / "VOC2012"


def one_run(quick: bool) -> dict:
    """Train once in this process and return its figures."""
    import torch

    from helpers.config import build_config
    from helpers.train import read_scalars, train

    overrides = {"train_cfg.max_iters": 30, "train_cfg.val_interval": 30,
                 "default_hooks.checkpoint.interval": 30} if quick else {}
    with tempfile.TemporaryDirectory() as work_dir:
        cfg = build_config("smoke", DATA, work_dir, **overrides)
        start = time.perf_counter()
        metrics = train(cfg)
        total = time.perf_counter() - start
        train_log, val_log = read_scalars(work_dir)
    # mmengine logs `time` = seconds of the latest iteration, every logger.interval iterations
    return {"iters": int(cfg.train_cfg.max_iters), "total": total,
            "per_iter": float(train_log["time"].iloc[1:].median()),
            "val_per_image": float(val_log["time"].median()),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "mIoU": float(metrics["mIoU"]),
            "device": "cuda" if torch.cuda.is_available() else "cpu"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of 30 iterations")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.quick)))
        return
    if not DATA.is_dir():
        from helpers.demo_data import make_demo_dataset

        make_demo_dataset(DATA)
    runs = []
    for _ in range(1 if args.quick else args.runs):
        cmd = [sys.executable, __file__, "--one"] + (["--quick"] if args.quick else [])
        out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    dev, iters = runs[0]["device"], runs[0]["iters"]
    emit({
        f"smoke training, {iters} iterations, total ({dev})": summarize(
            [r["total"] for r in runs], "s"),
        f"smoke training, seconds per iteration ({dev})": summarize(
            [r["per_iter"] for r in runs], "s"),
        f"smoke training, iterations per second ({dev})": summarize(
            [1 / r["per_iter"] for r in runs], "it/s"),
        "smoke validation, seconds per image": summarize([r["val_per_image"] for r in runs], "s"),
        "smoke training, peak memory (RSS)": summarize([r["peak_rss_mib"] for r in runs], "MiB"),
        "smoke training, validation mIoU": summarize([r["mIoU"] for r in runs], "%"),
    })


if __name__ == "__main__":
    main()
