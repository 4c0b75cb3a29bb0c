"""`make release`: the student repository holds what students need and nothing of the teacher's.

The release is built once into a temporary folder. It must hold no line of any solution or hidden
test (normalised: whitespace collapsed, comments dropped; imports and lines too short to betray
anything are left out, see `teacher.release.secret_lines`), no `source/`, `tests/`, `teacher/`,
gradebook or wrong answer, no nbgrader in its requirements, and its notebooks must run from that
folder alone (``helpers`` imported from the release, not from this repository). `make test` runs
nbval over all of its notebooks; here notebook 00 proves the folder self-contained.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.env import repo_root
from teacher import release as rel

ROOT = repo_root()


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    return rel.release(tmp_path_factory.mktemp("release") / "student")


def test_the_release_holds_what_a_student_needs(student):
    for name in ("README.md", "Makefile", "pyproject.toml", "requirements.txt",
                 "requirements-build.txt", "environment.yml", ".gitignore",
                 "helpers/__init__.py", "helpers/checks/__init__.py", "images/sample_and_mask.png",
                 "benchmarks/results.json"):
        assert (student / name).is_file(), name
    sources = sorted(p.name for p in (ROOT / "source" / "voc").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.name for p in (student / "notebooks").glob("*.ipynb")) == sources
    make = (student / "Makefile").read_text()
    assert "\nenv:" in make and "\nrun:" in make
    assert "\ngrade:" not in make and "\nassign:" not in make and "nbgrader" not in make


def test_no_solution_hidden_test_or_teacher_tool_in_the_release(student):
    secrets = rel.secret_lines(ROOT / "source" / "voc")
    assert len(secrets) > 100  # the comparison has material to compare
    assert rel.leaks(student, ROOT / "source" / "voc") == []
    names = {p.relative_to(student).parts[0] for p in student.rglob("*")}
    assert not names & {"source", "tests", "teacher", "student", ".ci"}, names
    assert not list(student.rglob("*.db")) and not list(student.rglob("*wrong_answers*"))
    reqs = (student / "requirements.txt").read_text() + (student / "environment.yml").read_text()
    assert "nbgrader" not in reqs and "nbval" not in reqs  # no instructor menu in JupyterLab
    text = "\n".join(p.read_text() for p in (student / "helpers").rglob("*.py"))
    assert re.findall(r"\b\w+_reference\b|with_reference_edits", text) == []


def test_a_leak_is_found(student, tmp_path):
    """The line comparison finds one solution line pasted into any file."""
    source = nbformat.read(ROOT / "source" / "voc" / "00_environment.ipynb", as_version=4)
    solution = next(c.source for c in source.cells
                    if c.metadata.get("nbgrader", {}).get("solution"))
    line = next(s for s in solution.splitlines()
                if s.strip() and "###" not in s and not s.strip().startswith(("def", '"""')))
    (student / "helpers" / "leak.py").write_text(f"x = 1\n    {line.strip()}   # pasted\n")
    try:
        assert any("helpers/leak.py" in p for p in rel.leaks(student, ROOT / "source" / "voc"))
    finally:
        (student / "helpers" / "leak.py").unlink()


def test_badges_and_pyproject_name_the_student_repository(student):
    from teacher.assignments import repo_url

    url = repo_url()
    assert url.endswith("-student")
    assert url in (student / "pyproject.toml").read_text()
    assert 'include = ["helpers*"]' in (student / "pyproject.toml").read_text()
    assert url + "/blob/main/notebooks/00_environment.ipynb" in (
        student / "README.md").read_text().replace("colab.research.google.com/github/",
                                                    "github.com/")
    for path in (student / "notebooks").glob("*.ipynb"):
        assert url in path.read_text(), path.name


def test_a_release_notebook_runs_from_the_release_alone(student, demo_root, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(student), SMOKE="1", VOC_ROOT=str(demo_root),
               WORK_DIR=str(tmp_path / "work"))
    where = subprocess.run([sys.executable, "-c", "import helpers; print(helpers.__file__)"],
                           cwd=student, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(student), where.stdout
    done = subprocess.run([sys.executable, "-m", "pytest", "notebooks/00_environment.ipynb",
                           "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-q"],
                          cwd=student, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
