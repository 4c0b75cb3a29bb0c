"""Train with mmengine's ``Runner`` and read the run's curves (notebook 03).

``train(cfg)`` is ``Runner.from_cfg(cfg).train()`` plus three things a course needs: mixed
precision on a GPU (``AmpOptimWrapper``), unique names for mmengine's global objects so a
notebook can train twice in one kernel (both in ``prepare_config``), and the final validation
metrics as a dict.

Command line (one process, or one per GPU under torchrun)::

    python -m helpers.train --config work_dirs/pspnet_voc12/pspnet_voc12.py [--resume]
    torchrun --nproc_per_node=N -m helpers.train --config FILE --launcher pytorch

``--resume`` (``resume=True``) continues from the latest checkpoint in the config's ``work_dir``
even when the config sets ``load_from`` (mmengine alone would resume from ``load_from``), and
starts a new run from ``load_from``'s weights while ``work_dir`` holds no checkpoint yet.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from mmengine.config import Config, DictAction
from mmengine.runner import Runner
from mmengine.runner.checkpoint import find_latest_checkpoint

from helpers.run_config import run_config

__all__ = [
    "build_runner", "main", "prepare_config", "read_scalars", "resume_from", "train", "val_metrics",
]

def prepare_config(cfg: Config, amp: bool | None = None) -> Config:
    """A copy of ``cfg`` ready for ``Runner.from_cfg(...).train()`` (notebook 03's plumbing).

    Checks the split files, then :func:`helpers.run_config.run_config`: mixed precision on a
    GPU, and names of its own for mmengine's global objects (logger, message hub, visualizer),
    so that a second run in the same kernel does not write into the first run's folder. mmseg's
    ``SegVisualizationHook`` is left out when it would draw nothing (``draw=False``, the shipped
    default): it only warns that it does not.
    ``cfg.resume`` is kept as it is.

    Args:
        cfg: a training config (``helpers.config.build_config``).
        amp: mixed precision (``AmpOptimWrapper``); None = on when CUDA is available.
    """
    import helpers.checkpoint  # noqa: F401  (registers the safe checkpoint loader)
    from helpers.voc import SPLIT_DIR, split_ids

    for loader in ("train_dataloader", "val_dataloader"):
        dataset = cfg.get(loader, {}).get("dataset", {})
        ann_file = Path(dataset.get("ann_file") or "")
        if dataset.get("type") == "PascalVOCDataset" and ann_file.parent == Path(SPLIT_DIR):
            split_ids(dataset.data_root, ann_file.stem)  # a clear error instead of an assert
    cfg = run_config(cfg, amp)
    hooks = cfg.get("default_hooks") or {}
    if not (hooks.get("visualization") or {"draw": True}).get("draw", False):
        # mmseg's SegVisualizationHook with draw=False (the shipped default) draws nothing and
        # only warns, on stderr, that it does not: a run in a notebook goes without it
        hooks.pop("visualization")
    return cfg


def resume_from(cfg: Config) -> str | None:
    """The checkpoint a resumed run of ``cfg`` continues from: the latest one in ``cfg.work_dir``.

    That is the file named in ``<work_dir>/last_checkpoint``, which mmengine's CheckpointHook
    rewrites after every checkpoint it saves (read with mmengine's ``find_latest_checkpoint``);
    None while the work dir holds no checkpoint yet. ``cfg.load_from`` plays no part here.
    """
    return find_latest_checkpoint(str(cfg.work_dir))


def build_runner(cfg: Config, resume: bool = False, amp: bool | None = None) -> Runner:
    """``Runner.from_cfg(prepare_config(cfg))``, ready for ``.train()``.

    With ``resume=True`` the run continues from the latest checkpoint in ``cfg.work_dir``
    (:func:`resume_from`): weights, optimizer, scheduler, iteration counter and log history,
    whether or not ``cfg.load_from`` is set. mmengine 0.10.7's Runner alone would, with both
    ``resume`` and ``load_from`` set, resume from ``load_from`` (in the ``seed`` preset the
    Cityscapes checkpoint, which fails with ``KeyError: 'epoch'``), and so does mmseg's
    ``tools/train.py --resume``; here ``load_from`` is replaced by the work dir's checkpoint for
    this run. While ``cfg.work_dir`` holds no checkpoint yet, the run starts fresh at iteration
    0, with its weights initialised from ``cfg.load_from`` when that is set (as without
    ``resume``), so a first run and its restarts can share one command line. The runner's log
    says which of the two happened.

    Args:
        cfg: a training config (``helpers.config.build_config``); not modified.
        resume: continue from the latest checkpoint in ``cfg.work_dir``, as described above.
            False: a new run (from ``cfg.load_from``'s weights when set); ``cfg.resume`` is
            ignored either way.
        amp: mixed precision (``AmpOptimWrapper``); None = on when CUDA is available.
    """
    cfg = prepare_config(cfg, amp=amp)
    latest = resume_from(cfg) if resume else None
    if latest is not None:
        cfg.load_from = latest  # mmengine resumes from load_from when both are set
    cfg.resume = latest is not None
    runner = Runner.from_cfg(cfg)
    if latest is not None:
        runner.logger.info(f"--resume: continuing from {latest}, the latest checkpoint in "
                           f"{runner.work_dir}")
    elif resume:
        start = f"initialised from load_from={cfg.load_from}" if cfg.load_from else \
            "from the model's initial weights"
        runner.logger.info(f"--resume: no checkpoint in {runner.work_dir} yet; a new run "
                           f"starts at iteration 0, {start}")
    return runner


def val_metrics(runner: Runner) -> dict[str, float]:
    """The latest validation metrics a runner logged: ``{"aAcc": .., "mIoU": .., "mAcc": ..}``."""
    return {
        key.split("/", 1)[1]: float(buffer.current())
        for key, buffer in runner.message_hub.log_scalars.items()
        if key.startswith("val/") and not key.endswith("time")
    }


def train(cfg: Config, resume: bool = False, amp: bool | None = None) -> dict[str, float]:
    """Train ``cfg`` (GPU with AMP when present, else CPU); return the final val metrics.

    ``resume=True`` continues from the latest checkpoint in ``cfg.work_dir``, or starts a new
    run from ``cfg.load_from`` while there is none (see :func:`build_runner`).
    """
    runner = build_runner(cfg, resume=resume, amp=amp)
    runner.train()
    return val_metrics(runner)


def read_scalars(work_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run's logged scalars as (train, val) tables indexed by iteration.

    Reads every ``<timestamp>/vis_data/scalars.json`` that mmengine's LocalVisBackend wrote in
    ``work_dir`` (a resumed run adds a folder); later runs win for repeated iterations.
    """
    files = sorted(Path(work_dir).glob("*/vis_data/scalars.json"))
    if not files:
        raise FileNotFoundError(
            f"no */vis_data/scalars.json in {work_dir}: train first (notebook 03 or "
            "`python -m helpers.train --config FILE`)."
        )
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line]
    table = pd.DataFrame(rows)
    is_val = table["mIoU"].notna() if "mIoU" in table else pd.Series(False, index=table.index)

    def tidy(part: pd.DataFrame) -> pd.DataFrame:
        part = part.dropna(axis=1, how="all").drop_duplicates("step", keep="last")
        return part.set_index("step").sort_index().rename_axis("iter")

    return tidy(table[~is_val]), tidy(table[is_val])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.train --config FILE [--launcher none|pytorch] [--resume]``."""
    from helpers.distributed import SUPPORTED_LAUNCHERS, LauncherError, configure, launch_help

    parser = argparse.ArgumentParser(
        prog="python -m helpers.train",
        description="Train a segmentation config with mmengine's Runner (GPU + AMP when "
        "available, else CPU); prints the final validation metrics as one JSON line.",
        epilog=launch_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="config file (helpers.config writes one)")
    parser.add_argument("--launcher", default="none",
                        help=f"one of {', '.join(SUPPORTED_LAUNCHERS)}; 'pytorch' for one "
                        "process per GPU started by torchrun (default: none)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint in the work dir (its "
                        "last_checkpoint file), even when the config sets load_from; while the "
                        "work dir has no checkpoint yet, start a new run (from load_from's "
                        "weights when set)")
    parser.add_argument("--work-dir", help="override the config's work_dir")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="key=value overrides, e.g. train_cfg.max_iters=100")
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0,
                        help=argparse.SUPPRESS)  # torch.distributed.launch passes it
    args = parser.parse_args(argv)

    from mmengine.dist import is_main_process

    from helpers.config import load_config

    try:
        cfg = load_config(args.config)
    except FileNotFoundError as err:
        parser.exit(2, f"error: {err}\n")
    cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    try:
        cfg = configure(cfg, args.launcher)
    except LauncherError as err:
        parser.exit(2, f"error: {err}\n")
    metrics = train(cfg, resume=args.resume)
    if is_main_process():
        print(json.dumps({"val": metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
