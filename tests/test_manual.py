"""Written answers graded by hand (teacher/manual.py): the automatic grader never reads or runs
them, formgrader shows them escaped, and a score entered as formgrader enters it reaches the
grades CSV of make grade and a Canvas export read back.

Real nbgrader (generate_assignment, its Gradebook and formgrader's own HTML template), the real
grader on two small hand-ins of notebook 00.
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import nbformat
import pytest

from teacher import export, manual, tasks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "00_environment"
HOSTILE = ('mmseg compares MMCV_MIN <= version < MMCV_MAX; 2.2.0 is past the top.\n'
           '<script>document.title="owned"</script><img src=x onerror="alert(1)">\n'
           '[click](javascript:alert(2)) $\\href{javascript:alert(3)}{x}$ ``` </pre>')


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _with_text(nb: dict, texts: dict[str, str]) -> dict:
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell["cell_type"] == "markdown" and grade_id in texts:
            cell["source"] = texts[grade_id]
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> dict:
    """alice: every task solved, one written answer hostile, the other left blank; bob: no
    task done, the second written answer written."""
    base = tmp_path_factory.mktemp("manual")
    submitted = base / "hand-ins"
    source = _read(ROOT / "source" / "voc" / f"{NOTEBOOK}.ipynb")
    release = _read(ROOT / "notebooks" / f"{NOTEBOOK}.ipynb")
    hand_ins = {"alice": _with_text(source, {"written_mmcv_pin": HOSTILE,
                                             "written_inheritance": manual.STUB}),
                "bob": _with_text(release, {"written_inheritance": "The base built the "
                                            "pipeline with its own crop_size."})}
    for student, nb in hand_ins.items():
        (submitted / student).mkdir(parents=True)
        (submitted / student / f"{NOTEBOOK}.ipynb").write_text(json.dumps(nb))
    summary = manual.prepare(submitted, base / "manual")
    return dict(base=base, submitted=submitted, manual=base / "manual", summary=summary)


def test_written_answers_are_marked_and_are_no_answer_cells():
    having = []
    for path in sorted((ROOT / "source" / "voc").glob("[0-9][0-9]_*.ipynb")):
        name, source = path.stem, _read(path)
        asked = manual.questions(source)
        if not asked:
            continue
        having.append(name)
        assert all(q["points"] > 0 and q["model"] and q["prompt"] and g.startswith("written_")
                   for g, q in asked.items()), name
        assert not set(asked) & set(tasks.answer_cells(source)), name
        assert not set(asked) & set(tasks.module(name).TASKS), name
        release = _read(ROOT / "notebooks" / f"{name}.ipynb")
        shown = manual.written_answers(release, asked)
        assert shown == {g: manual.STUB for g in asked}, name  # no model answer shipped
        for cell in release["cells"]:
            meta = cell["metadata"].get("nbgrader", {})
            if meta.get("grade_id") in asked:
                assert meta["solution"] and meta["grade"] and not meta["locked"]
                assert meta["points"] == asked[meta["grade_id"]]["points"]
    assert {"00_environment", "01_dataset"} <= set(having)


def test_a_written_cell_turned_into_code_is_never_run(tmp_path):
    """The grader's job holds the tasks' answer cells only: a written answer's cell turned into
    a code cell that would leave a file is neither an answer nor an earlier cell of one."""
    source = _read(ROOT / "source" / "voc" / f"{NOTEBOOK}.ipynb")
    marker = tmp_path / "ran"
    for cell in source["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "written_mmcv_pin":
            cell["cell_type"], cell["outputs"], cell["execution_count"] = "code", [], None
            cell["source"] = f"open({str(marker)!r}, 'w').write('ran')"
    answers = tasks.answer_cells(source)
    assert "written_mmcv_pin" in answers  # a code cell with a solution mark now...
    job = tasks.job(NOTEBOOK, answers, voc_root="/nowhere", fixtures="", scratch=str(tmp_path))
    text = json.dumps(job)
    assert "written_mmcv_pin" not in text and str(marker) not in text  # ...that nothing runs
    assert {t["grade_id"] for t in job["tasks"]} == set(tasks.module(NOTEBOOK).TASKS)


def test_formgrader_shows_the_answers_escaped(course):
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config

    assert course["summary"]["students"] == 2 and course["summary"]["pending"] == 2
    assert course["summary"]["blank"] == 2  # alice's second, bob's first: 0 without a teacher
    path = course["manual"] / "autograded" / "alice" / "voc" / f"{NOTEBOOK}.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert not any(c.cell_type == "code" or c.get("outputs") for c in nb.cells)
    # formgrader's exporter and template, as its SubmissionHandler renders a submission
    config = Config()
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    html, _ = HTMLExporter(config=config).from_filename(str(path), resources=dict(
        assignment_id="voc", notebook_id=NOTEBOOK, submission_id="s", index=0, total=2,
        base_url="", student="alice", last_name="", first_name="", notebook_path="p"))
    head, shown = html.split('<pre style="white-space: pre-wrap">', 1)
    shown, tail = shown.split("</pre>", 1)
    assert "MMCV_MIN &lt;= version" in shown  # the student's text, all of it plain text
    assert "<" not in shown and "&lt;script&gt;" in shown and "&lt;/pre&gt;" in shown
    assert "alert" not in head + tail and "owned" not in head + tail
    assert 'id="written_mmcv_pin"' in html  # formgrader's score box for the question
    assert "What a full answer covers" in html  # the model answer, for the teacher


def test_formgrader_lists_the_answers_to_grade(course):
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(course["manual"])
    config.CourseDirectory.db_url = f"sqlite:///{course['manual'] / 'gradebook.db'}"
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    assert api.get_submission("voc", "alice")["autograded"]
    listed = {s["student"]: s for s in api.get_notebook_submissions("voc", NOTEBOOK)}
    assert set(listed) == {"alice", "bob"}
    assert listed["alice"]["needs_manual_grade"] and listed["bob"]["needs_manual_grade"]
    assert listed["alice"]["max_score"] == 2


def _enter(course: dict, student: str, grade_id: str, score: float | None) -> None:
    """Score one answer as formgrader's GradeHandler.put does."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course['manual'] / 'gradebook.db'}") as gb:
        grade = gb.find_grade(grade_id, NOTEBOOK, "voc", student)
        grade = gb.find_grade_by_id(grade.id)
        grade.manual_score = score
        grade.needs_manual_grade = grade.manual_score is None and grade.auto_score is None
        gb.db.commit()


def _rows(path: Path) -> dict[str, dict]:
    with path.open(newline="") as f:
        return {r["student"]: r for r in csv.DictReader(f) if r["notebook"] == NOTEBOOK}


def test_a_manual_score_reaches_the_csv_and_a_canvas_export(course, demo_root, monkeypatch):
    from teacher import grading

    _enter(course, "alice", "written_mmcv_pin", 0.5)
    monkeypatch.setenv("MANUAL", str(course["manual"]))
    monkeypatch.setenv("VOC_ROOT", str(demo_root))
    out = course["base"] / "grades.csv"
    grading.grade(course["submitted"], out, course=course["base"] / "grade", jobs=1)
    rows = _rows(out)
    worth = sum(sum(s["points"].values()) for s in tasks.module(NOTEBOOK).TASKS.values())
    alice, bob = rows["alice"], rows["bob"]
    assert float(alice["auto_score"]) == worth and float(alice["manual_score"]) == 0.5
    assert float(alice["score"]) == worth + 0.5 == float(alice["final_score"])
    assert float(alice["max_score"]) == worth + 2 and alice["manual_pending"] == "0"
    assert float(bob["score"]) == 0 and bob["manual_pending"] == "1"

    # graded later in formgrader: merged into the same CSV (twice changes nothing)
    _enter(course, "alice", "written_mmcv_pin", 1)
    _enter(course, "bob", "written_inheritance", 0.75)
    for _ in range(2):
        assert manual.main(["--grades", str(out), "--course", str(course["manual"])]) == 0
    rows = _rows(out)
    assert float(rows["alice"]["score"]) == worth + 1 and float(rows["bob"]["score"]) == 0.75
    assert rows["bob"]["manual_pending"] == "0"

    canvas = course["base"] / "canvas.csv"
    assert export.export(out, "canvas", canvas) == [
        "no Canvas ID or SIS id (Canvas cannot match them; give --roster or --collected): "
        "alice, bob"]
    with canvas.open(newline="") as f:
        header, possible, *students = list(csv.reader(f))
    column = header.index(NOTEBOOK)
    assert float(possible[column]) == worth + 2
    assert {r[0]: float(r[column]) for r in students} == {"alice": worth + 1, "bob": 0.75}


def test_an_answer_changed_after_grading_loses_its_score(course):
    nb = _read(course["submitted"] / "bob" / f"{NOTEBOOK}.ipynb")
    (course["submitted"] / "bob" / f"{NOTEBOOK}.ipynb").write_text(json.dumps(
        _with_text(nb, {"written_inheritance": "Something else entirely."})))
    summary = manual.prepare(course["submitted"], course["manual"])
    assert summary["cleared"] == [f"bob/{NOTEBOOK}/written_inheritance"]
    assert manual.scores(course["manual"])[("bob", NOTEBOOK)] == (0.0, 1)
    assert manual.scores(course["manual"])[("alice", NOTEBOOK)] == (1.0, 0)
