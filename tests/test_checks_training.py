"""The checks of notebook 03's tasks (helpers.checks.training) on short real runs of the smoke
preset on the demo data: blank is unanswered, the solution is correct, plausible mistakes are
wrong with a message that names the problem and does not give the expected value away. The
grader's probes (teacher/tasks/n03_training.py, run here without the sandbox on the grader's
own fixtures) give the solution's payload for a second correct answer and fail each plausible
mistake on the case kinds it gets wrong, and on those only. The hook task's check and probe
train a few iterations each (a new run, then that run resumed) with the hook attached."""

from __future__ import annotations

import copy
import json
import runpy
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from helpers.checkpoint import find_checkpoint, load_checkpoint
from helpers.checks import evaluate, training
from helpers.config import build_config
from helpers.env import repo_root
from helpers.train import prepare_config
from teacher.tasks import n03_training as tasks
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


@pytest.fixture(scope="module")
def graded(demo_root, tmp_path_factory):
    """The grader's fixtures (its tiny run and the hook probe's config), made once."""
    folder = tmp_path_factory.mktemp("fixtures")
    tasks.fixtures(folder, str(demo_root))
    return folder


@pytest.fixture(autouse=True)
def _as_in_the_sandbox(monkeypatch):
    """The task's declared course module where the harness puts it (``course.run_config``),
    and mmengine's checkpoint loaders as they were afterwards: the givens register a loader of
    their own for the sandbox, which must not outlive a test in this process."""
    import types
    from collections import OrderedDict

    from mmengine.runner import CheckpointLoader

    import helpers.run_config

    package = types.ModuleType("course")
    package.run_config = helpers.run_config
    monkeypatch.setitem(sys.modules, "course", package)
    monkeypatch.setitem(sys.modules, "course.run_config", helpers.run_config)
    monkeypatch.setattr(CheckpointLoader, "_schemes", OrderedDict(CheckpointLoader._schemes))


def _grade(grade_id: str, answer, graded, tmp_path, **extra) -> dict:
    """Payload (or "raised <Error>") per case kind of task `grade_id` for `answer` (source, run
    in the task's givens as the harness runs it, without the sandbox), with `extra` names."""
    scratch = Path(tmp_path, f"scratch_{len(list(tmp_path.iterdir()))}")
    scratch.mkdir()
    ctx = SimpleNamespace(fixtures=str(graded), scratch=str(scratch), voc_root=None)
    spec = tasks.TASKS[grade_id]
    ns: dict = {}
    spec["givens"](ns, ctx)
    ns.update(extra)
    if answer is not None:
        exec(answer, ns)
    out = {}
    for kind, call in spec["probe"](ns, ctx).items():
        try:
            out[kind] = call()
        except Exception as err:  # noqa: BLE001  (the answer's error: a failed case kind)
            out[kind] = f"raised {type(err).__name__}"
    json.dumps(out, allow_nan=False)  # plain data
    return out


def _failed(got: dict, truth: dict) -> set[str]:
    return {kind for kind in truth if not same(got[kind], truth[kind])}


@pytest.fixture(scope="module")
def run(demo_root, tmp_path_factory):
    """The task's solution on a tiny config: (cfg, the trained Runner)."""
    cfg = _tiny(demo_root, tmp_path_factory.mktemp("tiny") / "run")
    runner = Runner.from_cfg(prepare_config(cfg))
    runner.train()
    return cfg, runner


def _solution_cell(grade_id: str) -> str:
    cell = next(c for c in nbformat.read(NOTEBOOK, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return cell.source.replace("### BEGIN SOLUTION\n", "").replace("### END SOLUTION\n", "")


def _hook(source: str):
    """The class that answer `source` registers as LossLrLogger (the registry's entry)."""
    scope = {"json": json, "Path": Path}
    exec(source, scope)
    return scope["LossLrLogger"]


class _Rows(Hook):
    """A correct hook but for `row`: what a variant records for one iteration."""

    def before_train(self, runner):
        self.rows = []

    def row(self, runner, outputs):
        return {"iter": runner.iter + 1, "loss": outputs["loss"].item(),
                "lr": runner.optim_wrapper.get_lr()["lr"][0]}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.rows.append(self.row(runner, outputs))

    def after_train(self, runner):
        Path(runner.work_dir, training.HOOK_FILE).write_text(json.dumps(self.rows))


class CountsItself(_Rows):  # numbers iterations with a counter of its own: 1 after a resume too
    def before_train(self, runner):
        self.rows, self.n = [], 0

    def row(self, runner, outputs):
        self.n += 1
        return {**super().row(runner, outputs), "iter": self.n}


class ConfiguredLr(_Rows):  # the config's lr, not the scheduler's
    def row(self, runner, outputs):
        return {**super().row(runner, outputs), "lr": runner.cfg.optim_wrapper.optimizer.lr}


class DecodeLossOnly(_Rows):  # the decode head's loss without the auxiliary head's
    def row(self, runner, outputs):
        return {**super().row(runner, outputs), "loss": outputs["decode.loss_ce"].item()}


class KeepsTensors(_Rows):  # the loss tensor itself: json cannot write it
    def row(self, runner, outputs):
        return {**super().row(runner, outputs), "loss": outputs["loss"]}


class SharedRows(_Rows):  # rows in a class attribute: a second run appends to the first's
    rows: list = []

    def before_train(self, runner):
        pass


def _registered(cls):
    HOOKS.register_module(name=training.HOOK_NAME, module=cls, force=True)
    return cls


@pytest.fixture(scope="module")
def hook_cfg(demo_root, tmp_path_factory):
    return _tiny(demo_root, tmp_path_factory.mktemp("hook") / "run")


def test_the_hook_check_blank_right_and_mistakes(hook_cfg):
    verify = training.TASKS["loss_lr_hook"].verify
    assert evaluate(None, verify, cfg=hook_cfg) == ("unanswered", [])
    assert evaluate(_hook(_solution_cell("loss_lr_hook")), verify, cfg=hook_cfg) == (
        "correct", [])
    assert evaluate(_hook(WRONG["loss_lr_hook"]), verify, cfg=hook_cfg) == ("wrong", [
        "in a new run your rows are for iterations [0, 1], but the run trained iterations "
        "[1, 2] (the step of mmengine's log)",
        "in a run resumed at iteration 2 your rows are for iterations [2], but the run trained "
        "iterations [3] (the step of mmengine's log)"])
    assert evaluate(_registered(CountsItself), verify, cfg=hook_cfg) == ("wrong", [
        "in a run resumed at iteration 2 your rows are for iterations [1], but the run trained "
        "iterations [3] (the step of mmengine's log)"])
    status, problems = evaluate(_registered(ConfiguredLr), verify, cfg=hook_cfg)
    assert status == "wrong" and problems[0].startswith(
        "in a new run the learning rate of iteration 2 is 0.025, but the optimizer used ")
    status, problems = evaluate(_registered(DecodeLossOnly), verify, cfg=hook_cfg)
    assert status == "wrong" and problems[0].startswith("in a new run the loss of iteration 1 ")
    status, problems = evaluate(_registered(KeepsTensors), verify, cfg=hook_cfg)
    assert status == "wrong" and problems[0].startswith(
        "your code raised TypeError: Object of type Tensor is not JSON serializable")
    assert evaluate(lambda: None, verify, cfg=hook_cfg)[1] == [
        "`LossLrLogger` is a function, not a subclass of mmengine's Hook"]
    _registered(CountsItself)
    assert evaluate(ConfiguredLr, verify, cfg=hook_cfg)[1] == [
        "no hook named LossLrLogger in mmengine's HOOKS registry is this class: register it "
        "there (custom_hooks finds hooks by their registered name)"]


NEW, RESUMED_ITERS = "a new run's iterations", "a resumed run's iterations"


def test_the_hook_probe_fails_each_mistake_on_its_own_kinds(graded, tmp_path):
    def grade(answer=None):
        return _grade("loss_lr_hook", answer, graded, tmp_path)

    truth = grade(_solution_cell("loss_lr_hook"))
    assert truth == {NEW: [1, 2, 3], RESUMED_ITERS: [4, 5],
                     "losses": [[3, 3, True, True, True], [2, 2, True, True]],
                     "learning rates": [[3, 3, True, True, True], [2, 2, True, True]]}
    assert _failed(grade(WRONG["loss_lr_hook"]), truth) == {NEW, RESUMED_ITERS}
    for hook, kinds in ((CountsItself, {RESUMED_ITERS}), (ConfiguredLr, {"learning rates"}),
                        (DecodeLossOnly, {"losses"}),
                        (SharedRows, {RESUMED_ITERS, "losses", "learning rates"})):
        _registered(hook)
        assert _failed(grade(), truth) == kinds, hook
    _registered(KeepsTensors)
    assert set(grade().values()) == {"raised TypeError"}
    HOOKS.register_module(name=training.HOOK_NAME, module=type("NotAHook", (Hook,), {}),
                          force=True)
    assert _failed(grade(), truth) == set(truth)  # registered, but writes nothing


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


def test_the_best_iteration_probe_fails_each_mistake_on_its_own_kinds(graded, tmp_path):
    def grade(answer):
        return _grade("best_iteration", None, graded, tmp_path, best_iteration=answer)

    truth = grade(best_iteration)
    assert truth["a run's scalars.json"]["the best checkpoint's"] is True
    assert all(type(step) is int for kind in ("made-up logs", "tied best validations")
               for step in truth[kind])
    assert same(grade(best_iteration_pandas), truth)
    scope = {"json": json, "Path": Path}
    exec(WRONG["best_iteration"], scope)
    assert {"made-up logs", "tied best validations"} <= _failed(grade(scope["best_iteration"]),
                                                               truth)
    assert _failed(grade(later_of_a_tie), truth) == {"tied best validations"}
    assert "made-up logs" in _failed(grade(best_by_accuracy), truth)
    for wrong in (lambda path: float(best_iteration(path)), lambda path: None):
        assert _failed(grade(wrong), truth) == set(truth)


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


RESUMED_AT, TRAINED, SAVED = ("resumed from the last checkpoint", "trained EXTRA_ITERS more",
                              "saved the resumed run's checkpoint")


def test_the_resume_probe_fails_each_mistake_on_its_own_kinds(graded, tmp_path):
    def grade(answer):
        return _grade("resume", answer, graded, tmp_path)

    truth = grade(_solution_cell("resume"))
    assert truth == {RESUMED_AT: {"resumed_at": 0, "trained_twice": 0},
                     TRAINED: {"first_step": 1, "last_step": 2, "val_steps": [2]},
                     SAVED: {"last_is_this_run": True, "last_iter": 2}}
    assert _failed(grade(WRONG["resume"]), truth) == {TRAINED, SAVED}
    start = ("resume_cfg = copy.deepcopy(cfg)\n"
             "resume_cfg.train_cfg.max_iters = last_iter + EXTRA_ITERS\n")
    train = "resumed = Runner.from_cfg(prepare_config(resume_cfg))\nresumed.train()\n"
    # resume alone: the config given sets load_from, so mmengine resumes from that checkpoint
    assert _failed(grade(start + "resume_cfg.resume = True\n" + train), truth) == {
        RESUMED_AT, TRAINED}
    # load_from alone: the weights of `last`, but iteration 0 and a fresh optimizer
    assert _failed(grade(start + "resume_cfg.load_from = str(last)\n" + train), truth) == {
        RESUMED_AT, TRAINED}
    assert _failed(grade("resumed = None"), truth) == set(truth)


def test_resume_from_the_last_checkpoint_is_correct(copied):
    cfg, last = copied
    verify = training.TASKS["resume"].verify
    assert evaluate(None, verify, start_iter=4, extra_iters=2) == ("unanswered", [])
    resumed = _resumed(cfg, resume=True, load_from=str(last), **{"train_cfg.max_iters": 6})
    assert evaluate(resumed, verify, start_iter=4, extra_iters=2) == ("correct", [])
    assert evaluate(resumed, verify, start_iter=3, extra_iters=2)[1] == [
        "the run resumed from iteration 4, not from the run's last checkpoint"]
    assert evaluate(resumed, verify, start_iter=4, extra_iters=5)[1] == [
        "the resumed run ended at iteration 6, not 5 iterations after the checkpoint it resumed"]


def test_resume_without_load_from_takes_the_last_checkpoint_too(copied):
    cfg, _ = copied  # the smoke preset has no load_from: mmengine reads last_checkpoint
    resumed = _resumed(cfg, resume=True, **{"train_cfg.max_iters": 6})
    assert evaluate(resumed, training.verify_resume, start_iter=4, extra_iters=2) == (
        "correct", [])


def test_resume_that_trains_nothing_is_wrong(copied):
    cfg, last = copied
    scope = {"copy": copy, "cfg": cfg, "last": last, "Runner": Runner,
             "prepare_config": prepare_config}
    exec(WRONG["resume"], scope)  # max_iters not extended
    assert evaluate(scope["resumed"], training.verify_resume, start_iter=4, extra_iters=2) == (
        "wrong", ["the run resumed but trained no iteration: its train_cfg.max_iters must go "
                  "beyond the checkpoint's iteration"])


def test_load_from_without_resume_is_wrong(copied):
    cfg, last = copied
    resumed = _resumed(cfg, load_from=str(last), **{"train_cfg.max_iters": 6})
    assert evaluate(resumed, training.verify_resume, start_iter=4, extra_iters=2) == ("wrong", [
        "the run loaded the checkpoint's weights but did not resume it: its iteration counter, "
        "optimizer and scheduler started from zero"])
