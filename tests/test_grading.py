"""`make grade` (teacher.grading) with nbgrader's real autograder and sqlite gradebook.

Per instructor notebook, five students hand in: `solution` (the instructor notebook: full
marks), `blank` (the release: 0), `wrong` (the solution with every plausible wrong answer of
tests/wrong_answers/NN_name.py: the test cell after each of them fails), `cheater` (the release
trying every tampering route of tests/tampering.py: 0) and `delegator` (the solution with some
tasks handed to the course's own code: those tasks 0). `tamper` edits and deletes test cells of
notebook 00. A toy course shows that hanging, crashing and raising hand-ins get a
score and a message while grading goes on.
"""

from __future__ import annotations

import csv
import os
import runpy
from pathlib import Path

import nbformat
import pytest
from tampering import DELEGATIONS, cheater, delegator  # tests/ is on sys.path

from helpers.env import repo_root
from teacher import grading

ROOT = repo_root()
SOURCES = sorted(p.stem for p in (ROOT / "source" / "voc").glob("[0-9][0-9]_*.ipynb"))
# COURSE_NOTEBOOKS=01_dataset,02_config grades only these (while converting a notebook)
if os.environ.get("COURSE_NOTEBOOKS"):
    SOURCES = [n for n in SOURCES if n in os.environ["COURSE_NOTEBOOKS"].split(",")]


def wrong_answers(name: str) -> dict[str, str]:
    path = ROOT / "tests" / "wrong_answers" / f"{name}.py"
    assert path.is_file(), f"{path} is missing: every notebook needs plausible wrong answers"
    return runpy.run_path(str(path))["WRONG_ANSWERS"]


def _replace(nb, answers: dict[str, str]):
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id].strip("\n")
    return nb


def _tests_after(nb, grade_id: str) -> list[str]:
    """grade_ids of the test cells between answer cell `grade_id` and the next answer cell."""
    meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    start = next(i for i, m in enumerate(meta) if m.get("grade_id") == grade_id)
    tests = []
    for m in meta[start + 1:]:
        if m.get("solution"):
            break
        if m.get("grade"):
            tests.append(m["grade_id"])
    return tests


@pytest.fixture(scope="module")
def graded(tmp_path_factory, demo_root):
    """Grade solution, blank, wrong (every notebook) and tamper (00) once, in smoke mode."""
    base = tmp_path_factory.mktemp("grading")
    submitted = base / "submitted"
    for name in SOURCES:
        source = nbformat.read(ROOT / "source" / "voc" / f"{name}.ipynb", as_version=4)
        release = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        students = [("solution", source), ("blank", release), ("cheater", cheater(release)),
                    ("wrong", _replace(source, wrong_answers(name)))]
        if name in DELEGATIONS:
            students.append(("delegator", delegator(source, name)))
        for student, nb in students:
            (submitted / student).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, submitted / student / f"{name}.ipynb")
    if "00_environment" in SOURCES:  # tamper: an edited and two deleted test cells
        nb = _replace(nbformat.read(ROOT / "source" / "voc" / "00_environment.ipynb", 4),
                      {"voc_configs": wrong_answers("00_environment")["voc_configs"],
                       "voc_configs_test": "find_voc_configs = voc_configs  # always passes"})
        nb.cells = [c for c in nb.cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") not in
                    ("mmcv_accepted_test", "voc_head_test")]
        (submitted / "tamper").mkdir()
        nbformat.write(nb, submitted / "tamper" / "00_environment.ipynb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMOKE", "1")
        mp.setenv("VOC_ROOT", str(demo_root))
        mp.setenv("WORK_DIR", str(base / "work_dirs"))
        results = grading.grade(submitted, base / "out" / "grades.csv", course=base / "course",
                                cell_timeout=900, notebook_timeout=1800)
    return base, {(r.student, r.notebook): r for r in results}


@pytest.mark.parametrize("name", SOURCES)
def test_solution_scores_full_marks_blank_zero_wrong_less(graded, name):
    _, results = graded
    solution, blank, wrong = (results[s, name] for s in ("solution", "blank", "wrong"))
    assert solution.max_score > 0 and solution.score == solution.max_score, solution
    assert blank.score == 0 and blank.max_score == solution.max_score, blank
    assert wrong.score < wrong.max_score, wrong


@pytest.mark.parametrize("name", SOURCES)
def test_each_plausible_wrong_answer_fails_its_own_test(graded, name):
    _, results = graded
    source = nbformat.read(ROOT / "source" / "voc" / f"{name}.ipynb", as_version=4)
    wrong = wrong_answers(name)
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
    assert wrong and set(wrong) <= set(solutions), f"unknown answer cells in {name}'s fixture"
    for grade_id in wrong:
        tests = _tests_after(source, grade_id)
        assert tests, f"{name}: no test cell after answer cell {grade_id}"
        assert set(tests) <= set(results["wrong", name].failed), (grade_id, results["wrong", name])


@pytest.mark.parametrize("name", SOURCES)
def test_a_wrong_answer_fails_only_its_own_test_cell(graded, name):
    """A failed check returns None and the lesson goes on without the answer: no other cell of a
    wrong hand-in raises (no NameError or TypeError from an answer the wrong task left out)."""
    base, _ = graded
    nb = nbformat.read(base / "course" / "autograded" / "wrong" / "voc" / f"{name}.ipynb", 4)
    errors = [(i, o.ename) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              and not c.metadata.get("nbgrader", {}).get("grade")
              for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []


def test_the_csv_and_the_feedback(graded):
    base, results = graded
    with (base / "out" / "grades.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["student", "notebook", "score", "max_score"]
    assert {(r["student"], r["notebook"]): (float(r["score"]), float(r["max_score"]))
            for r in rows} == {k: (r.score, r.max_score) for k, r in results.items()}
    html = (base / "out" / "feedback" / "blank" / f"{SOURCES[0]}.html").read_text()
    assert SOURCES[0] in html and "not answered yet" in html


def test_feedback_never_shows_hidden_tests_or_grader_records(graded):
    """nbgrader's default feedback prints the hidden tests; the course's never does."""
    base, results = graded
    pages = sorted((base / "out" / "feedback").glob("*/*.html"))
    assert len(pages) >= len(SOURCES)
    hidden = []
    for name in SOURCES:
        nb = nbformat.read(ROOT / "source" / "voc" / f"{name}.ipynb", as_version=4)
        for cell in nb.cells:
            text = cell.source.split("### BEGIN HIDDEN TESTS")[1:]
            hidden += [line.strip() for part in text
                       for line in part.split("### END HIDDEN TESTS")[0].splitlines()
                       if len(line.strip()) > 24]
    assert hidden
    import html as html_lib
    for page in pages:
        text = html_lib.unescape(page.read_text())
        assert "HIDDEN TESTS" not in text and "recorded for grading" not in text, page
        assert "vnd.voc-course.record" not in text, page
        leaked = [line for line in hidden if line in text]
        assert not leaked, (page, leaked[:3])
    assert all((base / "out" / "feedback" / s / f"{n}.html").is_file()
               for (s, n), r in results.items() if r.message != "not handed in")


@pytest.mark.parametrize("name", SOURCES)
def test_tampering_earns_nothing(graded, name):
    """Redirected stderr, a rebound check, patched numpy, lying answers, no tracebacks, edited
    and deleted test cells, a forged gradebook and forged records: a blank hand-in stays at 0."""
    _, results = graded
    cheat = results["cheater", name]
    assert cheat.score == 0 and cheat.max_score > 0, cheat


@pytest.mark.parametrize("name", sorted(set(DELEGATIONS) & set(SOURCES)))
def test_a_task_handed_to_the_course_code_scores_zero(graded, name):
    _, results = graded
    source = nbformat.read(ROOT / "source" / "voc" / f"{name}.ipynb", as_version=4)
    result = results["delegator", name]
    lost = {t for grade_id in DELEGATIONS[name] for t in _tests_after(source, grade_id)}
    assert set(result.failed) == lost, result
    assert "delegates to the course's code" in result.message, result.message
    assert result.score < results["solution", name].score


@pytest.mark.skipif("00_environment" not in SOURCES, reason="COURSE_NOTEBOOKS leaves out 00")
def test_edited_and_deleted_test_cells_are_graded_with_the_instructors(graded):
    """The edited cell would pass and the deleted ones would be missing: both are restored."""
    _, results = graded
    tamper = results["tamper", "00_environment"]
    assert tamper.failed == ("voc_configs_test",), tamper
    assert tamper.score == tamper.max_score - 1  # voc_configs_test is worth 1 of 4 points
    assert all(r.message == "not handed in" for (s, n), r in results.items()
               if s == "tamper" and n != "00_environment")


TOY_ANSWER = {"solution": True, "grade": False, "locked": False, "grade_id": "double",
              "schema_version": 3}
TOY_TEST = {"solution": False, "grade": True, "locked": True, "points": 2,
            "grade_id": "double_test", "schema_version": 3}


def _toy(path: Path, answer: str, extra: tuple[str, ...] = ()) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    cells = [nbformat.v4.new_code_cell("from helpers.checks.record import record"),
             nbformat.v4.new_code_cell(answer),
             *(nbformat.v4.new_code_cell(code) for code in extra),
             nbformat.v4.new_code_cell(
                 "print('double(3) is', double(3))\n### BEGIN HIDDEN TESTS\n"
                 "record('double_test', [double(5), double(-2)])\n### END HIDDEN TESTS")]
    cells[1].metadata["nbgrader"] = TOY_ANSWER
    cells[-1].metadata["nbgrader"] = TOY_TEST
    nb.cells = cells
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_hanging_crashing_and_raising_hand_ins_get_a_score_and_a_message(tmp_path):
    solution = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
    for name in ("00_hang", "01_crash", "02_raise", "03_slow"):
        _toy(tmp_path / "source" / f"{name}.ipynb", solution)
    sub = tmp_path / "submitted"
    _toy(sub / "mallory" / "00_hang.ipynb", "def double(x):\n    while True:\n        pass")
    _toy(sub / "mallory" / "01_crash.ipynb", "import os\nos._exit(1)")
    _toy(sub / "mallory" / "02_raise.ipynb", "raise RuntimeError('boom')")
    _toy(sub / "mallory" / "03_slow.ipynb", "def double(x):\n    return 2 * x",
         extra=("import time\ntime.sleep(10)",) * 6)
    _toy(sub / "zoe" / "00_hang.ipynb", "def double(x):\n    return x + x")
    results = grading.grade(sub, tmp_path / "grades.csv", source=tmp_path / "source",
                            course=tmp_path / "course", cell_timeout=15, notebook_timeout=40)
    got = {(r.student, r.notebook): r for r in results}
    assert {k: r.score for k, r in got.items()} == {
        ("mallory", "00_hang"): 0, ("mallory", "01_crash"): 0, ("mallory", "02_raise"): 0,
        ("mallory", "03_slow"): 0, ("zoe", "00_hang"): 2, ("zoe", "01_crash"): 0,
        ("zoe", "02_raise"): 0, ("zoe", "03_slow"): 0}
    assert all(r.max_score == 2 for r in results)
    assert "ran over the 15 s limit" in got["mallory", "00_hang"].message
    assert "kernel died" in got["mallory", "01_crash"].message
    assert got["mallory", "02_raise"].message == "failed: double_test (no answer recorded)"
    assert "stopped after 40 s" in got["mallory", "03_slow"].message
    assert got["zoe", "01_crash"].message == "not handed in"
    assert (tmp_path / "feedback" / "zoe" / "00_hang.html").is_file()
    with (tmp_path / "feedback" / "messages.csv").open() as f:
        messages = {(r["student"], r["notebook"]): r["message"] for r in csv.DictReader(f)}
    assert messages == {k: r.message for k, r in got.items() if r.message}


# --- Hostile hand-ins in the sandbox; JOBS and Dask give the same grades ------------------------

SOLUTION = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
# Each attack answers right only when it gets what it tries to reach (then it would score).
ATTACKS = {
    "00_answer_key": "def double(x):\n    import json\n"
                     "    src = json.load(open({source!r}))['cells'][1]['source']\n"
                     "    ns = {{}}\n    exec(''.join(src), ns)\n    return ns['double'](x)",
    "01_other_hand_in": "def double(x):\n    import json\n"
                        "    src = json.load(open({zoe!r}))['cells'][1]['source']\n"
                        "    ns = {{}}\n    exec(''.join(src), ns)\n    return ns['double'](x)",
    "02_grader_env": "import os\n\n\ndef double(x):\n"
                     "    return x * int(os.environ['GRADER_SECRET'])",
    "03_gradebook": "import sqlite3\n\n\ndef double(x):\n"
                    "    sqlite3.connect({gradebook!r}).execute('select * from grade').fetchall()\n"
                    "    return 2 * x",
    "04_write_course": "from pathlib import Path\n\n\ndef double(x):\n"
                       "    Path({planted!r}).write_text('planted')\n    return 2 * x",
    "05_network": "import socket\n\n\ndef double(x):\n"
                  "    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
                  "    return 2 * x",
    "06_memory": "blob = bytearray(12 * 2**30)\n\n\ndef double(x):\n    return 2 * x",
    "07_processes": "import os, time\nfor _ in range(200):\n    if os.fork() == 0:\n"
                    "        time.sleep(60)\n        os._exit(0)\n\n\ndef double(x):\n"
                    "    return 2 * x",
}


@pytest.fixture(scope="module")
def toy_course(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy")
    for name in ATTACKS:
        _toy(base / "source" / f"{name}.ipynb", SOLUTION)
    return base


def test_hostile_hand_ins_are_contained_and_an_honest_one_scores(toy_course, tmp_path,
                                                                 monkeypatch):
    import socket

    from teacher import sandbox

    assert sandbox.unavailable() is None, sandbox.unavailable()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.1)
    sub = tmp_path / "submitted"
    course = tmp_path / "course"
    planted = repo_root() / "helpers" / "planted_by_a_student.py"
    values = dict(source=str(toy_course / "source" / "00_answer_key.ipynb"),
                  zoe=str(sub / "zoe" / "01_other_hand_in.ipynb"),
                  gradebook=str(course / "gradebook.db"), planted=str(planted),
                  port=listener.getsockname()[1])
    for name, attack in ATTACKS.items():
        _toy(sub / "eve" / f"{name}.ipynb", attack.format(**values))
    for name in ATTACKS:
        _toy(sub / "zoe" / f"{name}.ipynb", "def double(x):\n    return x + x")
    monkeypatch.setenv("GRADER_SECRET", "2")
    monkeypatch.setenv("MEM_LIMIT", "2G")
    monkeypatch.setenv("PROC_LIMIT", "64")
    monkeypatch.delenv("UNSAFE_NO_SANDBOX", raising=False)
    results = grading.grade(sub, tmp_path / "grades.csv", source=toy_course / "source",
                            course=course, cell_timeout=60, notebook_timeout=120, jobs=2)
    got = {(r.student, r.notebook): r for r in results}
    assert {n: got["eve", n].score for n in ATTACKS} == dict.fromkeys(ATTACKS, 0)
    assert {n: got["zoe", n].score for n in ATTACKS} == dict.fromkeys(ATTACKS, 2)
    assert not planted.exists()
    try:
        listener.accept()
        raise AssertionError("a hand-in reached the grader's 127.0.0.1")
    except TimeoutError:
        pass
    finally:
        listener.close()
    assert "MEM_LIMIT" in got["eve", "06_memory"].message, got["eve", "06_memory"]
    assert "PROC_LIMIT" in got["eve", "07_processes"].message, got["eve", "07_processes"]


def test_without_a_sandbox_grading_refuses_in_one_line(toy_course, tmp_path, monkeypatch,
                                                       capsys):
    from teacher import sandbox

    monkeypatch.setattr(sandbox, "unavailable", lambda: "no sandbox here (test); set "
                        f"{sandbox.OPT_OUT} to grade without one")
    monkeypatch.delenv("UNSAFE_NO_SANDBOX", raising=False)
    _toy(tmp_path / "sub" / "zoe" / "00_answer_key.ipynb", "def double(x):\n    return 2 * x")
    assert grading.main([str(tmp_path / "sub"), str(tmp_path / "g.csv"),
                         "--source", str(toy_course / "source")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and sandbox.OPT_OUT in err[0]
    assert not (tmp_path / "g.csv").exists()


def test_jobs_and_a_dask_cluster_give_the_grades_of_one_job(toy_course, tmp_path):
    from distributed import LocalCluster

    sub = tmp_path / "submitted"
    for k, student in enumerate(("ann", "bob", "cy", "dee")):
        for name in list(ATTACKS)[:2]:
            answer = "def double(x):\n    return x + x" if (k + len(name)) % 2 else \
                "def double(x):\n    return x * x"
            _toy(sub / student / f"{name}.ipynb", answer)
    runs = {}
    for jobs in (1, 2):
        runs[jobs] = grading.grade(sub, tmp_path / f"j{jobs}.csv", course=tmp_path / f"c{jobs}",
                                   source=toy_course / "source", jobs=jobs,
                                   cell_timeout=60, notebook_timeout=120)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        dask = grading.grade(sub, tmp_path / "dask.csv", course=tmp_path / "cd",
                             source=toy_course / "source", scheduler=cluster.scheduler_address,
                             cell_timeout=60, notebook_timeout=120)
    scores = [{(r.student, r.notebook): r.score for r in run} for run in (*runs.values(), dask)]
    assert scores[0] == scores[1] == scores[2]
    assert sorted(set(scores[0].values())) == [0, 2]
    assert len({r.worker.rsplit(":", 1)[0] for r in dask}) == 2  # two worker processes
    assert (tmp_path / "j1.csv").read_text() == (tmp_path / "dask.csv").read_text()
