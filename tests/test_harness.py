"""The grading harness (teacher/kit/harness.py) on a toy task module, in the real sandbox.

Each answer cell runs alone with its givens; earlier answers lend their functions, not their
state; the course's package, the job and the kit are not there; a task's failure (an exception,
a hang, an exit, a flood) is its own, with a one-line reason naming the line of the answer.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from teacher import sandbox, tasks

TOY = '''
"""A toy notebook's tasks."""

import os
import sys

NOTEBOOK = "99_toy"
PRELOAD = ()


def _givens(ns, ctx):
    ns.update(BASE=10)


def _double(ns, ctx):
    return {"small": lambda: [ns["double"](x) for x in (1, 2)],
            "large": lambda: ns["double"](10**6)}


def _world(ns, ctx):
    def seen():
        names = ("helpers", "teacher", "course.pooling")
        found = {}
        for name in names:
            try:
                __import__(name)
                found[name] = True
            except ImportError:
                found[name] = False
        return found
    return {"imports": seen, "answer": lambda: ns.get("found")}


def _pooled(ns, ctx):
    return {"answer": lambda: ns["pooled"]()}


TASKS = {
    "double": dict(test="double_test", givens=_givens, probe=_double,
                   points={"small": 1, "large": 1}, say={"large": "wrong on large numbers"},
                   timeout=5),
    "world": dict(test="world_test", givens=_givens, probe=_world,
                  points={"imports": 1, "answer": 1}),
    "pooled": dict(test="pooled_test", givens=_givens, probe=_pooled, points={"answer": 1},
                   uses=("pooling",)),
}
'''


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    path = folder / "n99_toy.py"
    path.write_text(TOY)
    spec = importlib.util.spec_from_file_location("n99_toy", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["n99_toy"] = mod
    spec.loader.exec_module(mod)
    fixtures = folder / "fixtures"
    fixtures.mkdir()
    return mod, folder, fixtures


def _run(toy, answers, tmp_path, **kw):
    mod, _, fixtures = toy
    assert sandbox.unavailable() is None, sandbox.unavailable()
    results, limit, _ = tasks.run(mod, answers, folder=tmp_path / "run", voc_root=str(fixtures),
                                  fixtures=str(fixtures), **kw)
    return results, limit


def test_each_answer_runs_alone_with_its_givens_and_earlier_functions(toy, tmp_path):
    answers = {
        "double": "state = 5\n\n\ndef helper(x):\n    return BASE * x // 5\n\n\n"
                  "def double(x):\n    return helper(x)",
        "world": "found = (state if 'state' in globals() else None, helper(3))",
        "pooled": "def pooled():\n    from course.pooling import exact_adaptive_pooling\n"
                  "    return exact_adaptive_pooling.__name__",
    }
    results, limit = _run(toy, answers, tmp_path)
    assert limit == ""
    assert results["double"]["cases"] == {"small": {"payload": [2, 4]},
                                          "large": {"payload": 2 * 10**6}}
    # an earlier answer lends its functions (helper), not its state (state)
    assert results["world"]["cases"]["answer"] == {"payload": [None, 6]}
    # the course's package and the grader are not there; course.pooling only where declared
    assert results["world"]["cases"]["imports"] == {"payload": {
        "helpers": False, "teacher": False, "course.pooling": False}}
    assert results["pooled"]["cases"]["answer"] == {"payload": "exact_adaptive_pooling"}


def test_failures_are_the_tasks_own_with_the_line_of_the_answer(toy, tmp_path):
    answers = {
        "double": "def double(x):\n    if x > 100:\n        raise KeyError('x')\n    return 2 * x",
        "world": "import os\nprint('x' * 10**8)\nos._exit(0)",
        "pooled": "def pooled():\n    while True:\n        pass",
    }
    results, _ = _run(toy, answers, tmp_path, timeout_cap=3)
    assert results["double"]["cases"]["small"] == {"payload": [2, 4]}
    assert results["double"]["cases"]["large"] == {
        "error": "raised KeyError in line 3 of your answer"}
    assert results["world"]["error"] == "ended the grading process (os._exit?)"
    assert results["pooled"]["error"] == "took longer than 3 s"


def test_the_kit_the_job_and_other_tasks_are_gone_before_an_answer_runs(toy, tmp_path):
    spy = ("import gc, os, sys\nfound = sorted({{\n"
           "    'kit': os.path.exists({kit!r}),\n"
           "    'other answer': any(isinstance(o, dict) and 'SECRET-OF-' + 'POOLED' in str(o)\n"
           "                        for o in gc.get_objects()),\n"
           "    'home planted before': os.path.exists(os.path.expanduser('~/planted')),\n"
           "}}.items())\n"
           "open(os.path.expanduser('~/planted'), 'w').write('x')")
    kit = str(tmp_path / "run" / "kit")
    answers = {"double": "import os\nopen(os.path.expanduser('~/planted'), 'w').write('x')\n"
                         "def double(x):\n    return 2 * x",
               "world": spy.format(kit=kit), "pooled": "# SECRET-OF-POOLED"}
    results, _ = _run(toy, answers, tmp_path)
    assert results["world"]["cases"]["answer"]["payload"] == [
        ["home planted before", False], ["kit", False], ["other answer", False]]


def test_results_are_capped_and_must_be_plain_data(toy, tmp_path):
    answers = {"double": "class Liar(int):\n    def __eq__(self, other):\n        return True\n\n\n"
                         "def double(x):\n    return Liar(2 * x) if x < 10 else 'x' * 2**21",
               "world": "found = object()"}
    results, _ = _run(toy, answers, tmp_path)
    assert results["double"]["error"].startswith("returned more than 1 MB")
    assert results["world"]["cases"]["answer"]["error"].startswith(
        "its result could not be used (TypeError")
