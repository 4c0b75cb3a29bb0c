"""The checks of notebook 03's tasks (helpers.checks.training) on short real runs of the smoke
preset on the demo data: blank is unanswered, the solution is correct, plausible mistakes are
wrong with a message that names the problem and does not give the expected value away. The
notebook's probes (its hidden tests) record the same payload for two correct answers and another
one for each plausible mistake."""

from __future__ import annotations

import copy
import json
import runpy
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
from mmengine.runner import Runner

import helpers.checks.record
from helpers.checkpoint import find_checkpoint, load_checkpoint
from helpers.checks import evaluate, training
from helpers.config import build_config
from helpers.env import repo_root
from helpers.train import prepare_config
from teacher.verdicts import same

WRONG = runpy.run_path(str(Path(__file__).parent / "wrong_answers" / "03_training.py"))[
    "WRONG_ANSWERS"]
TINY = {  # a few iterations of the smoke preset: for mechanics, not for learning
    "train_cfg.max_iters": 4,
    "train_cfg.val_interval": 2,
    "default_hooks.checkpoint.interval": 2,
    "default_hooks.logger.interval": 1,
    "train_dataloader.batch_size": 2,
}
NOTEBOOK = repo_root() / "source" / "voc" / "03_training.ipynb"


def _tiny(demo_root: Path, work_dir: Path, **overrides):
    return build_config("smoke", demo_root, work_dir, **{**TINY, **overrides})


def _probe(grade_id: str, monkeypatch, **scope) -> object:
    """Run the hidden tests of test cell `grade_id` in `scope`: the payload they record."""
    cell = next(c for c in nbformat.read(NOTEBOOK, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    code = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
    got = []
    monkeypatch.setattr(helpers.checks.record, "record",
                        lambda gid, payload, **_: got.append((gid, payload)))
    exec(code, {"json": json, "Path": Path, "Runner": Runner, **scope})
    assert [gid for gid, _ in got] == [grade_id]
    payload = got[0][1]
    json.dumps(payload, allow_nan=False)  # plain data
    return payload


@pytest.fixture(scope="module")
def run(demo_root, tmp_path_factory):
    """The task's solution on a tiny config: (cfg, the trained Runner)."""
    cfg = _tiny(demo_root, tmp_path_factory.mktemp("tiny") / "run")
    runner = Runner.from_cfg(prepare_config(cfg))
    runner.train()
    return cfg, runner


def test_a_trained_runner_is_correct_an_untrained_one_is_not(run):
    cfg, runner = run
    verify = training.TASKS["train"].verify
    assert evaluate(None, verify, cfg=cfg) == ("unanswered", [])
    assert evaluate(runner, verify, cfg=cfg) == ("correct", [])
    scope = {"Runner": Runner, "run_cfg": prepare_config(cfg)}
    exec(WRONG["train"], scope)  # built, not trained
    assert evaluate(scope["runner"], verify, cfg=cfg) == ("wrong", [
        "the runner saved no checkpoint in the work dir: it was built, but it has not trained"])
    assert evaluate(cfg, verify, cfg=cfg)[1] == ["`runner` is a Config, not an mmengine Runner"]


def test_a_run_of_another_length_is_named(run):
    cfg, runner = run
    longer = copy.deepcopy(cfg)
    longer.train_cfg.max_iters = 6
    status, problems = evaluate(runner, training.verify_train, cfg=longer)
    assert status == "wrong"
    assert problems == ["the run's last checkpoint holds iteration 4, but the config trains 6 "
                        "iterations",
                        "the run validated at iterations [2, 4], not every "
                        "train_cfg.val_interval up to max_iters"]


def test_the_train_probe_records_the_run_and_not_a_runner_that_did_not_train(run, monkeypatch):
    cfg, runner = run
    truth = _probe("train_test", monkeypatch, runner=runner, WORK_DIR=cfg.work_dir)
    assert truth == {"runner": True, "in_work_dir": True, "last_is_this_run": True,
                     "last_iter": 4, "val_steps": [2, 4], "last_step": 4, "best_saved": True}
    scope = {"Runner": Runner, "run_cfg": prepare_config(cfg)}
    exec(WRONG["train"], scope)  # built, not trained: the work dir holds another run's files
    wrong = _probe("train_test", monkeypatch, runner=scope["runner"], WORK_DIR=cfg.work_dir)
    assert not same(wrong, truth)
    assert not same(_probe("train_test", monkeypatch, runner=None, WORK_DIR=cfg.work_dir), truth)


def best_iteration(scalars_file):
    rows = [json.loads(line) for line in Path(scalars_file).read_text().splitlines() if line]
    return int(max((r for r in rows if "mIoU" in r), key=lambda r: r["mIoU"])["step"])


def best_iteration_pandas(scalars_file):  # another correct answer: numpy's int64 is an int too
    import pandas as pd

    val = pd.read_json(scalars_file, lines=True).dropna(subset=["mIoU"])
    return val["step"].iloc[int(np.argmax(val["mIoU"].to_numpy()))]


def later_of_a_tie(path):
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    vals = [r for r in rows if "mIoU" in r]
    return max(reversed(vals), key=lambda r: r["mIoU"])["step"]


def best_by_accuracy(path):
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return max((r for r in rows if "aAcc" in r), key=lambda r: r["aAcc"])["step"]


def test_best_iteration_blank_right_and_mistakes(run):
    _, runner = run
    scalars = Path(runner.log_dir, "vis_data", "scalars.json")
    verify = training.TASKS["best_iteration"].verify
    assert evaluate(lambda path: None, verify, scalars_file=scalars) == ("unanswered", [])
    assert evaluate(best_iteration, verify, scalars_file=scalars) == ("correct", [])
    assert evaluate(best_iteration_pandas, verify, scalars_file=scalars) == ("correct", [])

    scope = {"json": json, "Path": Path}
    exec(WRONG["best_iteration"], scope)  # the last validation
    status, problems = evaluate(scope["best_iteration"], verify, scalars_file=scalars)
    assert status == "wrong"
    assert "for a log whose best validation is not the last it returned iteration 160: not the " \
           "step of the (first) validation with the highest mIoU" in problems
    assert "iteration 80" not in " ".join(problems)  # the made-up log's best is not given away
    assert evaluate(later_of_a_tie, verify, scalars_file=scalars)[1] == [
        "for a log with two equal best validations it returned iteration 900: not the step of "
        "the (first) validation with the highest mIoU"]
    assert evaluate(lambda path: float(best_iteration(path)), verify,
                    scalars_file=scalars)[1][0].endswith(
        "(float): an iteration is a whole number, int")


def test_best_iteration_is_checked_against_the_runs_best_checkpoint(run):
    _, runner = run
    scalars = Path(runner.log_dir, "vis_data", "scalars.json")
    saved = load_checkpoint(find_checkpoint(runner.work_dir, "best"))["meta"]["iter"]
    other = 2 if saved == 4 else 4

    def made_up_right_run_wrong(path):
        return other if Path(path) == scalars else best_iteration(path)

    assert evaluate(made_up_right_run_wrong, training.verify_best_iteration,
                    scalars_file=scalars)[1] == [
        f"for this run's scalars.json it returned iteration {other}, but the run's best "
        "checkpoint (best_mIoU_iter_N.pth) was saved at another iteration"]


def test_the_best_iteration_probe_tells_right_from_wrong(run, monkeypatch):
    _, runner = run
    scalars = Path(runner.log_dir, "vis_data", "scalars.json")

    def probe(answer):
        return _probe("best_iteration_test", monkeypatch, best_iteration=answer, runner=runner,
                      scalars_file=scalars)

    truth = probe(best_iteration)
    assert truth["run"] is True and all(type(step) is int for step in truth["made_up"])
    assert same(probe(best_iteration_pandas), truth)
    scope = {"json": json, "Path": Path}
    exec(WRONG["best_iteration"], scope)
    for wrong in (scope["best_iteration"], later_of_a_tie, best_by_accuracy,
                  lambda path: float(best_iteration(path)), lambda path: None):
        assert not same(probe(wrong), truth), wrong


@pytest.fixture
def copied(run, tmp_path):
    """A copy of the tiny run's work dir (resuming writes into it) and its last checkpoint."""
    cfg, runner = run
    work_dir = shutil.copytree(runner.work_dir, tmp_path / "run")
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(work_dir)
    return cfg, work_dir / "iter_4.pth"


def _resumed(cfg, **changes) -> Runner:
    resume_cfg = copy.deepcopy(cfg)
    resume_cfg.merge_from_dict(changes)
    resumed = Runner.from_cfg(prepare_config(resume_cfg))
    resumed.train()
    return resumed


RESUMED = {"runner": True, "resumed_at": 0, "first_step": 1, "last_step": 2, "trained_twice": 0,
           "val_steps": [2], "last_is_this_run": True, "last_iter": 2}


def test_resume_from_the_last_checkpoint_is_correct(copied, monkeypatch):
    cfg, last = copied
    verify = training.TASKS["resume"].verify
    assert evaluate(None, verify, start_iter=4, extra_iters=2) == ("unanswered", [])
    resumed = _resumed(cfg, resume=True, load_from=str(last), **{"train_cfg.max_iters": 6})
    assert evaluate(resumed, verify, start_iter=4, extra_iters=2) == ("correct", [])
    assert evaluate(resumed, verify, start_iter=3, extra_iters=2)[1] == [
        "the run resumed from iteration 4, not from the run's last checkpoint"]
    assert evaluate(resumed, verify, start_iter=4, extra_iters=5)[1] == [
        "the resumed run ended at iteration 6, not 5 iterations after the checkpoint it resumed"]
    assert _probe("resume_test", monkeypatch, resumed=resumed, last_iter=4) == RESUMED
    assert _probe("resume_test", monkeypatch, resumed=None, last_iter=4) == {"runner": False}


def test_resume_without_load_from_takes_the_last_checkpoint_too(copied, monkeypatch):
    cfg, _ = copied  # the smoke preset has no load_from: mmengine reads last_checkpoint
    resumed = _resumed(cfg, resume=True, **{"train_cfg.max_iters": 6})
    assert evaluate(resumed, training.verify_resume, start_iter=4, extra_iters=2) == (
        "correct", [])
    assert _probe("resume_test", monkeypatch, resumed=resumed, last_iter=4) == RESUMED


def test_resume_that_trains_nothing_is_wrong(copied, monkeypatch):
    cfg, last = copied
    scope = {"copy": copy, "cfg": cfg, "last": last, "Runner": Runner,
             "prepare_config": prepare_config}
    exec(WRONG["resume"], scope)  # max_iters not extended
    assert evaluate(scope["resumed"], training.verify_resume, start_iter=4, extra_iters=2) == (
        "wrong", ["the run resumed but trained no iteration: its train_cfg.max_iters must go "
                  "beyond the checkpoint's iteration"])
    assert not same(_probe("resume_test", monkeypatch, resumed=scope["resumed"], last_iter=4),
                    RESUMED)


def test_load_from_without_resume_is_wrong(copied, monkeypatch):
    cfg, last = copied
    resumed = _resumed(cfg, load_from=str(last), **{"train_cfg.max_iters": 6})
    assert evaluate(resumed, training.verify_resume, start_iter=4, extra_iters=2) == ("wrong", [
        "the run loaded the checkpoint's weights but did not resume it: its iteration counter, "
        "optimizer and scheduler started from zero"])
    got = _probe("resume_test", monkeypatch, resumed=resumed, last_iter=4)
    assert got["trained_twice"] == 4 and not same(got, RESUMED)
