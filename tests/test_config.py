"""helpers.config: presets built from mmseg's shipped configs, the CLI, mmseg's tools/train.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from helpers import config as hc
from helpers import downloads
from helpers.config import (
    OFFICIAL_CONFIG,
    build_config,
    config_diff,
    config_differences,
    find_config,
    flatten_config,
    save_config,
    unexplained_official_differences,
)
from helpers.config import build as config_build
from helpers.voc import DatasetError

SEED_TRAIN_PIPELINE = [  # the homework's config cell, "修改配置文件"
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="RandomResize", scale=(320, 240), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=(256, 256), cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
SEED_TEST_PIPELINE = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(320, 240), keep_ratio=True),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]


def _plain(x):
    """Config values with tuples as lists, so that literal dicts compare equal."""
    return flatten_config({"v": x})


def test_mmseg_ships_the_base_configs():
    assert hc.mmseg_config_dir().name == "configs"
    assert find_config(hc.BASE_CONFIG).parent.name == "pspnet"
    assert (hc.mmseg_tools_dir() / "train.py").is_file()
    with pytest.raises(FileNotFoundError, match="not_a_config.py.*mmseg_config_dir"):
        find_config("not_a_config.py")


def test_seed_preset_is_the_homework_recipe(demo_root, tmp_path, monkeypatch):
    ckpt = tmp_path / "cityscapes.pth"
    ckpt.write_bytes(b"")  # only its existence matters to the builder
    monkeypatch.setattr(config_build, "pretrained_path", lambda dest=None: ckpt)
    cfg = build_config("seed", demo_root, tmp_path / "wd")
    assert cfg.load_from == downloads.PRETRAINED_URL  # by URL: each machine reads its own cache
    assert tuple(cfg.crop_size) == (256, 256)
    assert tuple(cfg.model.data_preprocessor.size) == (256, 256)
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 21
    for part in ("backbone", "decode_head", "auxiliary_head"):
        assert cfg.model[part].norm_cfg.type == "BN"
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.optimizer.lr == cfg.optim_wrapper.optimizer.lr == 0.01 / 8
    assert cfg.train_cfg.max_iters == 4000 and cfg.train_cfg.val_interval == 1000
    assert cfg.default_hooks.logger.interval == 500
    assert cfg.default_hooks.checkpoint.interval == 1000
    assert cfg.randomness.seed == 0
    assert cfg.param_scheduler[0].end == 80000  # the homework left the base's schedule as is
    assert _plain(cfg.train_pipeline) == _plain(SEED_TRAIN_PIPELINE)
    assert _plain(cfg.test_pipeline) == _plain(SEED_TEST_PIPELINE)
    for loader, split, pipeline in (("train_dataloader", "train", SEED_TRAIN_PIPELINE),
                                    ("val_dataloader", "val", SEED_TEST_PIPELINE),
                                    ("test_dataloader", "val", SEED_TEST_PIPELINE)):
        ds = cfg[loader].dataset
        assert ds.type == "PascalVOCDataset" and ds.data_root == str(demo_root)
        assert ds.ann_file == f"ImageSets/Segmentation/{split}.txt"
        assert dict(ds.data_prefix) == dict(img_path="JPEGImages",
                                            seg_map_path="SegmentationClass")
        assert _plain(ds.pipeline) == _plain(pipeline)
    assert cfg.work_dir == str(tmp_path / "wd")


def test_seed_preset_offline_says_so_and_starts_from_scratch(demo_root, tmp_path, monkeypatch):
    monkeypatch.setattr(config_build, "pretrained_path", lambda dest=None: tmp_path / "absent.pth")
    with pytest.warns(UserWarning, match="absent.pth: training starts FROM SCRATCH"):
        cfg = build_config("seed", demo_root, tmp_path)
    assert cfg.load_from is None and cfg.model.pretrained is None
    with pytest.raises(FileNotFoundError, match="nope.pth.*load_from=None"):
        build_config("smoke", demo_root, tmp_path, load_from=str(tmp_path / "nope.pth"))


def test_official_preset_equals_mmseg_voc_config_field_by_field(demo_root, tmp_path):
    cfg = build_config("official", demo_root, tmp_path)
    assert unexplained_official_differences(cfg) == {}
    official = Config.fromfile(str(find_config(OFFICIAL_CONFIG)))
    # model, pipelines and schedule equal except the documented BN/SyncBN switch
    model_diff = config_differences(Config(dict(model=cfg.model)),
                                    Config(dict(model=official.model)))
    assert set(model_diff) == {f"model.{p}.norm_cfg.type"
                               for p in ("backbone", "decode_head", "auxiliary_head")}
    train_ds = official.train_dataloader.dataset.datasets[0]
    assert _plain(cfg.train_dataloader.dataset.pipeline) == _plain(train_ds.pipeline)
    assert _plain(cfg.val_dataloader.dataset.pipeline) == _plain(
        official.val_dataloader.dataset.pipeline)
    for key in ("param_scheduler", "train_cfg", "optim_wrapper", "val_evaluator",
                "tta_pipeline", "crop_size"):
        assert _plain(cfg[key]) == _plain(official[key]), key
    assert cfg.train_dataloader.batch_size == official.train_dataloader.batch_size
    # the check can fail: an undocumented change shows up
    cfg.optim_wrapper.optimizer.lr = 0.02
    assert set(unexplained_official_differences(cfg)) == {"optim_wrapper.optimizer.lr"}


def test_official_preset_keeps_mmseg_lr_on_several_gpus(demo_root, tmp_path):
    from helpers.distributed import batch_plan, distribute_config

    cfg = distribute_config(build_config("official", demo_root, tmp_path), 4, cuda=True)
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)
    plan = batch_plan(cfg, 4)
    assert (plan.total_batch, plan.lr) == (16, 0.01)
    smoke = distribute_config(build_config("smoke", demo_root, tmp_path), 2, cuda=True)
    assert batch_plan(smoke, 2).lr == 2 * smoke.optim_wrapper.optimizer.lr  # linear rule


@pytest.mark.parametrize("base", ["pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py",
                                  "deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py",
                                  hc.BASE_CONFIG])
@pytest.mark.parametrize("preset", ["seed", "smoke"])
def test_builder_works_for_other_encoder_decoder_configs(base, preset, demo_root, tmp_path):
    cfg = build_config(preset, demo_root, tmp_path, base=base, load_from=None)
    init_default_scope("mmseg")
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 64, 64))  # mode "tensor": decode-head logits
    assert logits.shape[:2] == (1, 21)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    if preset == "smoke":
        assert cfg.model.backbone.depth == 18
        assert cfg.model.backbone.base_channels == hc.RECIPES["smoke"].slim_channels


def test_overrides_and_schedule_follow(demo_root, tmp_path):
    cfg = build_config("smoke", demo_root, tmp_path, **{"train_cfg.max_iters": 40,
                                                         "train_dataloader.batch_size": 2})
    assert cfg.train_cfg.max_iters == 40 and cfg.train_dataloader.batch_size == 2
    assert cfg.param_scheduler[0].end == 40  # PolyLR follows the schedule


def test_diff_shows_the_changes(demo_root, tmp_path):
    base = Config.fromfile(str(find_config(hc.BASE_CONFIG)))
    diff = config_diff(base, build_config("smoke", demo_root, tmp_path))
    assert "-        num_classes=19," in diff and "+        num_classes=21," in diff
    assert "+        type='PascalVOCDataset'" in diff or "+    type='PascalVOCDataset'" in diff


def test_saved_config_round_trips(demo_root, tmp_path):
    cfg = build_config("smoke", demo_root, tmp_path)
    path = save_config(cfg, tmp_path / "sub" / hc.CONFIG_NAME)
    assert config_differences(Config.fromfile(str(path)), cfg) == {}


def test_bad_input_gives_clear_errors(demo_root, tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'fast'.*seed, official, smoke"):
        build_config("fast", demo_root, tmp_path)
    with pytest.raises(DatasetError, match="nowhere.*does not exist.*helpers.demo_data"):
        build_config("smoke", tmp_path / "nowhere", tmp_path)
    # split-file problems: tests/test_voc.py, for every entry point
    with pytest.raises(FileNotFoundError, match="missing.py.*helpers.config --preset"):
        hc.load_config(tmp_path / "missing.py")


def test_cli_writes_a_config(demo_root, tmp_path, capsys):
    out = tmp_path / "wd" / hc.CONFIG_NAME
    assert hc.main(["--preset", "smoke", "--voc-root", str(demo_root), "--out", str(out),
                    "--cfg-options", "train_cfg.max_iters=7"]) == 0
    cfg = Config.fromfile(str(out))
    assert cfg.train_cfg.max_iters == 7 and cfg.work_dir == str(out.parent)
    with pytest.raises(SystemExit) as exit_info:
        hc.main(["--preset", "huge", "--voc-root", str(demo_root), "--out", str(out)])
    assert exit_info.value.code == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err


def test_saved_config_runs_with_mmseg_tools_train(demo_root, tmp_path):
    """The file helpers.config writes runs unchanged with mmseg's own tools/train.py."""
    out = tmp_path / "wd" / hc.CONFIG_NAME
    options = ["train_cfg.max_iters=2", "train_cfg.val_interval=2",
               "default_hooks.checkpoint.interval=2", "default_hooks.logger.interval=1"]
    subprocess.run([sys.executable, "-m", "helpers.config", "--preset", "smoke", "--voc-root",
                    str(demo_root), "--out", str(out), "--cfg-options", *options], check=True)
    proc = subprocess.run([sys.executable, str(hc.mmseg_tools_dir() / "train.py"), str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    work_dir = Path(out.parent)
    assert (work_dir / "iter_2.pth").is_file()
    assert list(work_dir.glob("best_mIoU_iter_2.pth"))
    assert "mIoU" in proc.stdout + proc.stderr
