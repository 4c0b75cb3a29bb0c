"""The visible checks of notebook 00's tasks (helpers.checks.environment): blank is unanswered,
the notebook's solution is correct, each plausible wrong answer of tests/wrong_answers is wrong
with a message that names what is wrong without giving the expected value away."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import mmseg
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS, MODELS
from mmseg.utils import register_all_modules

from helpers.checks import environment, evaluate

ROOT = Path(__file__).resolve().parents[1]
WRONG = runpy.run_path(str(ROOT / "tests" / "wrong_answers" / "00_environment.py"))["WRONG_ANSWERS"]
SOURCE = ROOT / "source" / "voc" / "00_environment.ipynb"
SOLUTIONS = {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"])
             for c in json.loads(SOURCE.read_text())["cells"]
             if c["cell_type"] == "code"  # a markdown solution is a written answer
             and c.get("metadata", {}).get("nbgrader", {}).get("solution")}
CONFIGS = Path(mmseg.__file__).parent / ".mim" / "configs"
# what an answer cell finds in the notebook's kernel when it runs
SCOPE = {"Path": Path, "Config": Config, "mmseg": mmseg, "MODELS": MODELS, "DATASETS": DATASETS,
         "CONFIGS": CONFIGS}
ANSWERS = {"voc_configs": "voc_configs", "mmcv_accepted": "mmcv_accepted", "voc_head": "head",
           "recipe": "recipe"}
CONTEXT = {"recipe": {"configs": CONFIGS}}


def _answer(source: str, task: str):
    register_all_modules()
    scope = dict(SCOPE)
    exec(source, scope)
    return scope[ANSWERS[task]]


def _verdict(task: str, source: str):
    return evaluate(_answer(source, task), environment.TASKS[task].verify, **CONTEXT.get(task, {}))


def test_every_task_has_a_check_a_solution_and_a_wrong_answer():
    assert set(environment.TASKS) == set(SOLUTIONS) == set(WRONG) == set(ANSWERS)


@pytest.mark.parametrize("task", sorted(ANSWERS))
def test_the_solution_is_correct(task):
    assert _verdict(task, SOLUTIONS[task]) == ("correct", [])


@pytest.mark.parametrize("task", sorted(ANSWERS))
def test_a_plausible_mistake_is_wrong(task):
    status, problems = _verdict(task, WRONG[task])
    assert status == "wrong" and problems


def test_blank_answers_are_unanswered():
    for task in ANSWERS:
        assert evaluate(None, environment.TASKS[task].verify, **CONTEXT.get(task, {}))[0] == \
            "unanswered"


def test_a_wrong_recipe_names_the_key_not_the_value():
    status, problems = _verdict("recipe", WRONG["recipe"])
    assert status == "wrong"
    text = " ".join(problems)
    assert "'crop'" in text and "512" not in text and "1024" not in text, problems
    half = SOLUTIONS["recipe"].replace('"batch_size": cfg.train_dataloader.batch_size,', "")
    status, problems = _verdict("recipe", half)
    assert status == "wrong" and any("batch_size" in p for p in problems), problems


def test_the_recipes_written_as_data_are_what_mmengine_reads():
    """The check's data for the two shipped configs matches the files of the installed mmseg."""
    for name, want in environment.RECIPES.items():
        cfg = Config.fromfile(CONFIGS / name)
        assert cfg.model.decode_head.num_classes == want["num_classes"]
        assert cfg.train_dataloader.batch_size == want["batch_size"]
        assert cfg.train_cfg.max_iters == want["iterations"]
        assert tuple(cfg.crop_size) == want["crop"]
