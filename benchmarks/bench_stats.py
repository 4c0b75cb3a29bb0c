"""How long the class-statistics scan of notebook 01 takes over a VOC2012-sized split.

VOC2012 has 2,913 segmentation masks (1,464 train + 1,449 val). The benchmark generates that
many demo masks once into build/bench/ (VOC sizes, about a minute), then times `voc.scan_masks` over
trainval (serial and with 2 worker processes) and the full `voc.check_dataset`.

    .venv/bin/python benchmarks/bench_stats.py [--quick]

The last line printed is `RESULT {...}` (figure name -> value) for the aggregator.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars off: the output is the figures

from helpers import voc  # noqa: E402
from helpers.demo_data import make_demo_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def dataset(quick: bool) -> Path:
    """The benchmark dataset (made on first use): 2,913 masks, or 300 with --quick."""
    n_train, n_val = (150, 150) if quick else (1464, 1449)
    root = ROOT / "build" / "bench" / f"voc_{n_train + n_val}" / "VOCdevkit" / "VOC2012"
    if not voc.split_file(root, "trainval").is_file():
        make_demo_dataset(root, n_train=n_train, n_val=n_val, seed=0, n_unlabelled=0)
    return root


def timed(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls (the least disturbed by other load on the machine)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 masks, one repeat")
    args = parser.parse_args()
    root = dataset(args.quick)
    n = len(voc.split_ids(root, "trainval"))
    repeats = 1 if args.quick else 3
    voc.scan_masks(root, "trainval", workers=1)  # warm the page cache and imports
    serial = timed(lambda: voc.scan_masks(root, "trainval", workers=1), repeats)
    parallel = timed(lambda: voc.scan_masks(root, "trainval", workers=2), repeats)
    check = timed(lambda: voc.check_dataset(root, splits=("train", "val"), workers=2), 1)
    print(f"{n} masks, {os.cpu_count()} CPUs")
    print(f"scan_masks, 1 process  : {serial:6.2f} s ({n / serial:6.0f} masks/s)")
    print(f"scan_masks, 2 processes: {parallel:6.2f} s ({n / parallel:6.0f} masks/s)")
    print(f"check_dataset, 2 proc. : {check:6.2f} s (decodes every JPEG and mask)")
    result = {
        "stats_masks": n,
        "stats_scan_serial_s": round(serial, 3),
        "stats_scan_2proc_s": round(parallel, 3),
        "stats_scan_masks_per_s": round(n / parallel, 1),
        "check_dataset_2proc_s": round(check, 3),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
