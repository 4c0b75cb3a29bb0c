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


LEAVE_BEHIND = '''
import os, time
os.makedirs("/tmp/locked/inner", exist_ok=True)
os.chmod("/tmp/locked", 0)
open("/tmp/planted", "w").write("x")
open("/dev/shm/planted", "w").write("x")
secret = "my answer"  # SECRET-OF-ALICE: the next hand-in must not find this line
if os.fork() == 0:          # a daemon: its own session, outside the task's process group
    os.setsid()
    if os.fork() == 0:
        while True:
            open("/tmp/daemon-alive", "w").write(secret)
            time.sleep(0.05)
    os._exit(0)
time.sleep(0.3)
found = os.path.exists("/tmp/daemon-alive")
'''

LOOK_AROUND = '''
# SECRET-OF-BOB: this hand-in's own answer, which its memory holds
import os
def _mine(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return b""
def _opens(path, mode):
    try:
        open(path, mode).close()
        return "opened"
    except OSError as exc:
        return type(exc).__name__
def _in_memory(name):
    """Whether memory holds the marker SECRET-OF- followed by `name` (given as character codes,
    so that this answer's own text never holds it)."""
    prefix = "SECRET" + "-OF-"
    prefix, found = prefix.encode(), False
    maps = open("/proc/self/maps").read().splitlines()
    with open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if "rw" not in line.split()[1] or hi - lo > 1 << 28:
                continue
            try:
                mem.seek(lo)
                block = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            at = block.find(prefix)
            while at >= 0:
                if list(block[at + len(prefix):at + len(prefix) + len(name)]) == name:
                    return True
                at = block.find(prefix, at + 1)
    return found
me, parent = os.getpid(), os.getppid()
server = int(open(f"/proc/{parent}/stat").read().rsplit(")", 1)[1].split()[1])
others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me, parent, server)]
found = {
    "left in /tmp": sorted(set(os.listdir("/tmp")) & {"planted", "locked", "daemon-alive"}),
    "left in /dev/shm": sorted(os.listdir("/dev/shm")),
    "other processes": len(others),
    "its own answer in memory": _in_memory([66, 79, 66]),
    "earlier answer in memory": _in_memory([65, 76, 73, 67, 69]),
    "hand-in process memory": _opens(f"/proc/{parent}/mem", "rb"),
    "server's stdout": _opens(f"/proc/{server}/fd/1", "wb"),
}
'''


def test_one_server_grades_hand_in_after_hand_in_each_from_a_clean_slate(toy, tmp_path):
    """A server's sandbox starts once for many hand-ins; what one hand-in leaves (a daemon,
    files in /tmp and /dev/shm, a locked folder, its answers in memory) is gone for the next,
    and no answer can reach the processes that read the jobs and send the results."""
    mod, _, fixtures = toy
    session = tasks.server([mod], folder=tmp_path / "server", voc_root=str(fixtures),
                           fixtures=[str(fixtures)])
    try:
        first, limit, _ = tasks.run(mod, {"world": LEAVE_BEHIND}, folder=None,
                                    voc_root=str(fixtures), fixtures=str(fixtures),
                                    session=session)
        assert limit == "" and first["world"]["cases"]["answer"] == {"payload": True}
        second, limit, _ = tasks.run(mod, {"world": LOOK_AROUND}, folder=None,
                                     voc_root=str(fixtures), fixtures=str(fixtures),
                                     session=session)
        assert limit == ""
        assert second["world"]["cases"]["answer"] == {"payload": {
            "left in /tmp": [], "left in /dev/shm": [], "other processes": 0,
            "its own answer in memory": True, "earlier answer in memory": False,
            "hand-in process memory": "PermissionError", "server's stdout": "PermissionError"}}
        assert session.starts == 1
    finally:
        session.close()


def test_a_hand_in_that_kills_its_server_fails_alone(toy, tmp_path):
    mod, _, fixtures = toy
    session = tasks.server([mod], folder=tmp_path / "server", voc_root=str(fixtures),
                           fixtures=[str(fixtures)])
    killer = ("import os, signal\nppid = os.getppid()\n"
              "server = int(open(f'/proc/{ppid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
              "os.kill(server, signal.SIGKILL)\nos.kill(ppid, signal.SIGKILL)")
    good = {"double": "def double(x):\n    return 2 * x"}
    try:
        results, limit, _ = tasks.run(mod, dict(good, world=killer), folder=None,
                                      voc_root=str(fixtures), fixtures=str(fixtures),
                                      session=session)
        assert "world" not in results and "pooled" not in results
        assert limit.startswith("stopped: the grading process ended early")
        results, limit, _ = tasks.run(mod, good, folder=None, voc_root=str(fixtures),
                                      fixtures=str(fixtures), session=session)
        assert limit == "" and results["double"]["cases"]["small"] == {"payload": [2, 4]}
        assert session.starts == 2
    finally:
        session.close()
