"""When the student's code raises inside a visible check, the check names the line of their cell
that raised and the exception (helpers.checks.raised_where).

The student's functions here are defined as a notebook defines them: their source is compiled
under the name the kernel gives a cell (ipykernel's and plain IPython's caching compilers, which
also put the source into linecache), then run by a real check."""

from __future__ import annotations

import textwrap

import pytest
from ipykernel.compiler import XCachingCompiler
from IPython.core.compilerop import CachingCompiler

from helpers.checks import Task, check, data, evaluate, raised_where, register


def cell(source: str, compiler=None, number: int = 7) -> dict:
    """Run `source` as a notebook cell would; return the names it defined."""
    source = textwrap.dedent(source)
    name = (compiler or XCachingCompiler()).cache(source, number)
    namespace: dict = {}
    exec(compile(source, name, "exec"), namespace)  # noqa: S102 (the test's own cell)
    return namespace


def count_votes(votes: dict) -> list[str]:
    """A made-up task's verify function: the answer tallies votes per colour."""
    got = votes(["red", "blue", "red"])
    return [] if got == {"red": 2, "blue": 1} else ["the tally is wrong"]


register("count_votes", Task(count_votes, hint="a dict, or collections.Counter"))

RAISES = """
def tally(votes):
    counts = {}
    for v in votes:
        counts[v] += 1
    return counts
"""


def test_the_line_of_the_cell_that_raised_is_named():
    tally = cell(RAISES)["tally"]
    status, problems = evaluate(tally, count_votes)
    assert status == "wrong"
    assert problems == ["your code raised KeyError: 'red' (line 5 of your cell: "
                        "`counts[v] += 1`)"]


def test_plain_ipython_cells_are_found_too():
    tally = cell(RAISES, CachingCompiler(), number=3)["tally"]
    assert "(line 5 of your cell: `counts[v] += 1`)" in evaluate(tally, count_votes)[1][0]


def test_the_deepest_line_of_the_students_code_is_named():
    """The student's function calls another of theirs, which calls a library that raises: the
    line named is the deepest of the student's, the call into the library."""
    tally = cell("""
        import json

        def parse(vote):
            return json.loads(vote)

        def tally(votes):
            return {v: [parse(w) for w in votes].count(v) for v in votes}
        """)["tally"]
    [problem] = evaluate(tally, count_votes)[1]
    assert problem.startswith("your code raised JSONDecodeError: Expecting value")
    assert problem.endswith("(line 5 of your cell: `return json.loads(vote)`)")


def test_check_prints_it_and_the_lesson_goes_on(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_CHECKS", raising=False)
    assert check("count_votes", cell(RAISES)["tally"]) is None
    out = capsys.readouterr().out
    assert "✗ Task count_votes: 1 problem(s):" in out
    assert "  - your code raised KeyError: 'red' (line 5 of your cell: `counts[v] += 1`)" in out
    assert "Hint: a dict, or collections.Counter" in out


def test_a_real_task_names_the_line():
    """Notebook 01's read_class_ids, answered with a reader that looks the file up in a dict."""
    read_class_ids = cell("""
        from pathlib import Path
        MASKS = {}

        def read_class_ids(path):
            name = Path(path).name
            return MASKS[name]
        """)["read_class_ids"]
    [problem] = evaluate(read_class_ids, data.verify_read_class_ids)[1]
    assert problem.startswith("your code raised KeyError: ")
    assert problem.endswith("(line 7 of your cell: `return MASKS[name]`)")


def test_no_cell_in_the_traceback_names_no_line():
    """A function not defined in a cell (here: the test module's own) gets the exception alone."""
    def tally(votes):
        return {}[votes[0]]

    assert evaluate(tally, count_votes)[1] == ["your code raised KeyError: 'red'"]
    try:
        tally(["red"])
    except KeyError as exc:
        assert raised_where(exc) == ""


@pytest.mark.parametrize("name", ["<ipython-input-12-0123456789ab>",
                                  "/tmp/ipykernel_4242/3021841543.py",
                                  r"C:\Users\s\AppData\Local\Temp\ipykernel_77\12.py"])
def test_cell_names_of_every_front_end(name):
    namespace: dict = {}
    exec(compile("def f():\n    return 1 / 0\n", name, "exec"), namespace)  # noqa: S102
    try:
        namespace["f"]()
    except ZeroDivisionError as exc:
        assert raised_where(exc) == " (line 2 of your cell)"  # no source in linecache
