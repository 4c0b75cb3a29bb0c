"""helpers.train: the smoke preset learns, runs are reproducible, resume continues, CLI works."""

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
