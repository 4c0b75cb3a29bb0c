"""Hand-ins made from the course's own notebooks (used by tests/test_grading*.py).

`instructor(name)` is the instructor notebook (the solutions), `released(name)` the release
(blank answers), `with_answers(nb, answers)` a copy with some
answer cells (by nbgrader ``grade_id``) rewritten, `wrong_answers(name)` the plausible wrong
answers of ``tests/wrong_answers/NN_name.py``, and `hand_in(submitted, student, name, nb)` hands a
notebook in as ``SUBMITTED/STUDENT/NN_name.ipynb``.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import nbformat

from helpers.env import repo_root

ROOT = repo_root()


def wrong_answers(name: str) -> dict[str, str]:
    path = ROOT / "tests" / "wrong_answers" / f"{name}.py"
    assert path.is_file(), f"{path} is missing: every notebook needs plausible wrong answers"
    return runpy.run_path(str(path))["WRONG_ANSWERS"]


def instructor(name: str):
    return nbformat.read(ROOT / "source" / "voc" / f"{name}.ipynb", as_version=4)


def released(name: str):
    return nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)


def with_answers(nb, answers: dict[str, str]):
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in answers:
            cell.source = answers[cell.metadata["nbgrader"]["grade_id"]].strip("\n")
    return nb


def hand_in(submitted: Path, student: str, name: str, nb) -> None:
    (submitted / student).mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, submitted / student / f"{name}.ipynb")
