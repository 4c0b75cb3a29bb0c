"""`make grade` (teacher.grading): each answer cell graded alone, in the sandbox, on hidden inputs.

One grading run (module fixture `graded`, smoke mode) serves most tests. Per instructor notebook
these students hand in: `solution` (the instructor notebook: full marks), `blank` (the release:
0), `wrong` (every plausible wrong answer of tests/wrong_answers/NN_name.py: each loses points on
its own task only), `innocent` (the solutions with local names an old name list punished: full
marks), `cheater` (tests/tampering.py: planted config and startup files, an untagged cell that
imports the course, string routes, lying objects: 0), `unmarked` (the solutions with their
answer cells' nbgrader marks removed: 0) and `router` (single tasks done by the course's code
through string routes: those tasks 0). `badresume` gets 03 wrong and 04, 05 right.
"""

from __future__ import annotations

import csv
import html
import inspect
import json
import os
import runpy
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from tampering import ROUTES, cheater, innocent, route_hand_in, unmarked  # tests/ on sys.path

from helpers.env import repo_root
from teacher import grading, tasks

ROOT = repo_root()
SOURCES = sorted(p.stem for p in (ROOT / "source" / "voc").glob("[0-9][0-9]_*.ipynb")
                 if tasks.points(json.loads(p.read_text())))  # graded ones: 06 has no task
# COURSE_NOTEBOOKS=01_dataset,02_config grades only these (while writing a notebook's tasks)
if os.environ.get("COURSE_NOTEBOOKS"):
    SOURCES = [n for n in SOURCES if n in os.environ["COURSE_NOTEBOOKS"].split(",")]


def wrong_answers(name: str) -> dict[str, str]:
    path = ROOT / "tests" / "wrong_answers" / f"{name}.py"
    assert path.is_file(), f"{path} is missing: every notebook needs plausible wrong answers"
    return runpy.run_path(str(path))["WRONG_ANSWERS"]


def _source(name: str):
    return nbformat.read(ROOT / "source" / "voc" / f"{name}.ipynb", as_version=4)


def _replace(nb, answers: dict[str, str]):
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in answers:
            cell.source = answers[cell.metadata["nbgrader"]["grade_id"]].strip("\n")
    return nb


def _write(submitted: Path, student: str, name: str, nb) -> None:
    (submitted / student).mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, submitted / student / f"{name}.ipynb")


@pytest.fixture(scope="module")
def graded(tmp_path_factory, demo_root):
    base = tmp_path_factory.mktemp("grading")
    submitted = base / "submitted"
    marker = base / "planted-code-ran.txt"
    for name in SOURCES:
        source = _source(name)
        release = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        students = [("solution", source), ("blank", release), ("innocent", innocent(source)),
                    ("wrong", _replace(source, wrong_answers(name))),
                    ("cheater", cheater(release, str(marker), str(ROOT))),
                    ("unmarked", unmarked(source))]
        if any(n == name for n, _ in ROUTES):
            students.append(("router", route_hand_in(source, name, str(ROOT))))
        if name in ("03_training", "04_predict_evaluate", "05_onnx"):
            resume = {"resume": wrong_answers("03_training")["resume"]} \
                if "resume" in wrong_answers("03_training") else {}
            students.append(("badresume", _replace(source, resume) if name == "03_training"
                             else source))
        for student, nb in students:
            _write(submitted, student, name, nb)
    home = Path.home()
    before = sorted(str(p) for p in (home / ".ipython", home / ".jupyter") if p.exists())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMOKE", "1")
        mp.setenv("VOC_ROOT", str(demo_root))
        mp.setenv("GRADER_TOKEN", "secret-of-the-grader")
        mp.delenv("UNSAFE_NO_SANDBOX", raising=False)
        began = time.monotonic()
        results = grading.grade(submitted, base / "out" / "grades.csv", course=base / "course",
                                cell_timeout=600, notebook_timeout=1800)
        seconds = time.monotonic() - began
    after = sorted(str(p) for p in (home / ".ipython", home / ".jupyter") if p.exists())
    return dict(base=base, marker=marker, seconds=seconds, home=(before, after),
                results={(r.student, r.notebook): r for r in results})


@pytest.mark.parametrize("name", SOURCES)
def test_solution_full_blank_zero_innocent_names_full(graded, name):
    results = graded["results"]
    solution, blank, kind = (results[s, name] for s in ("solution", "blank", "innocent"))
    assert solution.max_score > 0 and solution.score == solution.max_score, solution
    assert blank.score == 0 and blank.max_score == solution.max_score, blank
    assert all(message == "not answered" for *_, message in blank.tasks.values()), blank
    assert kind.score == kind.max_score, kind


@pytest.mark.parametrize("name", SOURCES)
def test_each_plausible_wrong_answer_loses_points_on_its_own_task_only(graded, name):
    wrong, mine = wrong_answers(name), graded["results"]["wrong", name]
    assert wrong and set(wrong) <= set(mine.tasks), f"unknown answer cells in {name}'s fixture"
    for task, (points, worth, message) in mine.tasks.items():
        if task in wrong:
            assert points < worth and message, (task, mine.tasks[task])
        else:
            assert points == worth, (task, mine.tasks[task])


def test_points_per_case_kind_add_up_to_each_test_cells_points():
    for name in SOURCES:
        cells = tasks.points(json.loads((ROOT / "source" / "voc" / f"{name}.ipynb").read_text()))
        specs = tasks.module(name).TASKS
        assert {s["test"]: sum(s["points"].values()) for s in specs.values()} == cells, name
        assert set(specs) == set(tasks.answer_cells(json.loads(
            (ROOT / "notebooks" / f"{name}.ipynb").read_text()))), name


@pytest.mark.parametrize("name", SOURCES)
def test_tampering_earns_nothing_and_planted_files_never_run(graded, name):
    cheat = graded["results"]["cheater", name]
    assert cheat.score == 0 and cheat.max_score > 0, cheat
    assert not graded["marker"].exists(), graded["marker"].read_text()[:300]
    before, after = graded["home"]
    assert before == after  # nothing planted in the grader's own HOME


@pytest.mark.parametrize("name", SOURCES)
def test_answer_cells_without_their_marks_are_not_answers(graded, name):
    assert graded["results"]["unmarked", name].score == 0


@pytest.mark.parametrize("name", sorted({n for n, _ in ROUTES} & set(SOURCES)))
def test_the_course_code_cannot_be_reached_by_any_route(graded, name):
    routed = {t for n, t in ROUTES if n == name}
    mine = graded["results"]["router", name]
    for task, (points, worth, _) in mine.tasks.items():
        assert points == (0 if task in routed else worth), (task, mine.tasks[task])


@pytest.mark.skipif(not {"03_training", "04_predict_evaluate", "05_onnx"} <= set(SOURCES),
                    reason="COURSE_NOTEBOOKS leaves out 03, 04 or 05")
def test_a_wrong_resume_in_03_leaves_04_and_05_unchanged(graded):
    results = graded["results"]
    assert results["badresume", "03_training"].tasks["resume"][0] < \
        results["solution", "03_training"].tasks["resume"][0]
    for name in ("04_predict_evaluate", "05_onnx"):
        assert results["badresume", name].tasks == results["solution", name].tasks


def test_the_csv_the_gradebook_and_the_feedback(graded):
    base, results = graded["base"], graded["results"]
    with (base / "out" / "grades.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["student", "notebook", "score", "max_score", "late_days", "penalty",
                             "final_score", "time_source", "auto_score", "auto_max",
                             "manual_score", "manual_max", "manual_pending"]
    assert {(r["student"], r["notebook"]): (float(r["auto_score"]), float(r["auto_max"]))
            for r in rows} == {k: (r.score, r.max_score) for k, r in results.items()}
    # the written answers (graded by hand, none yet) count 0 of their points in the total
    for r in rows:
        assert float(r["score"]) == float(r["auto_score"])
        assert float(r["max_score"]) == float(r["auto_max"]) + float(r["manual_max"])
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{base / 'course' / 'gradebook.db'}") as gb:
        for (student, name), r in results.items():
            if student in ("solution", "wrong"):
                got = gb.find_submission_notebook(name, "voc", student).score
                assert got == pytest.approx(r.score), (student, name)
    page = (base / "out" / "feedback" / "wrong" / f"{SOURCES[0]}.html").read_text()
    assert "points" in page and SOURCES[0] in page
    # feedback is built from the verdicts: no line of any hidden probe is on any page
    probes = [line.strip() for name in SOURCES
              for line in inspect.getsource(tasks.module(name)).splitlines()
              if len(line.strip()) > 30 and not line.strip().startswith(('"', "#", "say"))]
    for page in sorted((base / "out" / "feedback").glob("*/*.html")):
        text = html.unescape(page.read_text())
        leaked = [line for line in probes if line in text]
        assert not leaked, (page, leaked[:3])


# --- A class run always ends: crashing, flooding, hanging and broken hand-ins -------------------

CRASHER = {
    "voc_configs": "x = " + "(" * 200_000 + "1" + ")" * 200_000,
    "mmcv_accepted": "import os\nos._exit(3)",
    "voc_head": "head = None\nfor _ in range(4):\n    print('x' * 10**8)\n"
                "raise type('<script>alert(1)</script>', (Exception,), {})()",
    "recipe": "def recipe(path):\n    while True:\n        pass",
}


def test_one_hand_in_never_stops_the_class(tmp_path, demo_root, monkeypatch):
    source = _source("00_environment")
    sub = tmp_path / "submitted"
    _write(sub, "crasher", "00_environment", _replace(source, CRASHER))
    _write(sub, "zoe", "00_environment", source)
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
    source = _source("00_environment")
    for attack, answer in ATTACKS.items():
        _write(sub, attack, "00_environment",
               _replace(source, {"voc_configs": answer.format(**values)}))
    monkeypatch.setenv("GRADER_TOKEN", "secret-of-the-grader")
    monkeypatch.setenv("VOC_ROOT", str(demo_root))
    monkeypatch.setenv("MEM_LIMIT", "2G")
    monkeypatch.setenv("PROC_LIMIT", "64")
    monkeypatch.delenv("UNSAFE_NO_SANDBOX", raising=False)
    results = grading.grade(sub, tmp_path / "grades.csv", course=course, cell_timeout=60,
                            notebook_timeout=300, jobs=2)
    got = {r.student: r for r in results}
    assert {a: got[a].tasks["voc_configs"][0] for a in ATTACKS} == dict.fromkeys(ATTACKS, 0)
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
    assert got["network"].score == got["network"].max_score - 1


def test_without_a_sandbox_grading_refuses_in_one_line(tmp_path, monkeypatch, capsys):
    from teacher import sandbox

    monkeypatch.setattr(sandbox, "unavailable", lambda: "no sandbox here (test); set "
                        f"{sandbox.OPT_OUT} to grade without one")
    monkeypatch.delenv("UNSAFE_NO_SANDBOX", raising=False)
    _write(tmp_path / "sub", "zoe", "00_environment", _source("00_environment"))
    assert grading.main([str(tmp_path / "sub"), str(tmp_path / "g.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and sandbox.OPT_OUT in err[0]
    assert not (tmp_path / "g.csv").exists()


# --- make grade from the command line: JOBS and a Dask cluster started as a teacher does ---------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_grade_with_jobs_and_a_dask_cluster_gives_the_grades_of_one_job_and_regrade(
        tmp_path, demo_root):
    source = _source("00_environment")
    sub = tmp_path / "submitted"
    _write(sub, "ann", "00_environment", source)
    _write(sub, "bob", "00_environment", _replace(source, wrong_answers("00_environment")))
    _write(sub, "cy", "00_environment",
           nbformat.read(ROOT / "notebooks" / "00_environment.ipynb", as_version=4))
    env = dict(os.environ, VOC_ROOT=str(demo_root))
    env.pop("UNSAFE_NO_SANDBOX", None)
    bindir = Path(sys.executable).parent

    def make_grade(label: str, *options: str) -> str:
        out = tmp_path / f"{label}.csv"
        done = subprocess.run(["make", "-s", "grade", f"SUBMITTED={sub}", f"OUT={out}",
                               f"COURSE={tmp_path / label}", *options], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return out.read_text()

    one, two = make_grade("jobs1", "JOBS=1"), make_grade("jobs2", "JOBS=2")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([bindir / "dask", "scheduler", "--host", "127.0.0.1", "--port",
                                  str(port), "--no-dashboard"], cwd=tmp_path, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = subprocess.Popen([bindir / "dask", "worker", address, "--nworkers", "2",
                                "--nthreads", "1", "--no-dashboard"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        dask = make_grade("dask", f"SCHEDULER={address}")
    finally:
        for proc in (workers, scheduler):
            proc.terminate()
            proc.wait(timeout=60)
    assert one == two == dask
    scores = {row["student"]: float(row["score"]) for row in csv.DictReader(one.splitlines())}
    assert scores["ann"] == 7 and scores["cy"] == 0 and 0 < scores["bob"] < 7

    # make regrade: bob fixes one task; only that task of his is graded again, in place
    fixed = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
             if c.metadata.get("nbgrader", {}).get("grade_id") == "voc_configs"}
    _write(sub, "bob", "00_environment",
           _replace(source, dict(wrong_answers("00_environment"), **fixed)))
    before = json.loads((tmp_path / "feedback" / "verdicts.json").read_text())
    done = subprocess.run(["make", "-s", "regrade", f"SUBMITTED={sub}",
                           f"OUT={tmp_path / 'dask.csv'}", f"COURSE={tmp_path / 'dask'}",
                           "STUDENT=ann,bob", "TASK=voc_configs"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 hand-ins" in done.stdout  # ann's and bob's 00 only
    after = json.loads((tmp_path / "feedback" / "verdicts.json").read_text())
    old_bob, new_bob = ([r for r in rows if r["student"] == "bob"][0] for rows in (before, after))
    assert new_bob["tasks"]["voc_configs"][0] == 1 > old_bob["tasks"]["voc_configs"][0]
    assert {k: v for k, v in new_bob["tasks"].items() if k != "voc_configs"} == \
        {k: v for k, v in old_bob["tasks"].items() if k != "voc_configs"}
    # the same hand-in graded again gets the same grade; cy is not graded again at all
    assert [(r["student"], r["score"], r["tasks"]) for r in after if r["student"] != "bob"] == \
        [(r["student"], r["score"], r["tasks"]) for r in before if r["student"] != "bob"]
    regraded = {row["student"]: float(row["score"]) for row in
                csv.DictReader((tmp_path / "dask.csv").read_text().splitlines())}
    assert regraded == dict(scores, bob=scores["bob"] + 1 - old_bob["tasks"]["voc_configs"][0])
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'dask' / 'gradebook.db'}") as gb:
        assert gb.find_submission_notebook("00_environment", "voc", "bob").score == \
            pytest.approx(regraded["bob"])
