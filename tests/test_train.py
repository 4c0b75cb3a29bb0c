"""helpers.train: the smoke preset learns, runs are reproducible, resume continues (also a
fine-tuning run that sets load_from), CLI works."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from matplotlib.figure import Figure
from mmengine.hooks import Hook

from helpers.checkpoint import UnsafeCheckpointError, find_checkpoint, load_checkpoint
from helpers.config import CONFIG_NAME, build_config, save_config
from helpers.plotting import plot_curves
from helpers.train import build_runner, read_scalars, train

TINY = {  # a few iterations of the smoke preset: for mechanics, not for learning
    "train_cfg.max_iters": 4,
    "train_cfg.val_interval": 4,
    "default_hooks.checkpoint.interval": 2,
    "default_hooks.logger.interval": 1,
    "train_dataloader.batch_size": 2,
}


def test_smoke_preset_learns_the_demo_data(trained_smoke):
    assert trained_smoke.metrics["mIoU"] >= 50, trained_smoke.metrics
    best = load_checkpoint(trained_smoke.checkpoint)["meta"]
    train_log, val_log = read_scalars(trained_smoke.work_dir)
    # train() returns the last validation, as logged; the kept checkpoint is the best one
    assert val_log.iloc[-1][["aAcc", "mIoU", "mAcc"]].to_dict() == pytest.approx(
        trained_smoke.metrics)
    assert val_log["mIoU"].idxmax() == best["iter"]
    assert trained_smoke.checkpoint.name == f"best_mIoU_iter_{best['iter']}.pth"
    assert train_log["loss"].iloc[-1] < 0.5 * train_log["loss"].iloc[0]


def test_plot_curves_reads_the_runs_scalars(trained_smoke):
    fig = plot_curves(trained_smoke.work_dir)
    assert isinstance(fig, Figure)
    loss_ax, val_ax = fig.axes[:2]
    _, val_log = read_scalars(trained_smoke.work_dir)
    mious = [line for line in val_ax.get_lines() if line.get_label() == "mIoU"]
    assert list(mious[0].get_ydata()) == list(val_log["mIoU"])
    assert any(line.get_label() == "loss" for line in loss_ax.get_lines())


def test_same_seed_same_run(demo_root, tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = build_config("smoke", demo_root, tmp_path / name, **TINY)
        metrics = train(cfg)
        losses = read_scalars(tmp_path / name)[0]["loss"]
        weights = load_checkpoint(find_checkpoint(tmp_path / name, "last"))["state_dict"]
        runs.append((metrics, losses, weights))
    (m1, l1, w1), (m2, l2, w2) = runs
    assert m1 == m2 and set(m1) == {"aAcc", "mIoU", "mAcc"}
    assert list(l1) == list(l2) and len(l1) == TINY["train_cfg.max_iters"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


class _Interrupt(Hook):
    """Fails before iteration `at` (0-based count of finished iterations), like a crash."""

    def __init__(self, at: int) -> None:
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter == self.at:
            raise KeyboardInterrupt(f"simulated interruption at iteration {self.at}")


class _Record(Hook):
    def __init__(self) -> None:
        self.iters: list[int] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.iters.append(runner.iter)


class _Weights(Hook):
    """Keeps a copy of the model's weights as training starts (after load_from or resume)."""

    def __init__(self, into: dict) -> None:
        self.into = into

    def before_train(self, runner) -> None:
        self.into.update({k: v.detach().clone() for k, v in runner.model.state_dict().items()})


def test_interrupted_run_resumes_from_its_last_checkpoint(demo_root, tmp_path):
    cfg = build_config("smoke", demo_root, tmp_path, **{**TINY, "train_cfg.max_iters": 6})
    runner = build_runner(cfg)
    runner.register_hook(_Interrupt(at=3))
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    assert find_checkpoint(tmp_path, "last").name == "iter_2.pth"  # saved every 2 iterations

    record = _Record()
    runner = build_runner(cfg, resume=True)
    runner.register_hook(record)
    runner.train()
    assert record.iters == [2, 3, 4, 5]  # continued after iteration 2, not from scratch
    last = find_checkpoint(tmp_path, "last")
    assert last.name == "iter_6.pth" and load_checkpoint(last)["meta"]["iter"] == 6
    steps = read_scalars(tmp_path)[0].index
    assert list(steps) == [1, 2, 3, 4, 5, 6]


def test_resume_continues_the_work_dir_even_with_load_from(demo_root, tmp_path):
    """A fine-tuning run (load_from set) restarted with resume continues its own last checkpoint.

    mmengine alone resumes from load_from when both are set: from the pretrained file (here it
    has no 'epoch' in its meta, like a released checkpoint: KeyError) instead of the run's own.
    """
    from mmengine.runner import save_checkpoint

    from helpers.checkpoint import init_model

    n = 2
    tiny = {**TINY, "train_cfg.max_iters": n, "train_cfg.val_interval": n,
            "default_hooks.checkpoint.interval": n}
    pretrained = tmp_path / "pretrained.pth"  # a released-style checkpoint: weights and meta
    model = init_model(build_config("smoke", demo_root, tmp_path / "unused", **tiny))
    weights = {k: v + 0.01 * (i % 7) for i, (k, v) in enumerate(model.state_dict().items())
               if v.is_floating_point()}
    save_checkpoint({"meta": {"mmseg_version": "1.2.2"}, "state_dict": weights}, str(pretrained))
    work_dir = tmp_path / "finetune"

    def run(max_iters: int) -> tuple[list[int], dict]:
        cfg = build_config("smoke", demo_root, work_dir,
                           **{**tiny, "train_cfg.max_iters": max_iters}, load_from=str(pretrained))
        record, start = _Record(), {}
        runner = build_runner(cfg, resume=True)  # the same call for the first run and restarts
        runner.register_hook(record)
        runner.register_hook(_Weights(start))
        runner.train()
        return record.iters, start

    iters, start = run(n)  # work_dir empty: a new run, initialised from load_from
    assert iters == list(range(n))
    assert all(torch.equal(start[k], weights[k]) for k in weights)
    first_ckpt = load_checkpoint(work_dir / f"iter_{n}.pth")
    assert first_ckpt["meta"]["iter"] == n

    iters, start = run(2 * n)  # load_from still set: continues from iter_n.pth, not from it
    assert iters == list(range(n, 2 * n))
    assert all(torch.equal(start[k], first_ckpt["state_dict"][k]) for k in weights)
    assert load_checkpoint(find_checkpoint(work_dir, "last"))["meta"]["iter"] == 2 * n
    logs = sorted(work_dir.glob("*/vis_data/scalars.json"))
    steps = [[row["step"] for line in log.read_text().splitlines() if line
              for row in [json.loads(line)] if "loss" in row] for log in logs]
    assert steps == [list(range(1, n + 1)), list(range(n + 1, 2 * n + 1))]  # none trained twice


def test_load_from_goes_through_the_safe_loader(demo_root, tmp_path, trained_smoke):
    target = tmp_path / "pwned.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(target), "w"))

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"p": Payload()}}, evil)
    cfg = build_config("smoke", demo_root, tmp_path / "evil_run", **TINY, load_from=str(evil))
    with pytest.raises(UnsafeCheckpointError):
        train(cfg)
    assert not target.exists()
    # a real checkpoint as load_from: training starts from its weights
    cfg = build_config("smoke", demo_root, tmp_path / "finetune",
                       **{**TINY, "train_cfg.max_iters": 1, "train_cfg.val_interval": 1},
                       load_from=str(trained_smoke.checkpoint))
    metrics = train(cfg)
    assert metrics["mIoU"] > 0.8 * trained_smoke.metrics["mIoU"]


def test_cli_trains_and_reports(demo_root, tmp_path):
    config = save_config(build_config("smoke", demo_root, tmp_path / "wd", **TINY),
                         tmp_path / CONFIG_NAME)
    proc = subprocess.run([sys.executable, "-m", "helpers.train", "--config", str(config),
                           "--work-dir", str(tmp_path / "cli_wd")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["val"]) == {"aAcc", "mIoU", "mAcc"}
    assert find_checkpoint(tmp_path / "cli_wd", "last").name == "iter_4.pth"


def test_cli_bad_input(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "helpers.train", "--config",
                           str(tmp_path / "nope.py")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "nope.py" in proc.stderr and "helpers.config --preset" in proc.stderr
    help_text = subprocess.run([sys.executable, "-m", "helpers.train", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "torchrun --nproc_per_node=N -m helpers.train" in help_text


def _tagged(notebook: str, tag: str) -> list[str]:
    """The sources of an instructor notebook's code cells that carry `tag`, in order."""
    import nbformat

    from helpers.env import repo_root

    nb = nbformat.read(repo_root() / "source" / "voc" / notebook, as_version=4)
    found = [c.source for c in nb.cells
             if c.cell_type == "code" and tag in c.metadata.get("tags", [])]
    assert found, f"{notebook} has no code cell tagged {tag!r}"
    return found


def test_notebook_03_trains_the_config_your_notebook_02_saved(demo_root, tmp_path, monkeypatch):
    """On a CPU, notebook 03 trains the student's config: notebook 02's answers with one field
    changed (a batch of 4, not the homework's 8) are saved by 02's cell, loaded and shrunk by
    03's cells and trained by its training cell; the config the run recorded holds the changed
    field and the shrink, and notebooks 04/05's chooser picks that run with that config."""
    import types
    import warnings
    from pathlib import Path

    import nbformat
    from mmengine.config import Config
    from mmengine.runner import Runner

    from helpers import model_zoo
    from helpers.config import find_config
    from helpers.env import repo_root
    from teacher.tasks import solutions

    work = tmp_path / "work_dirs" / "pspnet_voc12"
    answers = solutions(nbformat.read(repo_root() / "source" / "voc" / "02_config.ipynb",
                                      as_version=4))
    cfg = Config.fromfile(str(find_config("pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py")))
    ns = dict(cfg=cfg, VOC_ROOT=str(demo_root), WORK_DIR=str(work), pretrained=None, Path=Path)
    for task in ("model_edits", "data_edits", "schedule_edits"):
        exec(answers[task], ns)
    cfg.train_dataloader.batch_size = 4  # the student's own change
    cfg.custom_imports = dict(imports=["helpers.checkpoint"], allow_failed_imports=False)
    (save,) = _tagged("02_config.ipynb", "save_config")
    exec(save, dict(ns, TASKS_DONE=True))

    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("VOC_ROOT", str(demo_root))
    monkeypatch.setenv("WORK_DIR", str(work))
    (params,) = _tagged("03_training.ipynb", "parameters")
    run = dict(S=types.SimpleNamespace(device="cpu"), Path=Path, Config=Config, Runner=Runner,
               lr_hook=None)
    exec(params, run)
    assert run["SHRINK"]
    run["CPU_ITERS"] = 4  # 4 iterations of the shrunk config are enough to prove the plumbing
    load, shrink = _tagged("03_training.ipynb", "your_config")
    exec(load, run)
    exec(shrink, run)
    run["cfg"].train_cfg.val_interval = run["cfg"].default_hooks.checkpoint.interval = 4
    (train_cell,) = _tagged("03_training.ipynb", "train")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(train_cell, run)
    assert not [w for w in caught if "draw is False" in str(w.message)]  # no hook that only warns

    recorded = Config.fromfile(str(work / f"{run['runner'].timestamp}.py"))
    assert recorded.train_dataloader.batch_size == 4  # the field changed in 02's answer
    assert recorded.model.backbone.depth == 18 and recorded.crop_size == (96, 96)  # 03's shrink
    assert recorded.model.decode_head.num_classes == 21  # the rest as 02 wrote it
    choice = model_zoo.ensure_checkpoint(work, demo_root, download=False)
    assert choice.source == "trained" and str(choice).startswith("Your model: ")
    assert Config.fromfile(str(choice.config)).train_dataloader.batch_size == 4
