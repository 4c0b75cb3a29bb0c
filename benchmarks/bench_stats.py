"""How long the class-statistics scan of notebook 01 takes over a VOC2012-sized split.

VOC2012 has 2,913 segmentation masks (1,464 train + 1,449 val). The benchmark generates that
many demo masks once into build/bench/ (VOC sizes, about a minute), then times
`voc_stats.scan_masks` over trainval (serial and with 2 worker processes) and the full
`voc.check_dataset`.

    .venv/bin/python benchmarks/bench_stats.py [--quick]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars off: the output is the figures

from common import ROOT, emit, summarize, time_runs  # noqa: E402

from helpers import voc, voc_stats  # noqa: E402
from helpers.demo_data import make_demo_dataset  # noqa: E402


def dataset(quick: bool) -> Path:
    """The benchmark dataset (made on first use): 2,913 masks, or 300 with --quick."""
    n_train, n_val = (150, 150) if quick else (1464, 1449)
    root = ROOT / "build" / "bench" / f"voc_{n_train + n_val}" / "VOCdevkit" / "VOC2012"
    if not voc.split_file(root, "trainval").is_file():
        make_demo_dataset(root, n_train=n_train, n_val=n_val, seed=0, n_unlabelled=0)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 masks, one run")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = dataset(args.quick)
    n = len(voc.split_ids(root, "trainval"))
    runs = 1 if args.quick else args.runs
    serial = time_runs(lambda: voc_stats.scan_masks(root, "trainval", workers=1), runs)
    parallel = time_runs(lambda: voc_stats.scan_masks(root, "trainval", workers=2), runs)
    check = time_runs(lambda: voc.check_dataset(root, splits=("train", "val"), workers=2), runs,
                      warmup=0)
    emit({
        f"statistics scan, {n} masks, 1 process": summarize(serial, "s"),
        f"statistics scan, {n} masks, 2 processes": summarize(parallel, "s"),
        "statistics scan rate, 2 processes": summarize([n / t for t in parallel], "masks/s"),
        f"check_dataset (every JPEG and mask), {n} pairs": summarize(check, "s"),
    })


if __name__ == "__main__":
    main()
