"""`make grade` (teacher.grading): each answer cell graded alone, in the sandbox, on hidden inputs.

One grading run (module fixture `graded`, smoke mode) serves every test here; the class runs
that need grading settings of their own are in tests/test_grading_runs.py. Per instructor notebook
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
import time
from pathlib import Path

import pytest
from handins import hand_in, instructor, released, with_answers, wrong_answers  # tests/
from tampering import ROUTES, cheater, innocent, route_hand_in, unmarked

from helpers.env import repo_root
from teacher import grading, tasks

ROOT = repo_root()
SOURCES = sorted(p.stem for p in (ROOT / "source" / "voc").glob("[0-9][0-9]_*.ipynb")
                 if tasks.points(json.loads(p.read_text())))  # graded ones: 06 has no task
# COURSE_NOTEBOOKS=01_dataset,02_config grades only these (while writing a notebook's tasks)
if os.environ.get("COURSE_NOTEBOOKS"):
    SOURCES = [n for n in SOURCES if n in os.environ["COURSE_NOTEBOOKS"].split(",")]


@pytest.fixture(scope="module")
def graded(tmp_path_factory, demo_root):
    base = tmp_path_factory.mktemp("grading")
    submitted = base / "submitted"
    marker = base / "planted-code-ran.txt"
    for name in SOURCES:
        source = instructor(name)
        release = released(name)
        students = [("solution", source), ("blank", release), ("innocent", innocent(source)),
                    ("wrong", with_answers(source, wrong_answers(name))),
                    ("cheater", cheater(release, str(marker), str(ROOT))),
                    ("unmarked", unmarked(source))]
        if any(n == name for n, _ in ROUTES):
            students.append(("router", route_hand_in(source, name, str(ROOT))))
        if name in ("03_training", "04_predict_evaluate", "05_onnx"):
            resume = {"resume": wrong_answers("03_training")["resume"]} \
                if "resume" in wrong_answers("03_training") else {}
            students.append(("badresume", with_answers(source, resume) if name == "03_training"
                             else source))
        for student, nb in students:
            hand_in(submitted, student, name, nb)
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
