"""The task checks (helpers.checks), the student release (helpers.assignments) and its honesty."""

from __future__ import annotations

import re
import subprocess
import sys

import nbformat
import pytest

from helpers import notebook_tools
from teacher import assignments
from helpers.env import repo_root
from helpers.checks import NotAnswered, TaskFailed, answered, check, evaluate, grading

ROOT = repo_root()
SOURCES = sorted(p.stem for p in (ROOT / "source" / "voc").glob("[0-9][0-9]_*.ipynb"))
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def _square_ok(f):
    return [] if answered(f(3)) == 9 else [f"f(3) is {f(3)}, not the square of 3"]


@pytest.fixture
def interactive(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("COURSE_CHECKS", raising=False)


def test_check_accepts_a_right_answer(interactive, capsys):
    square = lambda x: x * x  # noqa: E731
    assert check("sq", square, _square_ok, reference=abs) is square
    assert capsys.readouterr().out == "✓ Task sq: correct.\n"


def test_check_reports_wrong_answers_with_the_hint_and_continues(interactive, capsys):
    assert check("sq", lambda x: 2 * x, _square_ok, reference=abs, hint="use **") is abs
    out = capsys.readouterr().out
    assert out.startswith("✗ Task sq: 1 problem(s):") and "f(3) is 6" in out
    assert "Hint: use **" in out and "continuing with the reference result" in out


def test_unanswered_stub_continues_with_the_reference(interactive, capsys):
    def stub(x):
        pass  # what the release's `# YOUR CODE HERE` + `pass` gives

    assert check("sq", stub, _square_ok, reference=abs) is abs
    assert check("value", None, _square_ok, reference=1) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ["○ Task sq: not answered yet — continuing with the reference result."] * 1 + [
        "○ Task value: not answered yet — continuing with the reference result."]


def test_exceptions_of_student_code_are_reported_not_raised(interactive, capsys):
    def boom(x):
        raise KeyError("palette")

    assert evaluate(boom, _square_ok) == ("wrong", ["your code raised KeyError: 'palette'"])
    assert evaluate(lambda x: (_ for _ in ()).throw(NotImplementedError()), _square_ok)[0] == \
        "unanswered"
    assert check("sq", boom, _square_ok) is None
    assert "KeyError" in capsys.readouterr().out


def test_under_nbgrader_a_failed_check_writes_stderr_and_hands_on_the_reference(
        interactive, monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert grading()
    assert check("sq", None, _square_ok, reference=abs) is abs
    out = capsys.readouterr()
    assert "not answered yet" in out.err and out.out == ""  # stderr: nbgrader scores the cell 0
    assert check("sq", lambda x: 2 * x, _square_ok, reference=abs, hint="use **") is abs
    assert re.search(r"f\(3\) is 6[\s\S]*Hint: use \*\*", capsys.readouterr().err)
    square = lambda x: x * x  # noqa: E731
    assert check("sq", square, _square_ok) is square
    assert capsys.readouterr().err == ""


def test_strict_checks_make_unanswered_and_wrong_raise(interactive, monkeypatch):
    assert not grading()
    monkeypatch.setenv("COURSE_CHECKS", "strict")
    assert grading()
    with pytest.raises(TaskFailed, match="not answered yet"):
        check("sq", None, _square_ok, reference=abs)
    with pytest.raises(AssertionError, match=r"f\(3\) is 6[\s\S]*Hint: use \*\*"):
        check("sq", lambda x: 2 * x, _square_ok, hint="use **")
    square = lambda x: x * x  # noqa: E731
    assert check("sq", square, _square_ok) is square


def test_warnings_while_verifying_never_reach_stderr(interactive, capsys):
    def noisy(f):
        print("library warning", file=sys.stderr)  # nbgrader would score the test cell 0
        return []

    check("quiet", 1, noisy)
    captured = capsys.readouterr()
    assert captured.err == "" and "library warning" in captured.out
    with pytest.raises(NotAnswered):
        answered(None)


def test_the_repository_url_comes_from_pyproject(tmp_path):
    assert assignments.repo_url() == "https://github.com/open-mmlab-course/voc-segmentation"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"\[project.urls\] Repository"):
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
    assert answers and all("### BEGIN SOLUTION" in c.source for c in answers), name
    assert tests and all(points > 0 for points in tests.values()), name
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            assert meta["locked"] and "check(" in cell.source, (name, meta["grade_id"])
            assert "### BEGIN HIDDEN TESTS" in cell.source, (name, meta["grade_id"])
            last = cell.source.split("### BEGIN HIDDEN TESTS")[0].strip().splitlines()[-1]
            assert not last.startswith("check("), "assign check's result (nbgrader reads a " \
                "number as partial credit)"


@pytest.fixture(scope="module")
def smoke_env(demo_root, tmp_path_factory):
    """The notebooks' environment: smoke mode, the demo dataset, one WORK_DIR for the module."""
    return assignments.nbgrader_env(SMOKE="1", VOC_ROOT=str(demo_root),
                                    WORK_DIR=str(tmp_path_factory.mktemp("validate")))


@pytest.mark.parametrize("name", SOURCES)
def test_every_graded_cell_fails_when_unanswered(name, smoke_env):
    """`nbgrader validate --invert` on the release: no graded cell passes with blank answers."""
    done = subprocess.run([assignments.NBGRADER, "validate", "--invert", f"notebooks/{name}.ipynb"],
                          cwd=ROOT, env=smoke_env, capture_output=True, text=True, timeout=1800)
    assert "Success! The notebook does not pass any tests." in done.stdout, done.stdout[-3000:]
