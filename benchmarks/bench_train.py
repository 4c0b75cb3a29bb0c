"""Training time of the smoke preset on the demo data: seconds per iteration, total, peak RSS.

    .venv/bin/python benchmarks/bench_train.py [--quick]

Trains ``helpers.config.build_config("smoke", ...)`` once (what notebook 03 does under
SMOKE=1) on the default demo dataset (created under build/bench/ when missing) and prints the
figures, ending with one ``RESULT {...}`` JSON line. ``--quick`` trains 30 iterations only (no
mIoU figure worth reporting). Measure on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.config import build_config  # noqa: E402
from helpers.demo_data import make_demo_dataset  # noqa: E402
from helpers.train import read_scalars, train  # noqa: E402

DATA = ROOT / "build" / "bench" / "train_demo" / "VOCdevkit" / "VOC2012"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 iterations, timing only")
    args = parser.parse_args()

    import torch

    if not DATA.is_dir():
        make_demo_dataset(DATA)
    overrides = {}
    if args.quick:
        overrides = {"train_cfg.max_iters": 30, "train_cfg.val_interval": 30,
                     "default_hooks.checkpoint.interval": 30}
    with tempfile.TemporaryDirectory() as work_dir:
        cfg = build_config("smoke", DATA, work_dir, **overrides)
        start = time.perf_counter()
        metrics = train(cfg)
        total = time.perf_counter() - start
        train_log, val_log = read_scalars(work_dir)
    # mmengine logs `time` = seconds of the latest iteration, every logger.interval iterations
    per_iter = train_log["time"].iloc[1:].median() if len(train_log) > 1 else float("nan")
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "smoke_iters": int(cfg.train_cfg.max_iters),
        "smoke_sec_per_iter": round(float(per_iter), 3),
        "smoke_total_s": round(total, 1),
        "smoke_val_time_per_image_s": round(float(val_log["time"].median()), 3),
        "smoke_peak_rss_mib": round(peak_rss_mib),
        "smoke_val_mIoU": round(metrics["mIoU"], 2),
        "torch_threads": torch.get_num_threads(),
    }
    print(f"smoke preset: {result['smoke_iters']} iterations in {total:.0f} s "
          f"({per_iter:.2f} s/iteration), peak RSS {peak_rss_mib:.0f} MiB, "
          f"val mIoU {metrics['mIoU']:.1f}")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
