"""Checks of notebook 03's tasks: train with a Runner, find the best iteration, resume a run.

The checks read what a run leaves behind, not what the student's code says about it: the
checkpoints in the work dir (their ``meta``: iteration and the run's experiment name), the run's
``vis_data/scalars.json`` and its log file. The best-iteration check tries the student's function
on two made-up logs whose answers are written here as data, and on the run's own log against the
iteration of the best checkpoint that mmengine's ``CheckpointHook`` saved.
"""

from __future__ import annotations

import json
import numbers
import re
import tempfile
from pathlib import Path
from typing import Any

from helpers.checks import Task, answered

__all__ = ["verify_train", "verify_best_iteration", "verify_resume", "TASKS"]


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


def verify_train(runner: Any, cfg: Any) -> list[str]:
    """`runner` trained `cfg` to its end, in its work dir (the last and best checkpoints, and the
    validations in the run's scalars.json)."""
    if problem := _runner_problem(runner, "runner"):
        return [problem]
    work_dir, max_iters = Path(cfg.work_dir), cfg.train_cfg.max_iters
    if Path(runner.work_dir).resolve() != work_dir.resolve():
        return [f"the runner works in {runner.work_dir}, not in the config's work_dir"]
    meta = _meta(_last_checkpoint(work_dir))
    if meta.get("experiment_name") != runner.experiment_name:
        return ["the runner saved no checkpoint in the work dir: it was built, but it has "
                "not trained"]
    problems = []
    if meta.get("iter") != max_iters:
        problems.append(f"the run's last checkpoint holds iteration {meta.get('iter')}, but "
                        f"the config trains {max_iters} iterations")
    interval = cfg.train_cfg.val_interval
    want = set(range(interval, max_iters + 1, interval)) | {max_iters}
    got = {row["step"] for row in _scalars(runner) if "mIoU" in row}
    if not got:
        problems.append(f"the run logged no validation into {runner.log_dir}/vis_data/"
                        "scalars.json: mmengine's visualizer of an earlier run may have "
                        "taken its scalars; build the runner from run_cfg")
    elif got != want:
        problems.append(f"the run validated at iterations {sorted(got)}, not every "
                        "train_cfg.val_interval up to max_iters")
    best = [p for p in work_dir.glob("best_*.pth")
            if _meta(p).get("experiment_name") == runner.experiment_name]
    if not best:
        problems.append("the run saved no best checkpoint (best_mIoU_iter_N.pth)")
    return problems


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


#: The tasks of notebook 03 and their hints (an API or a concept, never the code).
TASKS = {
    "train": Task(verify_train, hint="mmengine's Runner: a class method builds one from a "
                                     "config, and a method of the runner runs the loop that "
                                     "train_cfg describes (MMEngine's Runner tutorial)"),
    "best_iteration": Task(verify_best_iteration,
                           hint="validation lines are the ones with an 'mIoU' key, and a "
                                "line's iteration is its 'step'; of equal maxima the first "
                                "one counts"),
    "resume": Task(verify_resume, hint="the config fields resume and load_from (MMEngine's "
                                       "'Resume training' page); train_cfg.max_iters is the "
                                       "iteration where the loop stops"),
}
