"""The checks of notebook 02's tasks (helpers.checks.config) with mmseg's shipped config and the
course's builder: blank is unanswered, the solution is correct, plausible mistakes are wrong with
a message that names the field and does not give the expected value away."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from mmengine.config import Config

from helpers.config import config_differences
from helpers.checks import config, evaluate

WRONG = runpy.run_path(str(Path(__file__).parent / "wrong_answers" / "02_config.py"))[
    "WRONG_ANSWERS"]


@pytest.fixture(scope="module")
def reference(demo_root, tmp_path_factory):
    return config.reference_config(demo_root, tmp_path_factory.mktemp("work02"))


def _solved(reference: Config, group: str, cfg: Config | None = None) -> Config:
    """`cfg` (default: the shipped config) with `group` edited the way a student does it."""
    cfg = config.base_config() if cfg is None else cfg
    if group == "model":
        cfg.norm_cfg = dict(type="BN", requires_grad=True)
        for part in ("backbone", "decode_head", "auxiliary_head"):
            cfg.model[part].norm_cfg = cfg.norm_cfg
        cfg.model.decode_head.num_classes = cfg.model.auxiliary_head.num_classes = 21
        cfg.model.pretrained = None
    elif group == "data":
        for key in ("dataset_type", "data_root", "crop_size", "train_pipeline", "test_pipeline",
                    "train_dataloader", "val_dataloader", "test_dataloader"):
            cfg[key] = reference[key]
        cfg.data_preprocessor.size = cfg.model.data_preprocessor.size = (256, 256)
    else:
        cfg.optimizer.lr = cfg.optim_wrapper.optimizer.lr = 0.01 / 8
        cfg.train_cfg.update(max_iters=4000, val_interval=1000)
        cfg.default_hooks.logger.interval = 500
        cfg.default_hooks.checkpoint.update(interval=1000, max_keep_ckpts=1, save_best="mIoU",
                                            rule="greater")
        cfg.randomness, cfg.work_dir, cfg.load_from = dict(seed=0), reference.work_dir, None
    return cfg


def _run_wrong(grade_id: str, reference: Config, **names) -> Config:
    """The plausible wrong answer of tests/wrong_answers/02_config.py, run on the shipped config."""
    scope = {"cfg": config.base_config(), **names}
    exec(WRONG[grade_id], scope)
    return scope["cfg"]


@pytest.mark.parametrize("group", list(config.GROUPS))
def test_blank_is_unanswered_and_the_solution_correct(reference, group):
    verify = config.edits_verifier(group, reference)
    assert evaluate(config.base_config(), verify) == ("unanswered", [])
    assert evaluate(None, verify) == ("unanswered", [])
    assert evaluate(_solved(reference, group), verify) == ("correct", [])


def test_the_three_tasks_together_give_the_builders_config(reference):
    cfg = config.base_config()
    for group in config.GROUPS:
        _solved(reference, group, cfg)
        assert evaluate(cfg, config.edits_verifier(group, reference)) == ("correct", [])
    cfg.custom_imports = reference.custom_imports  # the course's own field
    assert config_differences(cfg, reference) == {}


def test_model_copies_left_as_syncbn_are_named(reference, demo_root):
    wrong = _run_wrong("model_edits", reference)
    status, problems = evaluate(wrong, config.edits_verifier("model", reference))
    assert status == "wrong"
    text = "\n".join(problems)
    for part in ("backbone", "decode_head", "auxiliary_head"):
        assert f"`model.{part}.norm_cfg.type` = 'SyncBN'" in text
    assert "the heads and the backbone hold their own copy of norm_cfg" in text
    assert "'BN'" not in text  # the expected value is not given away


def test_pipelines_left_in_the_loaders_are_named(reference, demo_root, tmp_path):
    wrong = _run_wrong("data_edits", reference, VOC_ROOT=str(demo_root))
    status, problems = evaluate(wrong, config.edits_verifier("data", reference))
    assert status == "wrong"
    text = "\n".join(problems)
    assert "train_dataloader.dataset.pipeline[2].scale" in text
    assert "PhotoMetricDistortion" in text  # the student's leftover step, by name
    assert "copy of train_pipeline" in text and "[320, 240]" not in text


def test_half_done_data_edits_are_capped_and_wrong_types_refused(reference):
    cfg = config.base_config()
    cfg.dataset_type = "PascalVOCDataset"
    status, problems = evaluate(cfg, config.edits_verifier("data", reference))
    assert status == "wrong" and len(problems) == 13  # 12 fields, then how many more
    assert problems[-1].startswith("... and ") and "of the data group" in problems[-1]
    assert evaluate({"model": {}}, config.edits_verifier("model", reference))[1] == [
        "cfg is a dict, not an mmengine Config: edit the one Config.fromfile returned"]
    cfg = _solved(reference, "schedule")
    cfg.work_dir = Path(cfg.work_dir)
    problems = evaluate(cfg, config.edits_verifier("schedule", reference))[1]
    assert problems == ["`work_dir` is a PosixPath: a config holds plain values, use str(...)"]


def test_an_lr_set_in_one_copy_is_named(reference, demo_root):
    wrong = _run_wrong("schedule_edits", reference, WORK_DIR=reference.work_dir, pretrained=None)
    status, problems = evaluate(wrong, config.edits_verifier("schedule", reference))
    assert status == "wrong"
    assert problems == ["`optim_wrapper.optimizer.lr` = 0.01 is not what the VOC recipe needs",
                        "note: optim_wrapper.optimizer is a copy of optimizer: set the lr in "
                        "both"]


def test_the_fallback_replaces_only_its_group(reference):
    wrong = _run_wrong("model_edits", reference)
    wrong.train_cfg.max_iters = 123  # a schedule edit the model fallback must keep
    fixed = config.with_reference_edits(wrong, reference, "model")
    assert config_differences(fixed, wrong).keys() == {
        f"model.{p}.norm_cfg.type" for p in ("backbone", "decode_head", "auxiliary_head")}
    fixed = config.with_reference_edits(fixed, reference, "data")
    fixed = config.with_reference_edits(fixed, reference, "schedule")
    assert set(config_differences(fixed, reference)) == {"custom_imports.allow_failed_imports",
                                                         "custom_imports.imports"}


def final_lr(cfg):
    poly = cfg.param_scheduler[0]
    total = poly.end - poly.begin
    t = min(cfg.train_cfg.max_iters - poly.begin, total)
    return (cfg.optim_wrapper.optimizer.lr - poly.eta_min) * (1 - t / total) ** poly.power \
        + poly.eta_min


def test_final_lr_blank_right_and_the_schedules_quirk(reference, demo_root):
    verify = config.final_lr_verifier(demo_root, reference.work_dir)
    assert evaluate(lambda cfg: None, verify) == ("unanswered", [])
    assert evaluate(final_lr, verify) == ("correct", [])
    assert evaluate(config.final_lr_reference, verify) == ("correct", [])
    scope = {}
    exec(WRONG["final_lr"], scope)
    status, problems = evaluate(scope["final_lr"], verify)
    assert status == "wrong" and len(problems) == 2  # right only where PolyLR ended by then
    assert "for the seed config final_lr gives 0.0001" in problems[0]
    no_floor = lambda cfg: final_lr(cfg) - cfg.param_scheduler[0].eta_min  # noqa: E731
    assert len(evaluate(no_floor, verify)[1]) == 4
    assert evaluate(lambda cfg: "0.001", verify) == (
        "wrong", ["final_lr returned something that is not a number"])
