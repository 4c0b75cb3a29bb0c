"""`make grade` runs that need settings of their own: a class run always ends, hostile answers are
contained, and no sandbox refuses in one line (tests/test_grading.py holds the one shared grading
run of every notebook, tests/test_grading_cluster.py `make grade` with JOBS and a Dask cluster).
"""

from __future__ import annotations

import socket

from handins import hand_in, instructor, with_answers  # tests/

from helpers.env import repo_root
from teacher import grading

ROOT = repo_root()


# --- A class run always ends: crashing, flooding, hanging and broken hand-ins -------------------

CRASHER = {
    "voc_configs": "x = " + "(" * 200_000 + "1" + ")" * 200_000,
    "mmcv_accepted": "import os\nos._exit(3)",
    "voc_head": "head = None\nfor _ in range(4):\n    print('x' * 10**8)\n"
                "raise type('<script>alert(1)</script>', (Exception,), {})()",
    "recipe": "def recipe(path):\n    while True:\n        pass",
}


def test_one_hand_in_never_stops_the_class(tmp_path, demo_root, monkeypatch):
    source = instructor("00_environment")
    sub = tmp_path / "submitted"
    hand_in(sub, "crasher", "00_environment", with_answers(source, CRASHER))
    hand_in(sub, "zoe", "00_environment", source)
    (sub / "broken").mkdir()
    (sub / "broken" / "00_environment.ipynb").write_text("[" * 100_000 + "]" * 100_000)
    (sub / "broken" / "01_dataset.ipynb").write_text("not json")
    monkeypatch.setenv("VOC_ROOT", str(demo_root))
    results = grading.grade(sub, tmp_path / "grades.csv", course=tmp_path / "course",
                            cell_timeout=20, notebook_timeout=600)
    got = {(r.student, r.notebook): r for r in results}
    assert got["zoe", "00_environment"].score == got["zoe", "00_environment"].max_score == 7
    crasher = got["crasher", "00_environment"]
    assert crasher.score == 0, crasher
    assert crasher.tasks["voc_configs"][2].startswith("your answer cell could not be compiled")
    assert "ended the grading process" in crasher.tasks["mmcv_accepted"][2]
    assert "took longer than 20 s" in crasher.tasks["recipe"][2]
    page = (tmp_path / "feedback" / "crasher" / "00_environment.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert got["broken", "00_environment"].score == 0
    assert "not a readable notebook" in got["broken", "00_environment"].message
    assert "not a readable notebook" in got["broken", "01_dataset"].message
    assert got["zoe", "01_dataset"].message == "not handed in"
    report = (tmp_path / "feedback" / "report.html").read_text()  # the class report of the run
    assert report.count("<img") >= 4 and "crasher" in report


# --- The sandbox holds nothing of the grader's ---------------------------------------------------

CORRECT = "    return sorted(p.name for p in Path(folder).glob('*.py') if 'voc12' in p.name)"
ATTACKS = {  # each returns the right answer only after its attack worked
    "answer_key": "import json\n\n\ndef voc_configs(folder):\n"
                  "    json.load(open({source!r}))\n" + CORRECT,
    "grader_env": "def voc_configs(folder):\n    assert os.environ['GRADER_TOKEN']\n" + CORRECT,
    "grader_proc": "def voc_configs(folder):\n    open('/proc/1/environ').read().index("
                   "'GRADER_TOKEN')\n" + CORRECT,
    "gradebook": "import sqlite3\n\n\ndef voc_configs(folder):\n    sqlite3.connect("
                 "'file:{gradebook}?mode=ro', uri=True).execute('select 1').fetchall()\n"
                 + CORRECT,
    "plant": "def voc_configs(folder):\n    Path({planted!r}).write_text('planted')\n" + CORRECT,
    "network": "import socket\n\n\ndef voc_configs(folder):\n    socket.create_connection("
               "('127.0.0.1', {port}), timeout=2).close()\n" + CORRECT,
    "memory": "blob = bytearray(12 * 2**30)\n\n\ndef voc_configs(folder):\n" + CORRECT,
    "processes": "import os, time\nfor _ in range(200):\n    if os.fork() == 0:\n"
                 "        time.sleep(60)\n        os._exit(0)\n\n\ndef voc_configs(folder):\n"
                 + CORRECT,
}


def test_hostile_answers_are_contained_and_an_honest_one_scores(tmp_path, demo_root,
                                                                monkeypatch):
    from teacher import sandbox

    assert sandbox.unavailable() is None, sandbox.unavailable()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.1)
    course = tmp_path / "course"
    planted = ROOT / "helpers" / "planted_by_a_student.py"
    values = dict(source=str(ROOT / "source" / "voc" / "00_environment.ipynb"),
                  gradebook=str(course / "gradebook.db"), planted=str(planted),
                  port=listener.getsockname()[1])
    sub = tmp_path / "submitted"
    source = instructor("00_environment")
    for attack, answer in ATTACKS.items():
        hand_in(sub, attack, "00_environment",
               with_answers(source, {"voc_configs": answer.format(**values)}))
    monkeypatch.setenv("GRADER_TOKEN", "secret-of-the-grader")
    monkeypatch.setenv("VOC_ROOT", str(demo_root))
    monkeypatch.setenv("MEM_LIMIT", "2G")
    monkeypatch.setenv("PROC_LIMIT", "64")
    monkeypatch.delenv("UNSAFE_NO_SANDBOX", raising=False)
    results = grading.grade(sub, tmp_path / "grades.csv", course=course, cell_timeout=60,
                            notebook_timeout=300, jobs=2)
    got = {r.student: r for r in results}
    assert {a: got[a].tasks["voc_configs"][0] for a in ATTACKS} == dict.fromkeys(ATTACKS, 0), \
        {a: got[a].tasks["voc_configs"] for a in ATTACKS}
    assert not planted.exists()
    try:
        listener.accept()
        raise AssertionError("a hand-in reached the grader's 127.0.0.1")
    except TimeoutError:
        pass
    finally:
        listener.close()
    assert "MEM_LIMIT" in got["memory"].message, got["memory"]
    assert "PROC_LIMIT" in got["processes"].message, got["processes"]
    # the other tasks of a hand-in whose sandbox was not stopped are graded as usual
    assert got["network"].score == got["network"].max_score - 1, got["network"]


def test_without_a_sandbox_grading_refuses_in_one_line(tmp_path, monkeypatch, capsys):
    from teacher import sandbox

    monkeypatch.setattr(sandbox, "unavailable", lambda: "no sandbox here (test); set "
                        f"{sandbox.OPT_OUT} to grade without one")
    monkeypatch.delenv("UNSAFE_NO_SANDBOX", raising=False)
    hand_in(tmp_path / "sub", "zoe", "00_environment", instructor("00_environment"))
    assert grading.main([str(tmp_path / "sub"), str(tmp_path / "g.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and sandbox.OPT_OUT in err[0]
    assert not (tmp_path / "g.csv").exists()


# --- The order of a class run: the longest hand-ins first ---------------------------------------

def test_the_longest_hand_ins_are_graded_first(tmp_path, monkeypatch):
    """JOBS slots take the hand-ins longest first (a notebook's cost: its solutions' task
    seconds in the truths), so no slot idles at the end while another grades a long one."""
    from concurrent.futures import ThreadPoolExecutor

    order = []

    def fake(student, notebooks, settings, scratch, previous, names):
        order.append((student, names[0]))
        return dict(student=student, results=[], scores={}, feedback={}, worker="w")

    monkeypatch.setattr(grading, "_grade_student", fake)
    truths = {"00_environment": {"a": {"seconds": 0.2}, "b": {"seconds": 0.3}},
              "03_training": {"a": {"seconds": 6.0}},
              "05_onnx": {"a": {"seconds": 4.0}, "b": {"seconds": 5.0}, "c": "not a dict"}}
    settings = grading._Settings(notebooks=sorted(truths), truths=truths, fixtures={},
                                 voc_root="", task_timeout=1, notebook_timeout=1,
                                 use_sandbox=False, threads=1)
    work = {s: dict.fromkeys(truths, "{}") for s in ("amy", "bob")}
    with ThreadPoolExecutor(max_workers=1) as pool:
        done = grading._map(settings, work, pool, None, tmp_path, lambda one: None)
    assert order == [("amy", "05_onnx"), ("bob", "05_onnx"), ("amy", "03_training"),
                     ("bob", "03_training"), ("amy", "00_environment"),
                     ("bob", "00_environment")]
    assert len(done) == 6
