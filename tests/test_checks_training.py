"""The checks of notebook 03's tasks (helpers.checks.training) on short real runs of the smoke
preset on the demo data: blank is unanswered, the solution is correct, plausible mistakes are
wrong with a message that names the problem and does not give the expected value away."""

from __future__ import annotations

import copy
import json
import runpy
import shutil
from pathlib import Path

import pytest
from mmengine.runner import Runner

from helpers.checkpoint import find_checkpoint, load_checkpoint
from helpers.config import build_config
from helpers.checks import evaluate, training
from helpers.train import prepare_config

WRONG = runpy.run_path(str(Path(__file__).parent / "wrong_answers" / "03_training.py"))[
    "WRONG_ANSWERS"]
TINY = {  # a few iterations of the smoke preset: for mechanics, not for learning
    "train_cfg.max_iters": 4,
    "train_cfg.val_interval": 2,
    "default_hooks.checkpoint.interval": 2,
    "default_hooks.logger.interval": 1,
    "train_dataloader.batch_size": 2,
}


def _tiny(demo_root: Path, work_dir: Path, **overrides):
    return build_config("smoke", demo_root, work_dir, **{**TINY, **overrides})


@pytest.fixture(scope="module")
def run(demo_root, tmp_path_factory):
    """The task's solution on a tiny config: (cfg, the trained Runner)."""
    cfg = _tiny(demo_root, tmp_path_factory.mktemp("tiny") / "run")
    runner = Runner.from_cfg(prepare_config(cfg))
    runner.train()
    return cfg, runner


def test_a_trained_runner_is_correct_an_untrained_one_is_not(run):
    cfg, runner = run
    verify = training.run_verifier(cfg)
    assert evaluate(None, verify) == ("unanswered", [])
    assert evaluate(runner, verify) == ("correct", [])
    scope = {"Runner": Runner, "run_cfg": prepare_config(cfg)}
    exec(WRONG["train"], scope)  # built, not trained
    assert evaluate(scope["runner"], verify) == ("wrong", [
        "the runner saved no checkpoint in the work dir: it was built, but it has not trained"])
    assert evaluate(cfg, verify)[1] == ["`runner` is a Config, not an mmengine Runner"]


def test_a_run_of_another_length_is_named(run):
    cfg, runner = run
    longer = copy.deepcopy(cfg)
    longer.train_cfg.max_iters = 6
    status, problems = evaluate(runner, training.run_verifier(longer))
    assert status == "wrong"
    assert problems == ["the run's last checkpoint holds iteration 4, but the config trains 6 "
                        "iterations",
                        "the run validated at iterations [2, 4], not every "
                        "train_cfg.val_interval up to max_iters"]


def test_ensure_trained_keeps_a_good_run_and_trains_a_missing_one(run, demo_root, tmp_path,
                                                                  capsys):
    cfg, runner = run
    assert training.ensure_trained(runner, cfg) is runner
    assert "Your runner trained the run" in capsys.readouterr().out
    fresh = _tiny(demo_root, tmp_path / "fallback", **{"train_cfg.max_iters": 2})
    trained = training.ensure_trained(None, fresh)
    assert "The training task is not answered" in capsys.readouterr().out
    assert load_checkpoint(find_checkpoint(tmp_path / "fallback", "last"))["meta"]["iter"] == 2
    assert evaluate(trained, training.run_verifier(fresh)) == ("correct", [])


def best_iteration(scalars_file):
    rows = [json.loads(line) for line in Path(scalars_file).read_text().splitlines() if line]
    return int(max((r for r in rows if "mIoU" in r), key=lambda r: r["mIoU"])["step"])


def test_best_iteration_blank_right_and_mistakes(run):
    _, runner = run
    scalars = Path(runner.log_dir, "vis_data", "scalars.json")
    verify = training.best_iteration_verifier(scalars)
    assert evaluate(lambda path: None, verify) == ("unanswered", [])
    assert evaluate(best_iteration, verify) == ("correct", [])
    assert evaluate(training.best_iteration_reference, verify) == ("correct", [])
    best_ckpt = load_checkpoint(find_checkpoint(runner.work_dir, "best"))["meta"]["iter"]
    assert training.best_iteration_reference(scalars) == best_ckpt

    scope = {"json": json, "Path": Path}
    exec(WRONG["best_iteration"], scope)  # the last validation
    status, problems = evaluate(scope["best_iteration"], verify)
    assert status == "wrong"
    assert "for a log whose best validation is not the last it returned iteration 160: not the " \
           "step of the (first) validation with the highest mIoU" in problems
    assert "iteration 80" not in " ".join(problems)  # the made-up log's best is not given away

    def later_of_a_tie(path):
        rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
        vals = [r for r in rows if "mIoU" in r]
        return max(reversed(vals), key=lambda r: r["mIoU"])["step"]

    assert evaluate(later_of_a_tie, verify)[1] == [
        "for a log with two equal best validations it returned iteration 900: not the step of "
        "the (first) validation with the highest mIoU"]
    assert evaluate(lambda path: float(best_iteration(path)), verify)[1][0].endswith(
        "(float): an iteration is a whole number, int")


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


def test_resume_from_the_last_checkpoint_is_correct(copied):
    cfg, last = copied
    verify = training.resume_verifier(4, 2)
    assert evaluate(None, verify) == ("unanswered", [])
    resumed = _resumed(cfg, resume=True, load_from=str(last), **{"train_cfg.max_iters": 6})
    assert evaluate(resumed, verify) == ("correct", [])
    assert evaluate(resumed, training.resume_verifier(3, 2))[1] == [
        "the run resumed from iteration 4, not from the run's last checkpoint"]
    assert evaluate(resumed, training.resume_verifier(4, 5))[1] == [
        "the resumed run ended at iteration 6, not 5 iterations after the checkpoint it resumed"]


def test_resume_that_trains_nothing_is_wrong(copied):
    cfg, last = copied
    scope = {"copy": copy, "cfg": cfg, "last": last, "Runner": Runner,
             "prepare_config": prepare_config}
    exec(WRONG["resume"], scope)  # max_iters not extended
    assert evaluate(scope["resumed"], training.resume_verifier(4, 2)) == ("wrong", [
        "the run resumed but trained no iteration: its train_cfg.max_iters must go beyond the "
        "checkpoint's iteration"])


def test_load_from_without_resume_is_wrong(copied):
    cfg, last = copied
    resumed = _resumed(cfg, load_from=str(last), **{"train_cfg.max_iters": 2})
    assert evaluate(resumed, training.resume_verifier(4, 2)) == ("wrong", [
        "the run loaded the checkpoint's weights but did not resume it: its iteration counter, "
        "optimizer and scheduler started from zero"])
