"""Written answers a teacher grades by hand in nbgrader's formgrader (`make manual`).

Each notebook's graded questions are **written answers**: a markdown cell that nbgrader marks as
a manually graded answer (``solution`` and ``grade`` true, ``points``, ``grade_id``). The release
replaces its model answer (between nbgrader's solution markers) by ``YOUR ANSWER HERE``; the
automatic grader never reads or runs it (its answers are code cells only).

``python -m teacher.manual SUBMITTED`` (``make manual``) builds a formgrader course, by default
``build/manual/`` (``MANUAL=DIR``), kept across runs:

- ``source/voc/NN_name.ipynb``: each question and its answer cell, nothing else; nbgrader's
  ``generate_assignment`` records them in ``gradebook.db``, the written answers only;
- ``autograded/STUDENT/voc/NN_name.ipynb``: what formgrader shows of a hand-in: the questions,
  the instructor's model answer and the student's text, **HTML-escaped** in a ``<pre>`` block.
  Nothing else of the hand-in is copied (formgrader renders a notebook's markdown and outputs as
  raw HTML in the teacher's Jupyter session: a student's ``<script>`` there would run as the
  teacher);
- each student's submission in the gradebook. An answer left at ``YOUR ANSWER HERE`` or empty
  scores 0 at once, as ``nbgrader autograde`` would score it; the others wait for the teacher.
  A score already entered stays, unless the student's text changed since (then it is cleared and
  the command says so).

The teacher then runs ``cd build/manual && jupyter lab`` and opens *Nbgrader › Formgrader*
(*Manual Grading*) to read and score each answer. ``make grade`` and ``make regrade`` merge the
scores into the grades CSV (:func:`merged`): ``score`` becomes the automatic score plus the
written answers' points, ``max_score`` includes the written answers' points, and the CSV keeps
the parts (:data:`COLUMNS`) and how many answers still wait for a grade. ``make manual
GRADES=grades.csv`` merges into an existing CSV without grading again.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat

from helpers.env import repo_root
from teacher import late
from teacher.assignments import ASSIGNMENT, NBGRADER, nbgrader_env

__all__ = ["COLUMNS", "STUB", "course_folder", "questions", "written_answers", "view",
           "prepare", "scores", "merged", "merge_csv", "main"]

#: What the grades CSV gets beside ``score`` and ``max_score`` (which then include the written
#: answers): the automatic part, the written part and its worth, and the answers not yet graded.
COLUMNS = ["auto_score", "auto_max", "manual_score", "manual_max", "manual_pending"]
STUB = "YOUR ANSWER HERE"  #: the release's text (nbgrader_config.py: ClearSolutions.text_stub)
MAX_ANSWER_CHARS = 20_000  #: longer answers are cut (and the view says so)
_STUDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$", re.M)
CONFIG = """\
c = get_config()  # noqa: F821
load_subconfig({config!r})  # noqa: F821 (the course's shared settings)
c.CourseDirectory.root = {course!r}
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = {db!r}
# formgrader renders the shown notebooks with nbconvert: sanitize their HTML too (the student's
# text is escaped already; this is a second wall)
c.HTMLExporter.sanitize_html = True
"""


def course_folder(course: str | Path | None = None) -> Path:
    """The formgrader course: `course`, else ``$MANUAL``, else ``build/manual``."""
    return Path(course or os.environ.get("MANUAL") or repo_root() / "build" / "manual").resolve()


def _text(cell: dict) -> str:
    source = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(source, list):
        source = "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def _mark(cell: dict) -> dict:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    meta = meta.get("nbgrader") if isinstance(meta, dict) else None
    return meta if isinstance(meta, dict) else {}


def questions(nb: dict) -> dict[str, dict]:
    """grade_id → ``points``, ``prompt`` (the markdown cell above the answer) and ``model`` (the
    instructor's answer, between the solution markers) of the written answers of the instructor
    notebook `nb` (JSON): markdown cells marked as solution and grade."""
    found: dict[str, dict] = {}
    cells = nb.get("cells", [])
    for i, cell in enumerate(cells):
        meta = _mark(cell)
        if cell.get("cell_type") == "markdown" and meta.get("solution") and meta.get("grade"):
            prompt = _text(cells[i - 1]) if i and cells[i - 1].get("cell_type") == "markdown" \
                else ""
            found[meta["grade_id"]] = dict(points=float(meta.get("points", 0)), prompt=prompt,
                                           model=_MARKER.sub("", _text(cell)).strip(),
                                           meta=dict(meta))
    return found


def written_answers(nb: dict, ids) -> dict[str, str]:
    """grade_id → the student's text in hand-in `nb` (JSON): the first markdown cell marked as a
    solution with that grade_id; an id without one is left out."""
    found: dict[str, str] = {}
    cells = nb.get("cells", []) if isinstance(nb, dict) else []
    for cell in cells if isinstance(cells, list) else []:
        meta = _mark(cell)
        grade_id = meta.get("grade_id")
        if isinstance(cell, dict) and cell.get("cell_type") == "markdown" and \
                meta.get("solution") is True and grade_id in ids and grade_id not in found:
            found[grade_id] = _text(cell)
    return found


def _blank(text: str | None) -> bool:
    return text is None or text.strip() in ("", STUB)


def _escaped(text: str) -> str:
    """`text` as inert HTML: every ``<``, ``&`` and quote escaped, ``$`` too (no MathJax)."""
    return html.escape(text, quote=True).replace("$", "&#36;")


def view(student: str, name: str, asked: dict[str, dict], answers: dict[str, str]):
    """The notebook formgrader shows for one hand-in: per question the prompt, the model answer
    (the instructor's text) and the student's answer in an answer cell carrying the question's
    nbgrader marks, its text escaped."""
    cells = [nbformat.v4.new_markdown_cell(f"# {name} · written answers of {_escaped(student)}")]
    for grade_id, q in asked.items():
        text = answers.get(grade_id)
        if text is None:
            shown = "*(no answer cell with this question's mark was handed in)*"
        elif _blank(text):
            shown = "*(left blank: scored 0)*"
        else:
            cut = len(text) > MAX_ANSWER_CHARS
            shown = (f'<pre style="white-space: pre-wrap">{_escaped(text[:MAX_ANSWER_CHARS])}'
                     "</pre>" + (f"\n\n*(cut at {MAX_ANSWER_CHARS} characters)*" if cut else ""))
        cells.append(nbformat.v4.new_markdown_cell(q["prompt"]))
        cells.append(nbformat.v4.new_markdown_cell(
            "**What a full answer covers** (instructor notebook):\n\n" + q["model"]))
        answer = nbformat.v4.new_markdown_cell(shown)
        answer.metadata["nbgrader"] = dict(q["meta"])
        cells.append(answer)
    return nbformat.v4.new_notebook(cells=cells)


def _source_questions(source: Path) -> dict[str, dict[str, dict]]:
    """notebook → its written answers' questions (only notebooks that have some)."""
    found = {}
    for path in sorted(Path(source).glob("[0-9][0-9]_*.ipynb")):
        asked = questions(json.loads(path.read_text()))
        if asked:
            found[path.stem] = asked
    return found


def _generate(course: Path, asked: dict[str, dict[str, dict]]) -> None:
    """The course's source notebooks (the questions only) and nbgrader's gradebook of them,
    made again when the questions changed."""
    (course / "source" / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(CONFIG.format(
        config=str(repo_root() / "nbgrader_config.py"), course=str(course),
        db=f"sqlite:///{course / 'gradebook.db'}"))
    changed = False
    for name, qs in asked.items():
        nb = view("instructor", name, qs, {g: q["model"] for g, q in qs.items()})
        for cell in nb.cells:  # the source's answer cells hold the model answer within markers
            if cell.metadata.get("nbgrader"):
                model = qs[cell.metadata.nbgrader["grade_id"]]["model"]
                cell.source = f"### BEGIN SOLUTION\n{model}\n### END SOLUTION"
        path = course / "source" / ASSIGNMENT / f"{name}.ipynb"
        text = nbformat.writes(nb)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed = True
    if changed or not (course / "gradebook.db").is_file():
        done = subprocess.run([NBGRADER, "generate_assignment", ASSIGNMENT, "--force",
                               "--log-level=WARN"], cwd=course, env=nbgrader_env(),
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"nbgrader generate_assignment failed in {course}:\n"
                               f"{(done.stdout + done.stderr)[-3000:]}")


def _digest(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()


def prepare(submitted: str | Path, course: str | Path | None = None,
            source: str | Path | None = None) -> dict:
    """Bring the formgrader course up to date with ``submitted/STUDENT/NN_name.ipynb``; return
    counts (``students``, ``answers``, ``blank``, ``pending``) and ``cleared`` (answers whose
    text changed after they were graded) and ``skipped`` (folders and files not read, why)."""
    from nbgrader.api import Gradebook, MissingEntry

    course = course_folder(course)
    asked = _source_questions(Path(source or repo_root() / "source" / ASSIGNMENT))
    if not asked:
        raise ValueError("the instructor notebooks hold no written answer (a markdown cell "
                         "marked solution and grade); see source/README.md")
    _generate(course, asked)
    digests_path = course / "answers.json"
    digests = json.loads(digests_path.read_text()) if digests_path.is_file() else {}
    summary = dict(students=0, answers=0, blank=0, pending=0, cleared=[], skipped=[])
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy on nbgrader's own autoflush (harmless)
        for folder in sorted(p for p in Path(submitted).iterdir() if p.is_dir()):
            student = folder.name
            if not _STUDENT.fullmatch(student):
                summary["skipped"].append(f"{student!r}: not a plain student id; not read")
                continue
            hand_ins = {}
            for name in asked:
                path = folder / f"{name}.ipynb"
                if path.is_symlink() or not path.is_file():
                    continue
                try:
                    hand_ins[name] = json.loads(path.read_text(errors="replace")[:20 << 20])
                except (ValueError, RecursionError):
                    summary["skipped"].append(f"{student}/{name}.ipynb: not JSON; not read")
            if not hand_ins:
                continue
            summary["students"] += 1
            gb.update_or_create_student(student)
            try:
                gb.find_submission(ASSIGNMENT, student)
            except MissingEntry:
                gb.add_submission(ASSIGNMENT, student)
            for sub in ("submitted", "autograded"):
                (course / sub / student / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
            for name in asked.keys() - hand_ins.keys():  # not handed in: nothing to grade
                for grade_id in asked[name]:
                    grade = gb.find_grade(grade_id, name, ASSIGNMENT, student)
                    if grade.manual_score is None:
                        grade.auto_score, grade.needs_manual_grade = 0.0, False
            for name, nb in hand_ins.items():
                answers = written_answers(nb, asked[name])
                nbformat.write(view(student, name, asked[name], answers),
                               course / "autograded" / student / ASSIGNMENT / f"{name}.ipynb")
                for grade_id in asked[name]:
                    text, key = answers.get(grade_id), f"{student}/{name}/{grade_id}"
                    grade = gb.find_grade(grade_id, name, ASSIGNMENT, student)
                    summary["answers"] += 1
                    if _blank(text):
                        grade.auto_score, grade.manual_score = 0.0, None
                        grade.needs_manual_grade = False
                        summary["blank"] += 1
                    else:
                        if digests.get(key) not in (None, _digest(text)) and \
                                grade.manual_score is not None:
                            summary["cleared"].append(key)
                            grade.manual_score = None
                        grade.auto_score = None
                        grade.needs_manual_grade = grade.manual_score is None
                        summary["pending"] += grade.needs_manual_grade
                    digests[key] = _digest(text)
        gb.db.commit()
    digests_path.write_text(json.dumps(digests, indent=1, sort_keys=True))
    return summary


def scores(course: str | Path | None = None) -> dict[tuple[str, str], tuple[float, int]]:
    """(student, notebook) → (points of its written answers, how many still wait for a grade),
    from the formgrader course's gradebook ({} when there is none)."""
    from nbgrader.api import Gradebook

    db = course_folder(course) / "gradebook.db"
    if not db.is_file():
        return {}
    found: dict[tuple[str, str], tuple[float, int]] = {}
    with Gradebook(f"sqlite:///{db}") as gb:
        for sub in gb.assignment_submissions(ASSIGNMENT):
            for nb in sub.notebooks:
                points, waiting = 0.0, 0
                for grade in nb.grades:
                    if grade.manual_score is not None:
                        points += float(grade.manual_score) + float(grade.extra_credit or 0)
                    elif grade.auto_score is not None:
                        points += float(grade.auto_score)
                    else:
                        waiting += 1
                found[(sub.student.id, nb.name)] = (points, waiting)
    return found


def _num(x: float) -> str:
    return f"{round(float(x), 4):.10g}"


def merged(rows: list[dict], config: late.Config | None = None, *,
           course: str | Path | None = None, source: str | Path | None = None) -> list[dict]:
    """The grades CSV's `rows` (:func:`teacher.late.rows`) with the written answers merged:
    ``score`` and ``max_score`` include them, penalty and ``final_score`` follow under
    `config`'s late rule, and the :data:`COLUMNS` give the parts. A row that has ``auto_score``
    already is merged again from it (merging twice changes nothing)."""
    config = config or late.Config()
    asked = _source_questions(Path(source or repo_root() / "source" / ASSIGNMENT))
    worth = {name: sum(q["points"] for q in qs.values()) for name, qs in asked.items()}
    count = {name: len(qs) for name, qs in asked.items()}
    marks = scores(course)
    out = []
    for row in rows:
        row = dict(row)
        auto = float(row.get("auto_score") or row["score"])
        auto_max = float(row.get("auto_max") or row["max_score"])
        name = row["notebook"]
        handed_in = bool(row.get("time_source")) or (row["student"], name) in marks
        points, waiting = marks.get((row["student"], name),
                                    (0.0, count.get(name, 0) if handed_in else 0))
        score, max_score = auto + points, auto_max + worth.get(name, 0.0)
        penalty, final = late.apply(score, max_score, float(row.get("late_days") or 0), config)
        row.update(score=_num(score), max_score=_num(max_score), penalty=_num(penalty),
                   final_score=_num(final), auto_score=_num(auto), auto_max=_num(auto_max),
                   manual_score=_num(points), manual_max=_num(worth.get(name, 0.0)),
                   manual_pending=str(waiting))
        out.append(row)
    return out


def merge_csv(grades: str | Path, *, course: str | Path | None = None,
              config: late.Config | None = None, out: str | Path | None = None) -> list[dict]:
    """Merge the written answers' scores into the grades CSV `grades` (in place unless `out`)."""
    with open(grades, newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    if not {"student", "notebook", "score", "max_score"} <= set(fields):
        raise ValueError(f"{grades}: expected the columns student,notebook,score,max_score "
                         "(from make grade)")
    table = merged(rows, config, course=course)
    with open(out or grades, "w", newline="") as f:
        writer = csv.DictWriter(f, fields + [c for c in COLUMNS + late.COLUMNS
                                             if c not in fields], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submitted", nargs="?", help="folder of STUDENT/NN_name.ipynb hand-ins")
    parser.add_argument("--course", help="the formgrader course (default: $MANUAL or "
                        "build/manual)")
    parser.add_argument("--grades", help="a grades CSV of make grade: merge the scores into it")
    parser.add_argument("--course-toml", default=str(repo_root() / "course.toml"),
                        help="the late rule applied to the merged scores")
    args = parser.parse_args(argv)
    if not args.submitted and not args.grades:
        parser.error("give SUBMITTED (prepare formgrader) and/or --grades CSV (merge)")
    course = course_folder(args.course)
    try:
        if args.submitted:
            s = prepare(args.submitted, course)
            for line in s["skipped"]:
                print(f"skipped {line}")
            for key in s["cleared"]:
                print(f"changed since it was graded, score cleared: {key}")
            print(f"{s['students']} students, {s['answers']} written answers: {s['blank']} "
                  f"blank (0), {s['pending']} to grade → {course}\n"
                  f"Grade them: cd {course} && {Path(sys.executable).parent}/jupyter lab, "
                  "then Nbgrader › Formgrader › Manual Grading")
        if args.grades:
            from teacher.collect import course_notebooks

            rules = Path(args.course_toml)
            config = late.load(rules, course_notebooks()) if rules.is_file() else late.Config()
            table = merge_csv(args.grades, course=course, config=config)
            waiting = sum(int(r["manual_pending"]) for r in table)
            print(f"written answers merged into {args.grades}"
                  + (f"; {waiting} not graded yet (they count 0)" if waiting else ""))
    except (FileNotFoundError, ValueError, late.ConfigError) as exc:
        print(f"make manual: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
