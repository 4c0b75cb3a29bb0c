"""The visible task checks (helpers.checks), the release notebooks (teacher.assignments) and their
honesty."""

from __future__ import annotations

import re
import sys

import nbformat
import pytest

from helpers import notebook_tools
from helpers.checks import (
    TOPICS,
    NotAnswered,
    Task,
    TaskFailed,
    answered,
    check,
    evaluate,
    register,
    strict,
)
from helpers.env import repo_root
from teacher import assignments, tasks

ROOT = repo_root()
SOURCES = sorted(p.stem for p in (ROOT / "source" / "voc").glob("[0-9][0-9]_*.ipynb"))
OPTIONAL = {"06_int8_deploy"}  # optional notebooks: no graded task, as their intro says
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def _square_ok(f):
    return [] if answered(f(3)) == 9 else [f"f(3) is {f(3)}, not the square of 3"]


def _noisy(f):
    print("library warning", file=sys.stderr)  # a student would read it as a failure
    return []


@pytest.fixture
def interactive(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("COURSE_CHECKS", raising=False)
    register("sq", Task(_square_ok, hint="the power operator"))
    register("quiet", Task(_noisy))


def test_check_accepts_a_right_answer(interactive, capsys):
    square = lambda x: x * x  # noqa: E731
    assert check("sq", square) is square
    assert capsys.readouterr().out == "✓ Task sq: correct.\n"


def test_check_reports_wrong_answers_with_the_hint_and_returns_none(interactive, capsys):
    assert check("sq", lambda x: 2 * x) is None
    out = capsys.readouterr().out
    assert out.startswith("✗ Task sq: 1 problem(s):") and "f(3) is 6" in out
    assert "Hint: the power operator" in out and "the lesson goes on without it" in out


def test_unanswered_stub_is_reported_and_returns_none(interactive, capsys):
    def stub(x):
        pass  # what the release's `# YOUR CODE HERE` + `pass` gives

    assert check("sq", stub) is None
    assert check("sq", None) is None
    assert capsys.readouterr().out.splitlines() == [
        "○ Task sq: not answered yet — the lesson goes on without it."] * 2


def test_a_check_writes_nothing_to_stderr_under_nbgrader_either(interactive, monkeypatch,
                                                                capsys):
    """The grade is not the check's: under nbgrader it prints exactly what it prints anywhere."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert check("sq", lambda x: 2 * x) is None
    out = capsys.readouterr()
    assert out.err == "" and "f(3) is 6" in out.out


def test_exceptions_of_student_code_are_reported_not_raised(interactive, capsys):
    def boom(x):
        raise KeyError("palette")

    assert evaluate(boom, _square_ok) == ("wrong", ["your code raised KeyError: 'palette'"])
    assert evaluate(lambda x: (_ for _ in ()).throw(NotImplementedError()), _square_ok)[0] == \
        "unanswered"
    assert check("sq", boom) is None
    assert "KeyError" in capsys.readouterr().out


def test_strict_checks_make_unanswered_and_wrong_raise(interactive, monkeypatch):
    assert not strict()
    monkeypatch.setenv("COURSE_CHECKS", "strict")
    assert strict()
    with pytest.raises(TaskFailed, match="not answered yet"):
        check("sq", None)
    with pytest.raises(AssertionError, match=r"f\(3\) is 6[\s\S]*Hint: the power operator"):
        check("sq", lambda x: 2 * x)
    square = lambda x: x * x  # noqa: E731
    assert check("sq", square) is square


def test_warnings_while_verifying_never_reach_stderr(interactive, capsys):
    check("quiet", 1)
    captured = capsys.readouterr()
    assert captured.err == "" and "library warning" in captured.out
    with pytest.raises(NotAnswered):
        answered(None)


def test_every_task_of_the_notebooks_is_registered_with_a_hint():
    """Each test cell's `check("id", ...)` finds its task; no hint quotes code (no call)."""
    import importlib

    ids = set()
    for name in SOURCES:
        nb = nbformat.read(ROOT / "source" / "voc" / f"{name}.ipynb", as_version=4)
        ids |= {m.group(1) for c in nb.cells for m in re.finditer(r'check\(\s*"(\w+)"', c.source)}
    tasks = {}
    for topic in TOPICS:
        tasks.update(importlib.import_module(f"helpers.checks.{topic}").TASKS)
    assert ids and ids <= set(tasks), sorted(ids - set(tasks))
    assert [t for t, task in tasks.items() if not task.hint or re.search(r"\w\(", task.hint)] \
        == []


def test_the_repository_url_comes_from_pyproject(tmp_path):
    assert assignments.repo_url() == \
        "https://github.com/open-mmlab-course/voc-segmentation-student"
    assert assignments.repo_url(key="Repository") == \
        "https://github.com/open-mmlab-course/voc-segmentation"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"\[project.urls\] Student"):
        assignments.repo_url(tmp_path)


def test_sync_points_badges_colab_cell_and_readme_at_one_url(tmp_path):
    old = "https://github.com/someone/old-name"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(
        "[![b](x.svg)](https://colab.research.google.com/github/someone/old-name/blob/main/"
        "notebooks/07_x.ipynb)"),
        nbformat.v4.new_code_cell(f'import sys\nif "google.colab" in sys.modules:\n'
                                  f'    !git clone {old} /content/course')]
    url = "https://github.com/me/course"
    assert assignments.sync_notebook(nb, "07_x.ipynb", url)
    assert "colab.research.google.com/github/me/course/blob/main/notebooks/07_x.ipynb" in \
        nb.cells[0].source
    assert "colab" in nb.cells[1].metadata["tags"] and old not in nb.cells[1].source
    assert f'"{url}"' in nb.cells[1].source  # helpers.colab.install_cell wrote the cell
    assert not assignments.sync_notebook(nb, "07_x.ipynb", url)  # idempotent
    readme = tmp_path / "README.md"
    readme.write_text(f"git clone {old}.git\nsee https://github.com/open-mmlab/mmsegmentation\n")
    assert assignments.sync_readme(readme, url)
    assert readme.read_text() == f"git clone {url}.git\nsee https://github.com/open-mmlab/" \
                                 "mmsegmentation\n"


def test_every_badge_and_clone_url_matches_pyproject():
    assert assignments.url_problems() == []


def test_a_wrong_url_is_found(tmp_path):
    for name in ("pyproject.toml", "README.md"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.read(ROOT / "notebooks" / "00_environment.ipynb", as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace("open-mmlab-course", "elsewhere")
    nbformat.write(nb, tmp_path / "notebooks" / "00_environment.ipynb")
    problems = assignments.url_problems(tmp_path)
    assert len(problems) == 2 and "no Colab badge" in problems[0]
    assert "github/elsewhere/voc-segmentation" in problems[1] and "make assign" in problems[1]


def test_release_is_what_make_assign_produces():
    assert SOURCES, "no instructor notebooks in source/voc/"
    assert assignments.release_differences() == []


@pytest.mark.parametrize("name", SOURCES)
def test_release_holds_no_solution_and_the_source_holds_tasks(name):
    release = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    source = nbformat.read(ROOT / "source" / "voc" / f"{name}.ipynb", as_version=4)
    assert [m for c in release.cells for m in MARKERS if m in c.source] == []
    assert notebook_tools.dirty_cells(ROOT / "notebooks" / f"{name}.ipynb") == []
    answers = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")]
    tests = notebook_tools.graded_cells(ROOT / "source" / "voc" / f"{name}.ipynb")
    if name in OPTIONAL:
        assert not answers and not tests and "no graded task" in source.cells[0].source, name
        return
    assert answers and all("### BEGIN SOLUTION" in c.source for c in answers), name
    assert tests and all(points > 0 for points in tests.values()), name
    specs = tasks.module(name).TASKS
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":  # a visible check only: the hidden
            # probes live in teacher/tasks/ (a graded markdown cell is a written answer)
            assert meta["locked"] and "check(" in cell.source, (name, meta["grade_id"])
            assert "### BEGIN HIDDEN TESTS" not in cell.source, (name, meta["grade_id"])
            assert meta["grade_id"] in {s["test"] for s in specs.values()}, (name, meta["grade_id"])
            last = cell.source.strip().splitlines()[-1]
            assert not last.startswith("check("), "assign check's result (nbgrader reads a " \
                "number as partial credit)"
