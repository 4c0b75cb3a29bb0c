"""A training config ready for a Runner: ``run_config(cfg)`` (the plumbing of notebook 03).

A leaf module: it imports only mmengine and torch, so the grader can give it to notebook 03's
resume task as a course object its text names (teacher/tasks/, ``COURSE``), where the rest of
the course's package does not exist. :func:`helpers.train.prepare_config` adds the course's own
checks on top.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

from mmengine.config import Config

__all__ = ["run_config"]

_RUN_IDS = itertools.count()


def run_config(cfg: Config, amp: bool | None = None) -> Config:
    """A copy of ``cfg`` for ``Runner.from_cfg(...).train()``: without a file name, with mixed
    precision on a GPU (``amp`` None: when CUDA is available), and with names of its own for
    mmengine's global objects (logger, message hub, visualizer), so that a second run in the same
    kernel does not write into the first run's folder. ``cfg.resume`` is kept as it is."""
    import torch

    # A copy without a file name: the Runner then records the config it ran as
    # <work_dir>/<timestamp>.py, next to that run's log folder, and leaves the source file alone.
    cfg = Config(copy.deepcopy(cfg.to_dict()),
                 format_python_code=getattr(cfg, "_format_python_code", True))
    if amp is None:
        amp = torch.cuda.is_available()
    if amp and cfg.optim_wrapper.get("type", "OptimWrapper") == "OptimWrapper":
        cfg.optim_wrapper.update(type="AmpOptimWrapper", loss_scale="dynamic")
    # mmengine keeps its Visualizer, MessageHub and logger as global instances by name; a second
    # run in the same process must not reuse the first run's (and write into its folder).
    tag = f"{Path(cfg.work_dir).name}_run{next(_RUN_IDS)}"
    cfg.experiment_name = tag
    if cfg.get("visualizer"):
        cfg.visualizer.name = f"visualizer_{tag}"
    return cfg
