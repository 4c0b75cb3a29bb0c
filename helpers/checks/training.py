"""Checks of notebook 03's tasks: train with a Runner, find the best iteration, resume a run.

The checks read what a run leaves behind, not what the student's code says about it: the
checkpoints in the work dir (their ``meta``: iteration and the run's experiment name), the run's
``vis_data/scalars.json`` and its log file. `ensure_trained` is the lesson's fallback: when the
training task is not done, the course trains the same config its own way, so that notebooks 04
and 05 still find a checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.checks import answered, evaluate

__all__ = [
    "run_verifier",
    "ensure_trained",
    "best_iteration_reference",
    "best_iteration_verifier",
    "resume_verifier",
]


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


def run_verifier(cfg: Any) -> Callable[[Any], list[str]]:
    """Verify for the training task: `runner` trained `cfg` to its end, in its work dir."""

    def verify(runner: Any) -> list[str]:
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

    return verify


def ensure_trained(runner: Any, cfg: Any) -> Any:
    """`runner` when it trained `cfg` (the task is done); otherwise train `cfg` the course's way.

    Under grading the task's check has failed already; the run is still needed by the rest of the
    notebook and by notebooks 04 and 05.
    """
    from helpers.train import build_runner

    with contextlib.redirect_stderr(sys.stdout):
        status, _ = evaluate(runner, run_verifier(cfg))
    if status == "correct":
        print("Your runner trained the run: the lesson goes on with it.")
        return runner
    print(f"The training task is {'not answered' if status == 'unanswered' else 'not accepted'}:"
          " the course trains the same config now, with helpers.train.build_runner(cfg).train(),"
          " so that the rest of this notebook and notebooks 04 and 05 have a run.")
    runner = build_runner(cfg)
    runner.train()
    return runner


# ----------------------------------------------------------------------------------------------
# The best iteration


def best_iteration_reference(scalars_file: str | Path) -> int:
    """The step of the first validation entry with the highest mIoU in one ``scalars.json``."""
    import pandas as pd

    table = pd.read_json(scalars_file, lines=True)
    if "mIoU" not in table:
        raise ValueError(f"{scalars_file}: no validation entries (no mIoU)")
    val = table.dropna(subset=["mIoU"])
    return int(val["step"].iloc[int(val["mIoU"].to_numpy().argmax())])


# Made-up logs: (step, mIoU) of the validations, with training lines between them. The best one
# is not the last, is tied once (mmengine keeps the first: a new best must be strictly greater),
# and a training line after the last validation has the highest step of the file.
_MADE_UP = {
    "a log whose best validation is not the last": [(40, 31.5), (80, 52.25), (120, 49.0),
                                                    (160, 50.75)],
    "a log with two equal best validations": [(300, 12.0), (600, 40.5), (900, 40.5),
                                             (1200, 38.0)],
}


def _write_made_up(folder: str, name: str, vals: list[tuple[int, float]]) -> Path:
    lines, last = [], 0
    for step, miou in vals:
        for s in range(last + 10, step + 1, 10):
            lines.append({"lr": 0.01, "loss": 2.0 - s / 1000, "iter": s, "step": s})
        lines.append({"aAcc": miou + 20, "mIoU": miou, "mAcc": miou + 5, "step": step})
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


def best_iteration_verifier(scalars_file: str | Path) -> Callable[[Callable], list[str]]:
    """Verify for `best_iteration(path)`: the run's scalars.json and two made-up logs."""

    def verify(best_iteration: Callable) -> list[str]:
        problems = []
        with tempfile.TemporaryDirectory() as tmp:
            files = {"this run's scalars.json": Path(scalars_file)}
            files |= {name: _write_made_up(tmp, name, vals) for name, vals in _MADE_UP.items()}
            for where, path in files.items():
                got = answered(best_iteration(str(path)), "best_iteration")
                if problem := _iteration_problem(got, where):
                    return [problem]
                if int(got) != best_iteration_reference(path):
                    problems.append(f"for {where} it returned iteration {int(got)}: not the "
                                    "step of the (first) validation with the highest mIoU")
        return problems

    return verify


# ----------------------------------------------------------------------------------------------
# Resuming


def resume_verifier(start_iter: int, extra_iters: int) -> Callable[[Any], list[str]]:
    """Verify for the resume task: the runner resumed at `start_iter` and trained `extra_iters`."""

    def verify(resumed: Any) -> list[str]:
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

    return verify
