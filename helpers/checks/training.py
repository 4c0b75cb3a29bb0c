"""Checks of notebook 03's tasks: a hook of one's own, the best iteration, resume a run.

The checks read what a run leaves behind, not what the student's code says about it: the
checkpoints in the work dir (their ``meta``: iteration and the run's experiment name), the run's
``vis_data/scalars.json`` and its log file. The hook check trains a few iterations with the
student's hook attached, then resumes that run, and compares the hook's file with the loss and
learning rate that mmengine logged for the same iterations. The best-iteration check tries the
student's function on two made-up logs whose answers are written here as data, and on the run's
own log against the iteration of the best checkpoint that mmengine's ``CheckpointHook`` saved.
"""

from __future__ import annotations

import copy
import json
import numbers
import re
import tempfile
from pathlib import Path
from typing import Any

from helpers.checks import Task, answered

__all__ = ["HOOK_FILE", "HOOK_NAME", "hook_run_config", "hook_runs", "verify_best_iteration",
           "verify_loss_lr_hook", "verify_resume", "TASKS"]


def _meta(path: Path | None) -> dict:
    from helpers.checkpoint import load_checkpoint

    if path is None or not path.is_file():
        return {}
    return load_checkpoint(path).get("meta", {})


def _last_checkpoint(work_dir: Path) -> Path | None:
    pointer = work_dir / "last_checkpoint"  # mmengine's CheckpointHook writes it
    return Path(pointer.read_text().strip()) if pointer.is_file() else None


def _scalars(runner: Any) -> list[dict]:
    path = Path(runner.log_dir, "vis_data", "scalars.json")
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _runner_problem(runner: Any, name: str) -> str | None:
    from mmengine.runner import Runner

    answered(runner, name)
    if not isinstance(runner, Runner):
        return f"`{name}` is a {type(runner).__name__}, not an mmengine Runner"
    return None


# ----------------------------------------------------------------------------------------------
# The best iteration

# Made-up logs: (step, mIoU) of the validations, with training lines between them, and the step
# of the validation that CheckpointHook(save_best="mIoU") keeps, written as data. The best one is
# not the last, is tied once (the hook keeps the first: a new best must be strictly greater), and
# a training line after the last validation has the highest step of the file.
_MADE_UP = {
    "a log whose best validation is not the last": (
        [(40, 31.5), (80, 52.25), (120, 49.0), (160, 50.75)], 80),
    "a log with two equal best validations": (
        [(300, 12.0), (600, 40.5), (900, 40.5), (1200, 38.0)], 600),
}


def _write_made_up(folder: str, name: str, vals: list[tuple[int, float]]) -> Path:
    lines, last = [], 0
    for step, miou in vals:
        for s in range(last + 10, step + 1, 10):
            lines.append({"lr": 0.01, "loss": 2.0 - s / 1000, "iter": s, "step": s})
        lines.append({"aAcc": 95 - miou / 10, "mIoU": miou, "mAcc": miou + 5, "step": step})
        last = step
    lines.append({"lr": 0.01, "loss": 0.5, "iter": last + 10, "step": last + 10})
    path = Path(folder, f"{name.replace(' ', '_')}.json")
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _iteration_problem(got: Any, where: str) -> str | None:
    if isinstance(got, bool) or not isinstance(got, numbers.Integral):
        kind = type(got).__name__
        return f"for {where} it returned {got!r} ({kind}): an iteration is a whole number, int"
    return None


def _best_checkpoint_iter(scalars_file: Path) -> int | None:
    """The iteration of the best checkpoint that the run of `scalars_file` saved, if any.

    ``<work_dir>/<timestamp>/vis_data/scalars.json``: the run's experiment name ends with its
    timestamp, and its checkpoints' meta carry that name.
    """
    log_dir = scalars_file.parent.parent
    for path in log_dir.parent.glob("best_*.pth"):
        meta = _meta(path)
        if str(meta.get("experiment_name", "")).endswith(log_dir.name):
            return meta.get("iter")
    return None


def verify_best_iteration(best_iteration: Any, scalars_file: str | Path) -> list[str]:
    """`best_iteration(path)` on two made-up logs and on the run's own scalars.json."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for where, (vals, want) in _MADE_UP.items():
            got = answered(best_iteration(str(_write_made_up(tmp, where, vals))),
                           "best_iteration")
            if problem := _iteration_problem(got, where):
                return [problem]
            if int(got) != want:
                problems.append(f"for {where} it returned iteration {int(got)}: not the step of "
                                "the (first) validation with the highest mIoU")
    scalars_file = Path(scalars_file)
    saved = _best_checkpoint_iter(scalars_file)
    if saved is not None:
        got = answered(best_iteration(str(scalars_file)), "best_iteration")
        if problem := _iteration_problem(got, "this run's scalars.json"):
            return [problem]
        if int(got) != saved:
            problems.append(f"for this run's scalars.json it returned iteration {int(got)}, but "
                            "the run's best checkpoint (best_mIoU_iter_N.pth) was saved at "
                            "another iteration")
    return problems


# ----------------------------------------------------------------------------------------------
# Resuming


def verify_resume(resumed: Any, start_iter: int, extra_iters: int) -> list[str]:
    """The runner `resumed` resumed at `start_iter` and trained `extra_iters` more iterations."""
    if problem := _runner_problem(resumed, "resumed"):
        return [problem]
    log_file = Path(resumed.log_dir, f"{resumed.timestamp}.log")
    log = log_file.read_text() if log_file.is_file() else ""
    at = re.search(r"resumed epoch: \d+, iter: (\d+)", log)
    meta = _meta(_last_checkpoint(Path(resumed.work_dir)))
    trained = meta.get("experiment_name") == resumed.experiment_name
    if not at and not trained:
        return ["the runner has neither resumed nor trained: its log says nothing about "
                "resuming and it saved no checkpoint"]
    if not at:
        loaded = "Load checkpoint from" in log
        return ["the run " + ("loaded the checkpoint's weights but did not resume it: its "
                              "iteration counter, optimizer and scheduler started from zero"
                              if loaded else "did not resume from a checkpoint")]
    if int(at.group(1)) != start_iter:
        return [f"the run resumed from iteration {at.group(1)}, not from the run's last "
                "checkpoint"]
    if not trained:
        return ["the run resumed but trained no iteration: its train_cfg.max_iters must go "
                "beyond the checkpoint's iteration"]
    if meta.get("iter") != start_iter + extra_iters:
        return [f"the resumed run ended at iteration {meta.get('iter')}, not "
                f"{extra_iters} iterations after the checkpoint it resumed"]
    return []


# ----------------------------------------------------------------------------------------------
# A hook of one's own

#: The registry name and the file of notebook 03's hook task.
HOOK_NAME, HOOK_FILE = "LossLrLogger", "loss_lr.json"


def hook_run_config(cfg: Any, work_dir: str | Path, max_iters: int, **changes: Any) -> Any:
    """A few iterations of `cfg` with the hook task's hook attached, for trying the hook.

    Batch 2, no validation, a checkpoint at the end, a quiet log, and a logged scalar every
    iteration without smoothing (``log_processor.window_size=1``), so that
    ``vis_data/scalars.json`` holds each iteration's own loss and learning rate: the truth that
    the hook's file is compared with.
    `changes` (dotted keys) go on top, e.g. ``resume=True, load_from=...``.
    """
    from mmengine.config import Config

    from helpers.train import prepare_config

    tiny = Config(copy.deepcopy(cfg.to_dict()))
    for key in ("val_dataloader", "val_cfg", "val_evaluator"):
        tiny.pop(key, None)
    tiny.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False,
                                         interval=max_iters)
    tiny.default_hooks.pop("visualization", None)  # draws nothing, and warns that it does not
    tiny.custom_hooks = [dict(type=HOOK_NAME)]
    tiny.merge_from_dict({
        "work_dir": str(work_dir), "load_from": None, "resume": False, "log_level": "ERROR",
        "train_cfg.max_iters": max_iters, "train_dataloader.batch_size": 2,
        "default_hooks.logger.interval": 1, "log_processor.window_size": 1, **changes})
    return prepare_config(tiny)


def hook_runs(cfg: Any, folder: str | Path, first: int, then: int,
              **changes: Any) -> list[tuple[Any, list[dict]]]:
    """Train `first` iterations with the hook, then resume that run up to iteration `then`.

    Returns, per run, what the hook wrote (the parsed ``HOOK_FILE``, or None when it wrote
    none) and the run's logged training scalars by step.
    """
    from mmengine.runner import Runner

    runs = []
    for work_dir, extra in ((Path(folder, "run"), {}),
                            (Path(folder, "resumed"),
                             {"resume": True, "train_cfg.max_iters": then,
                              "load_from": str(Path(folder, "run", f"iter_{first}.pth"))})):
        runner = Runner.from_cfg(hook_run_config(cfg, work_dir, first, **{**changes, **extra}))
        runner.train()
        written = work_dir / HOOK_FILE
        logged = {row["step"]: row for row in _scalars(runner) if "loss" in row}
        runs.append((json.loads(written.read_text()) if written.is_file() else None, logged))
    return runs


def _rows_problem(rows: Any) -> str | None:
    if rows is None:
        return (f"after training, the run's work_dir holds no {HOOK_FILE}: write it when "
                "training ends")
    if not isinstance(rows, list) or not all(
            isinstance(r, dict) and {"iter", "loss", "lr"} <= set(r) for r in rows):
        return (f"{HOOK_FILE} must hold a JSON list with one object per training iteration, "
                "each with the keys iter, loss and lr")
    return None


def _close(a: Any, b: float) -> bool:
    return isinstance(a, numbers.Real) and not isinstance(a, bool) and \
        abs(a - b) <= 1e-6 * max(1.0, abs(b))


def verify_loss_lr_hook(hook: Any, cfg: Any) -> list[str]:
    """`hook` is a Hook registered as ``LossLrLogger`` that writes every iteration's loss and
    learning rate to ``<work_dir>/loss_lr.json``, compared with mmengine's own log of a short
    run and of that run resumed, both at another learning rate than `cfg`'s (as the grader's
    probe, teacher/tasks/n03_training.py, trains)."""
    from mmengine.hooks import Hook
    from mmseg.registry import HOOKS  # mmseg's registry also finds what mmengine's holds

    answered(hook, HOOK_NAME)
    if not (isinstance(hook, type) and issubclass(hook, Hook)):
        return [f"`{HOOK_NAME}` is a {type(hook).__name__}, not a subclass of mmengine's Hook"]
    if HOOKS.get(HOOK_NAME) is not hook:
        return [f"no hook named {HOOK_NAME} in mmengine's HOOKS registry is this class: "
                "register it there (custom_hooks finds hooks by their registered name)"]
    first, then = 2, 3
    lr = cfg.optim_wrapper.optimizer.lr / 2  # not the config's: a number typed in is wrong
    with tempfile.TemporaryDirectory() as tmp:
        runs = hook_runs(cfg, tmp, first, then, **{"optim_wrapper.optimizer.lr": lr})
    problems = []
    for (rows, logged), what in zip(runs, ("a new run", f"a run resumed at iteration {first}"),
                                    strict=True):
        if problem := _rows_problem(rows):
            return [f"in {what}: {problem}"]
        iters = [row["iter"] for row in rows]
        if iters != sorted(logged):
            problems.append(f"in {what} your rows are for iterations {iters}, but the run "
                            f"trained iterations {sorted(logged)} (the step of mmengine's log)")
            continue
        for row in rows:
            want = logged[row["iter"]]
            if not _close(row["loss"], want["loss"]):
                problems.append(f"in {what} the loss of iteration {row['iter']} is "
                                f"{row['loss']!r}, but the run logged {want['loss']:.4f}: the "
                                "total loss the model returned for that iteration, as a number")
                break
            if not _close(row["lr"], want["lr"]):
                problems.append(f"in {what} the learning rate of iteration {row['iter']} is "
                                f"{row['lr']!r}, but the optimizer used {want['lr']:.6g}: the "
                                "scheduler changes it every iteration")
                break
    return problems


#: The tasks of notebook 03 and their hints (an API or a concept, never the code).
TASKS = {
    "loss_lr_hook": Task(verify_loss_lr_hook,
                         hint="mmengine's Hook and its after_train_iter and after_train points "
                              "(MMEngine's 'Hook' tutorial); the HOOKS registry; "
                              "runner.iter counts from 0, the log's step from 1; the "
                              "optimizer wrapper knows the current learning rate"),
    "best_iteration": Task(verify_best_iteration,
                           hint="validation lines are the ones with an 'mIoU' key, and a "
                                "line's iteration is its 'step'; of equal maxima the first "
                                "one counts"),
    "resume": Task(verify_resume, hint="the config fields resume and load_from (MMEngine's "
                                       "'Resume training' page); train_cfg.max_iters is the "
                                       "iteration where the loop stops"),
}
