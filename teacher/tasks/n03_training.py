"""Notebook 03's tasks: their givens and hidden probes (run inside the sandbox by the harness).

A task module (see teacher/tasks/__init__.py) imports only libraries at its top: it is compiled
inside the grading sandbox, where the course's package does not exist.

The grader trains once, outside the sandbox, with the course's own code (:func:`fixtures`): a
tiny run of the smoke preset (4 iterations at a small crop, a validation every 2) whose folder,
config (``run.py``) and scalars the best-iteration and resume tasks read, and the config of the
hook task's short runs (``hook.py``). Inside the sandbox only mmengine trains: the hook probe
runs its own two short runs with the answer's hook attached, and the resume task's answer
resumes a writable copy of the grader's run.
"""

import copy
import json
import numbers
import os
import random
import re
import shutil
from pathlib import Path

NOTEBOOK = "03_training"
PRELOAD = ("numpy", "pandas", "torch", "mmengine.config", "mmengine.runner", "mmengine.hooks",
           "mmengine.registry", "mmseg.registry", "mmseg.utils", "mmseg.models", "mmseg.datasets",
           "mmseg.evaluation")

#: The grader's tiny run: iterations, validation and checkpoint interval (fixtures()).
RUN_ITERS, RUN_VAL = 4, 2
#: How many iterations the resume task's answer trains beyond the grader's run (the notebook: 10).
EXTRA_ITERS = 2
#: The hook probe: a new run of HOOK_FIRST iterations at HOOK_LR, then resumed up to HOOK_THEN.
HOOK_FIRST, HOOK_THEN, HOOK_LR = 3, 5, 0.02


# ----------------------------------------------------------------------------------------------
# Fixtures: made once per grading run, outside the sandbox, with the course's own code


def _shrink(node, crop=(48, 48), scale=(96, 48)) -> None:
    """A smaller crop and image scale everywhere in a config dict (pipelines, preprocessors)."""
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "RandomCrop":
            node["crop_size"] = crop
        elif kind in ("RandomResize", "Resize"):
            node["scale"] = scale
        if "size" in node and kind in (None, "SegDataPreProcessor"):
            node["size"] = crop
        for value in node.values():
            _shrink(value, crop, scale)
    elif isinstance(node, list | tuple):
        for value in node:
            _shrink(value, crop, scale)


def _plain_config(cfg):
    """`cfg` as the sandbox can load it: no course import, float32 on any device."""
    cfg.pop("custom_imports", None)  # helpers.checkpoint: not in the sandbox
    cfg.optim_wrapper.type = "OptimWrapper"
    cfg.optim_wrapper.pop("loss_scale", None)
    return cfg


def fixtures(folder, voc_root):
    """A tiny run of the smoke preset (``run/``, its config ``run.py`` whose ``load_from`` names
    a checkpoint of the same run, ``pretrained.pth``), and the hook probe's config ``hook.py``."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from helpers.checks.training import hook_run_config
    from helpers.config import build_config
    from helpers.train import prepare_config

    folder = Path(folder)
    cfg = build_config("smoke", voc_root, folder / "run", load_from=None, **{
        "train_cfg.max_iters": RUN_ITERS, "train_cfg.val_interval": RUN_VAL,
        "default_hooks.checkpoint.interval": RUN_VAL,
        "default_hooks.checkpoint.max_keep_ckpts": 2, "default_hooks.logger.interval": 1,
        "train_dataloader.batch_size": 2, "val_dataloader.dataset.indices": 4,
        "test_dataloader.dataset.indices": 4})
    cfg = Config(copy.deepcopy(cfg.to_dict()))
    _shrink(cfg._cfg_dict)
    cfg.crop_size = (48, 48)
    run_cfg = Config(_plain_config(prepare_config(cfg, amp=False)).to_dict(),
                     format_python_code=False)  # see _quick
    run_cfg.log_level = "ERROR"  # quiet in the grader's process
    Runner.from_cfg(run_cfg).train()
    shutil.copyfile(folder / "run" / f"iter_{RUN_VAL}.pth", folder / "pretrained.pth")
    run_cfg.log_level = "INFO"  # a resumed run logs the iteration it resumed at
    run_cfg.load_from = str(folder / "pretrained.pth")  # as in the seed preset: set, not `last`
    run_cfg.dump(str(folder / "run.py"))
    hook_cfg = hook_run_config(cfg, folder / "hook", HOOK_FIRST,
                               **{"optim_wrapper.optimizer.lr": HOOK_LR})
    Config(_plain_config(hook_cfg).to_dict(), format_python_code=False).dump(
        str(folder / "hook.py"))


# ----------------------------------------------------------------------------------------------
# Inside the sandbox


def _quick(path):
    """The config file `path` of the fixtures. Without yapf: mmengine formats the config's text
    each time a run logs or saves it (every checkpoint), seconds each on a busy CPU."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(path), format_python_code=False)
    # mmengine 0.10.7's fromfile drops the flag for a plain (not lazy-import) file: set it.
    object.__setattr__(cfg, "_format_python_code", False)
    return cfg


def _load_checkpoints() -> None:
    """mmengine 0.10.7 loads checkpoints with torch.load's default, weights_only=True since
    torch 2.6, which refuses mmengine's own (its log history). The course's safe loader is not
    in the sandbox; every checkpoint here is the grader's or the answer's own."""
    import torch
    from mmengine.runner import CheckpointLoader

    def load_local(filename, map_location=None):
        return torch.load(filename, map_location=map_location, weights_only=False)

    CheckpointLoader.register_scheme("", load_local, force=True)


def _library(ns, ctx):
    """What every answer of this notebook is given: the notebook's imports."""
    import pandas as pd
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner
    from mmseg.utils import register_all_modules

    register_all_modules()
    _load_checkpoints()
    ns.update(os=os, copy=copy, json=json, Path=Path, pd=pd, torch=torch, Config=Config,
              Runner=Runner)


def _scalars(log_dir) -> list[dict]:
    path = Path(log_dir, "vis_data", "scalars.json")
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# The hook


def _hook_runs(ctx) -> list[tuple]:
    """A new run of HOOK_FIRST iterations with the answer's hook, then that run resumed up to
    HOOK_THEN: per run, the hook's file (parsed, or None) and the logged training lines by
    step."""
    from mmengine.runner import Runner

    base = _quick(Path(ctx.fixtures, "hook.py"))
    first = Path(ctx.scratch, "run")
    runs = []
    for work_dir, extra in ((first, {}),
                            (Path(ctx.scratch, "resumed"),
                             {"resume": True, "train_cfg.max_iters": HOOK_THEN,
                              "load_from": str(first / f"iter_{HOOK_FIRST}.pth")})):
        cfg = copy.deepcopy(base)
        cfg.merge_from_dict({"work_dir": str(work_dir), "custom_hooks": [dict(
            type="LossLrLogger")], **extra})
        from course.run_config import run_config

        cfg = run_config(cfg, amp=False)
        runner = Runner.from_cfg(cfg)
        runner.train()
        written = work_dir / "loss_lr.json"
        rows = json.loads(written.read_text()) if written.is_file() else None
        logged = {row["step"]: row for row in _scalars(runner.log_dir) if "loss" in row}
        runs.append((rows, logged))
    return runs


def _same(a, b) -> bool:  # the hook's number and the one mmengine logged for the same iteration
    import math

    return isinstance(a, float | int) and not isinstance(a, bool) and \
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def _rows(rows):
    """The rows, or the reason there are none (a string)."""
    if rows is None:
        return "no loss_lr.json"
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return f"not a list of objects: {type(rows).__name__}"
    return rows


def _iters(rows):
    rows = _rows(rows)
    if isinstance(rows, str):
        return rows
    return [r.get("iter") if type(r.get("iter")) is int else repr(r.get("iter")) for r in rows]


def _as_logged(runs, key):
    """Per run, whether the rows' `key`s are the logged ones, in the order of the log's steps
    (so that a wrong iteration number does not also fail the numbers)."""
    out = []
    for rows, logged in runs:
        rows = _rows(rows)
        if isinstance(rows, str):
            out.append(rows)
            continue
        steps = sorted(logged)
        out.append([len(rows), len(steps)] + [_same(r.get(key), logged[s][key])
                                              for r, s in zip(rows, steps, strict=False)])
    return out


def _loss_lr_hook(ns, ctx):
    runs: list = []
    failed: list = []

    def cached():  # the two runs once: every case kind reads them (or raises their error)
        if failed:
            raise failed[0]
        if not runs:
            try:
                runs.extend(_hook_runs(ctx))
            except Exception as exc:
                failed.append(exc)
                raise
        return runs

    return {"a new run's iterations": lambda: _iters(cached()[0][0]),
            "a resumed run's iterations": lambda: _iters(cached()[1][0]),
            "losses": lambda: _as_logged(cached(), "loss"),
            "learning rates": lambda: _as_logged(cached(), "lr")}


# The best iteration


def _made_up(rng, n, best_at, tie_at):
    """A scalars.json: n validations (the best at best_at, tied at tie_at), training lines
    between them, and a training line after the last validation."""
    interval, every = rng.choice([(20, 5), (50, 10), (40, 20), (100, 25)])
    top = round(rng.uniform(40, 70), 2)
    mious = [round(rng.uniform(5, top - 1), 2) for _ in range(n)]
    mious[best_at] = top
    if tie_at is not None:
        mious[tie_at] = top
    lines = []
    for i, miou in enumerate(mious):
        step = (i + 1) * interval
        lines += [{"lr": 0.01, "loss": round(rng.uniform(0.1, 2.5), 4), "iter": s, "step": s}
                  for s in range(step - interval + every, step + 1, every)]
        lines.append({"aAcc": round(100 - miou / 2, 2), "mIoU": miou,
                      "mAcc": round(miou + rng.uniform(0, 20), 2), "step": step})
    s = n * interval + every
    lines.append({"lr": 0.01, "loss": 0.5, "iter": s, "step": s})
    return "".join(json.dumps(line) + "\n" for line in lines)


#: (validations, index of the best, index of a tie or None); the answer is the first best.
LAYOUTS = [(5, 0, 3), (6, 2, None), (7, 1, 4), (4, 3, None), (8, 5, 6), (1, 0, None)]


def _best_iteration(ns, ctx):
    import torch

    best_iteration = ns["best_iteration"]

    def answer(path):  # the step as an int, or the name of the type it came as
        x = best_iteration(str(path))
        return int(x) if isinstance(x, numbers.Integral) and not isinstance(x, bool) \
            else type(x).__name__

    def made_up(ties):
        rng, out = random.Random(3031), []
        for k, layout in enumerate(LAYOUTS):
            text = _made_up(rng, *layout)
            if (layout[2] is not None) == ties:
                path = Path(ctx.scratch, f"run{k}", "vis_data", "scalars.json")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                out.append(answer(path))
        return out

    def run():  # the grader's run, and the iteration of the best checkpoint it saved
        run_dir = Path(ctx.fixtures, "run")
        got = answer(next(run_dir.glob("*/vis_data/scalars.json")))
        saved = [torch.load(p, map_location="cpu", weights_only=False)["meta"]["iter"]
                 for p in run_dir.glob("best_*.pth")]  # the grader's own files: trusted
        return {"step": got, "the best checkpoint's": got in saved}

    return {"made-up logs": lambda: made_up(False),
            "tied best validations": lambda: made_up(True),
            "a run's scalars.json": run}


# Resume


def _resume_givens(ns, ctx):
    """A writable copy of the grader's run, its config pointed at it, its last checkpoint."""

    _library(ns, ctx)
    work_dir = Path(ctx.scratch, "run")
    shutil.copytree(Path(ctx.fixtures, "run"), work_dir)
    last = work_dir / f"iter_{RUN_ITERS}.pth"
    (work_dir / "last_checkpoint").write_text(str(last))
    cfg = _quick(Path(ctx.fixtures, "run.py"))
    cfg.work_dir = str(work_dir)
    from course.run_config import run_config  # helpers.train.prepare_config's plumbing

    ns.update(cfg=cfg, last=last, last_iter=RUN_ITERS, EXTRA_ITERS=EXTRA_ITERS,
              prepare_config=run_config)


def _resume(ns, ctx):
    import torch
    from mmengine.runner import Runner

    resumed, start = ns.get("resumed"), RUN_ITERS

    def facts():
        if not isinstance(resumed, Runner):
            return {"runner": type(resumed).__name__}
        log = Path(resumed.log_dir, f"{resumed.timestamp}.log")
        at = re.search(r"resumed epoch: \d+, iter: (\d+)", log.read_text() if log.is_file()
                       else "")
        rows = _scalars(resumed.log_dir)
        steps = sorted(r["step"] - start for r in rows if "loss" in r)
        pointer = Path(resumed.work_dir, "last_checkpoint")
        meta = torch.load(pointer.read_text().strip(), map_location="cpu",
                          weights_only=False)["meta"] if pointer.is_file() else {}
        return dict(resumed_at=int(at.group(1)) - start if at else None,
                    trained_twice=sum(s <= 0 for s in steps),
                    first_step=steps[0] if steps else None,
                    last_step=steps[-1] if steps else None,
                    val_steps=sorted(r["step"] - start for r in rows if "mIoU" in r),
                    last_is_this_run=meta.get("experiment_name") == resumed.experiment_name,
                    last_iter=meta["iter"] - start if "iter" in meta else None)

    def pick(*keys):
        def call():
            got = facts()
            return {k: got[k] for k in keys} if "runner" not in got else got
        return call

    return {"resumed from the last checkpoint": pick("resumed_at", "trained_twice"),
            "trained EXTRA_ITERS more": pick("first_step", "last_step", "val_steps"),
            "saved the resumed run's checkpoint": pick("last_is_this_run", "last_iter")}


TASKS = {
    "loss_lr_hook": dict(
        test="loss_lr_hook_test", givens=_library, probe=_loss_lr_hook, timeout=180,
        uses=("run_config",),
        points={"a new run's iterations": 1, "a resumed run's iterations": 1, "losses": 1,
                "learning rates": 1},
        say={"a new run's iterations": "in a new run, the rows' iter is not the step of "
                                       "mmengine's log (or loss_lr.json is missing)",
             "a resumed run's iterations": "in a resumed run, the rows are not those of the "
                                           "iterations it trained, numbered as the log does",
             "losses": "the loss of some rows is not the total loss of its iteration, as a "
                       "number",
             "learning rates": "the lr of some rows is not the one the optimizer used in its "
                               "iteration (try another learning rate in the config)"}),
    "best_iteration": dict(
        test="best_iteration_test", givens=_library, probe=_best_iteration,
        points={"made-up logs": 1, "tied best validations": 0.5, "a run's scalars.json": 0.5},
        say={"made-up logs": "wrong on made-up scalars.json files (is the best validation "
                             "always the last? an int?)",
             "tied best validations": "wrong when two validations tie for the best mIoU",
             "a run's scalars.json": "wrong on another run's scalars.json"}),
    "resume": dict(
        test="resume_test", givens=_resume_givens, probe=_resume, timeout=180,
        uses=("run_config",),
        points={"resumed from the last checkpoint": 1, "trained EXTRA_ITERS more": 1,
                "saved the resumed run's checkpoint": 1},
        say={"resumed from the last checkpoint": "the run did not resume from `last` (the "
                                                 "config given sets load_from)",
             "trained EXTRA_ITERS more": "the resumed run did not train EXTRA_ITERS iterations "
                                         "after the checkpoint",
             "saved the resumed run's checkpoint": "the resumed run saved no checkpoint at its "
                                                   "end"}),
}
