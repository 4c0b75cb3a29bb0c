"""The visible checks of notebook 02's tasks (helpers.checks.config) on mmseg's shipped config:
blank is unanswered, the notebook's solution is correct, plausible mistakes are wrong with a
message that names the field and does not give the expected value away; a check never changes
the student's config, and the module ships no reference answer."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from helpers.checks import config, evaluate

ROOT = Path(__file__).resolve().parents[1]
WRONG = runpy.run_path(str(ROOT / "tests" / "wrong_answers" / "02_config.py"))["WRONG_ANSWERS"]
SOLUTIONS = {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"])
             for c in json.loads((ROOT / "source" / "voc" / "02_config.ipynb").read_text())["cells"]
             if c.get("metadata", {}).get("nbgrader", {}).get("solution")}


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("work02") / "pspnet_voc12")


def _run(source: str, demo_root, work_dir, cfg: Config | None = None, **names) -> dict:
    """An answer cell run as the notebook runs it (on the shipped config by default)."""
    scope = {"cfg": config.base_config() if cfg is None else cfg, "VOC_ROOT": str(demo_root),
             "WORK_DIR": work_dir, "pretrained": None, **names}
    exec(source, scope)
    return scope


def _context(group: str, demo_root, work_dir, pretrained=None) -> dict:
    return {"model_edits": {}, "data_edits": {"voc_root": str(demo_root)},
            "schedule_edits": {"work_dir": work_dir, "pretrained": pretrained}}[group]


def _verdict(task: str, cfg, demo_root, work_dir, pretrained=None):
    return evaluate(cfg, config.TASKS[task].verify,
                    **_context(task, demo_root, work_dir, pretrained))


def test_no_reference_answer_ships():
    for name in ("reference_config", "with_reference_edits", "final_lr_reference",
                 "edits_verifier", "final_lr_verifier"):
        assert not hasattr(config, name), name


@pytest.mark.parametrize("task", ["model_edits", "data_edits", "schedule_edits"])
def test_blank_is_unanswered_and_the_solution_correct(task, demo_root, work_dir):
    assert _verdict(task, config.base_config(), demo_root, work_dir) == ("unanswered", [])
    assert _verdict(task, None, demo_root, work_dir) == ("unanswered", [])
    cfg = _run(SOLUTIONS[task], demo_root, work_dir)["cfg"]
    before = cfg.to_dict()
    assert _verdict(task, cfg, demo_root, work_dir) == ("correct", [])
    assert cfg.to_dict() == before  # the check works on a copy


def test_the_three_tasks_in_a_row_and_a_non_config(demo_root, work_dir):
    cfg = config.base_config()
    for task in ("model_edits", "data_edits", "schedule_edits"):
        _run(SOLUTIONS[task], demo_root, work_dir, cfg)
        assert _verdict(task, cfg, demo_root, work_dir) == ("correct", []), task
    assert _verdict("model_edits", {"model": {}}, demo_root, work_dir)[1] == [
        "cfg is a dict, not an mmengine Config: edit the one Config.fromfile returned"]


def test_model_copies_left_as_syncbn_are_named(demo_root, work_dir):
    status, problems = _verdict("model_edits", _run(WRONG["model_edits"], demo_root,
                                                    work_dir)["cfg"], demo_root, work_dir)
    text = "\n".join(problems)
    assert status == "wrong"
    for part in ("backbone", "decode_head", "auxiliary_head"):
        assert f"`model.{part}.norm_cfg.type` is 'SyncBN'" in text
    assert "hold their own copy of norm_cfg" in text
    assert "'BN'" not in text  # the expected value is not given away


def test_model_classes_and_pretrained_are_named(demo_root, work_dir):
    cfg = _run(SOLUTIONS["model_edits"], demo_root, work_dir)["cfg"]
    cfg.model.auxiliary_head.num_classes = 20  # the background forgotten
    cfg.model.pretrained = "open-mmlab://resnet50_v1c"
    status, problems = _verdict("model_edits", cfg, demo_root, work_dir)
    assert status == "wrong" and len(problems) == 2
    assert problems[0].startswith("`model.auxiliary_head.num_classes` is 20")
    assert problems[1].startswith("`model.pretrained` is 'open-mmlab://resnet50_v1c'")
    assert "21" not in "\n".join(problems)


def test_pipelines_left_in_the_loaders_are_named(demo_root, work_dir):
    status, problems = _verdict("data_edits", _run(WRONG["data_edits"], demo_root,
                                                   work_dir)["cfg"], demo_root, work_dir)
    text = "\n".join(problems)
    assert status == "wrong"
    assert "`train_dataloader.dataset.pipeline` differs from `train_pipeline`" in text
    assert "`val_dataloader.dataset.pipeline` differs from `test_pipeline`" in text
    assert "320" not in text and "256" not in text


@pytest.mark.parametrize("mistake, named", [
    ("cfg.model.data_preprocessor.size = (512, 1024)", "`model.data_preprocessor.size` is"),
    ("cfg.train_dataloader.dataset.ann_file = 'ImageSets/Segmentation/val.txt'",
     "`train_dataloader.dataset` has"),
    ("cfg.train_pipeline.insert(5, dict(type='PhotoMetricDistortion'))\n"
     "cfg.train_dataloader.dataset.pipeline = cfg.train_pipeline",
     "`train_pipeline` still has PhotoMetricDistortion"),
    ("cfg.test_pipeline[1].scale = (2048, 1024)\n"
     "cfg.val_dataloader.dataset.pipeline = cfg.test_dataloader.dataset.pipeline = "
     "cfg.test_pipeline", "Resize's scale in `test_pipeline` is [2048, 1024]"),
    ("cfg.val_dataloader.dataset.data_prefix = dict(img_path='JPEGImages', "
     "seg_map_path='SegmentationObject')", "`val_dataloader.dataset.data_prefix` does not point"),
    ("cfg.data_root = Path(VOC_ROOT)", "`data_root` is a PosixPath"),
    ("cfg.train_dataloader.batch_size = 2", "`train_dataloader.batch_size` is 2"),
    ("cfg.val_dataloader.batch_size = 8", "`val_dataloader.batch_size` is 8"),
    ("cfg.train_pipeline[2].scale = (240, 320)\n"
     "cfg.train_dataloader.dataset.pipeline = cfg.train_pipeline",
     "RandomResize's scale in `train_pipeline` is [240, 320]"),
    ("cfg.train_pipeline[3].pop('cat_max_ratio')\n"
     "cfg.train_dataloader.dataset.pipeline = cfg.train_pipeline",
     "RandomCrop's cat_max_ratio in `train_pipeline` is not the shipped one"),
    ("cfg.train_pipeline[4].prob = 1.0\n"
     "cfg.train_dataloader.dataset.pipeline = cfg.train_pipeline",
     "RandomFlip's prob in `train_pipeline` is not the shipped one"),
])
def test_data_mistakes_are_named(demo_root, work_dir, mistake, named):
    cfg = _run(SOLUTIONS["data_edits"], demo_root, work_dir)["cfg"]
    exec(mistake, {"cfg": cfg, "Path": Path, "VOC_ROOT": str(demo_root)})
    status, problems = _verdict("data_edits", cfg, demo_root, work_dir)
    assert status == "wrong" and any(p.startswith(named) for p in problems), problems
    expected = ("(320, 240)", "[320, 240]", "(256, 256)", "[256, 256]")
    assert not any(value in "\n".join(problems) for value in expected)  # never given away


def test_an_lr_set_in_one_copy_is_named(demo_root, work_dir):
    status, problems = _verdict("schedule_edits", _run(WRONG["schedule_edits"], demo_root,
                                                       work_dir)["cfg"], demo_root, work_dir)
    assert status == "wrong"
    assert problems == ["`optim_wrapper.optimizer.lr` is 0.01, not the homework's learning rate",
                        "note: optim_wrapper.optimizer is a copy of optimizer, made when the "
                        "file was loaded: the Runner builds its optimizer from that copy"]


@pytest.mark.parametrize("mistake, named", [
    ("cfg.default_hooks.checkpoint.pop('save_best')", "the checkpoint hook's save_best is None"),
    ("cfg.default_hooks.checkpoint.max_keep_ckpts = 3", "the checkpoint hook's max_keep_ckpts"),
    ("cfg.param_scheduler[0].end = 4000", "`param_scheduler` changed"),
    ("cfg.work_dir = Path(WORK_DIR)", "`work_dir` is a PosixPath"),
    ("cfg.randomness = dict(seed=42)", "`randomness` is {'seed': 42}"),
    ("cfg.train_cfg.val_interval = 8000", "`train_cfg.val_interval` is 8000"),
    ("cfg.train_cfg = dict(max_iters=4000, val_interval=1000)", "`train_cfg.type` is None"),
    ("cfg.default_hooks.checkpoint.by_epoch = True", "the checkpoint hook's by_epoch is True"),
    ("cfg.randomness = dict(deterministic=True)", "`randomness` is {'deterministic': True}"),
])
def test_schedule_mistakes_are_named(demo_root, work_dir, mistake, named):
    cfg = _run(SOLUTIONS["schedule_edits"], demo_root, work_dir)["cfg"]
    exec(mistake, {"cfg": cfg, "Path": Path, "WORK_DIR": work_dir})
    status, problems = _verdict("schedule_edits", cfg, demo_root, work_dir)
    assert status == "wrong" and any(p.startswith(named) for p in problems), problems


def test_a_seed_with_other_randomness_settings_is_right(demo_root, work_dir):
    cfg = _run(SOLUTIONS["schedule_edits"], demo_root, work_dir)["cfg"]
    cfg.randomness = dict(seed=0, deterministic=False)
    assert _verdict("schedule_edits", cfg, demo_root, work_dir) == ("correct", [])


def test_load_from_is_the_pretrained_checkpoint_as_str(demo_root, work_dir, tmp_path):
    pretrained = tmp_path / "cityscapes.pth"
    pretrained.write_bytes(b"weights")
    cfg = _run(SOLUTIONS["schedule_edits"], demo_root, work_dir, pretrained=pretrained)["cfg"]
    assert _verdict("schedule_edits", cfg, demo_root, work_dir, pretrained) == ("correct", [])
    cfg.load_from = pretrained
    assert _verdict("schedule_edits", cfg, demo_root, work_dir, pretrained)[1] == [
        "`load_from` is a PosixPath: use str(...)"]
    cfg.load_from = None
    assert _verdict("schedule_edits", cfg, demo_root, work_dir, pretrained)[0] == "wrong"


def test_final_lr_blank_right_and_mmengines_t(demo_root, work_dir):
    verify = config.TASKS["final_lr"].verify
    solution = _run(SOLUTIONS["final_lr"], demo_root, work_dir)["final_lr"]
    assert evaluate(lambda cfg: None, verify) == ("unanswered", [])
    assert evaluate(solution, verify) == ("correct", [])
    assert evaluate(lambda cfg: np.float64(solution(cfg)), verify) == ("correct", [])
    # T = end - begin, the formula the notebook stated before: off by about 6e-7 relative
    status, problems = evaluate(_run(WRONG["final_lr"], demo_root, work_dir)["final_lr"], verify)
    assert status == "wrong" and "the T that mmengine divides by" in problems[0]
    assert len(problems) == 3  # and on the other schedules that end after the run
    # the schedule taken to end with the run: wrong on the seed's schedule
    scope = {}
    exec("def final_lr(cfg):\n"
         "    poly = cfg.param_scheduler[0]\n"
         "    t = cfg.train_cfg.max_iters\n"
         "    return (cfg.optim_wrapper.optimizer.lr - poly.eta_min) * (1 - t / t) ** poly.power"
         " + poly.eta_min\n", scope)
    assert evaluate(scope["final_lr"], verify)[0] == "wrong"
    # t not capped at the schedule's end: right on the seed's schedule only
    uncapped = """
def final_lr(cfg):
    poly = cfg.param_scheduler[0]
    total = poly.end - poly.begin - 1
    return (cfg.optim_wrapper.optimizer.lr - poly.eta_min) * (
        1 - cfg.train_cfg.max_iters / total) ** poly.power + poly.eta_min
"""
    scope = {}
    exec(uncapped, scope)
    status, problems = evaluate(scope["final_lr"], verify)
    assert status == "wrong" and problems[0].startswith("with max_iters past the schedule's end")
    no_floor = lambda cfg: solution(cfg) - cfg.param_scheduler[0].eta_min  # noqa: E731
    # wrong on the seed's schedule, past its end, and on every other one with an eta_min
    assert len(evaluate(no_floor, verify)[1]) == 2 + sum(
        1 for s in config.OTHER_SCHEDULES if s[3])
    # the lr read from cfg.optimizer (the copy the Runner does not use): right on the seed's
    # schedule, where both copies agree, wrong where they differ
    def copy_lr(cfg):
        return solution(cfg) * cfg.optimizer.lr / cfg.optim_wrapper.optimizer.lr

    status, problems = evaluate(copy_lr, verify)
    assert status == "wrong" and len(problems) == 1 and problems[0].startswith(
        "with optim_wrapper's lr 0.004 (optimizer's 0.02)")
    assert evaluate(lambda cfg: "0.001", verify) == (
        "wrong", ["final_lr returned something that is not a number"])


def test_hints_name_concepts_not_fields_or_values():
    for task_id, task in config.TASKS.items():
        for code in ("cfg.", "=", "256", "0.01", "4000", "4,000"):
            assert code not in task.hint, (task_id, code)
