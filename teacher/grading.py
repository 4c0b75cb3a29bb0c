"""Grade hand-ins: `python -m teacher.grading SUBMITTED OUT` (`make grade`).

``SUBMITTED/STUDENT/NN_name.ipynb`` are the students' notebooks. In a throw-away nbgrader course
folder (``build/grade/``) the instructor notebooks of ``source/voc/`` are released again (which
fills nbgrader's sqlite gradebook with the instructor's test cells, hidden tests included).

1. **Truths.** Each instructor notebook runs once in a clean kernel (``jupyter nbconvert
   --execute``, its own process): its hidden tests record what the solutions return on the hidden
   inputs (:mod:`helpers.checks.record`).
2. **Hand-ins.** ``nbgrader autograde`` runs every hand-in (a student's edited test cells are
   replaced by the instructor's, deleted ones are put back, outputs are cleared first): the same
   hidden tests record what the student's code returns.
3. **Verdicts.** This process reads the records of each autograded notebook as JSON and compares
   them with the truths (:mod:`teacher.verdicts`); an answer that reaches into the course's code
   scores 0. The result is written into nbgrader's gradebook through nbgrader's API, replacing
   nbgrader's own cell scores (which the student's kernel can sway: stderr, tracebacks).
4. **Feedback.** nbgrader's HTML feedback per student, without hidden tests or grader records
   (:mod:`teacher.feedback`).

`OUT` gets one CSV row per student and notebook, ``student,notebook,score,max_score``, read from
the gradebook; why a notebook lost points (failed test cells and why, time limits, crashes) goes
to ``messages.csv`` beside the feedback.

Each notebook is graded in its own process: a cell that runs longer than `cell_timeout` is
interrupted by nbgrader and the notebook goes on (the cells that pass still score); a notebook
whose kernel dies, or that still runs after `notebook_timeout` (it is then stopped with its
kernel), is not graded and scores 0. Every case gets a message, and grading goes on.

``SMOKE`` and ``VOC_ROOT`` reach every notebook; each student trains into their own folder under
``WORK_DIR`` (default: the course folder's ``work_dirs/``).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from helpers.env import repo_root
from teacher import feedback as feedback_config
from teacher.assignments import ASSIGNMENT, NBGRADER, nbgrader_env
from teacher.verdicts import Verdict, verdicts

__all__ = ["Result", "grade", "main"]

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
c.Execute.timeout = {cell_timeout}
c.GenerateFeedback.preprocessors = {feedback!r}
"""

#: The pseudo-student whose work folder holds the truth run's training.
TRUTH = "instructor-truth"

# nbgrader's log lines that explain a notebook without full marks, and what to tell the teacher.
LOG_NOTES = {
    "Timeout waiting for execute reply": "a cell ran over the {cell_timeout} s limit and was "
                                         "interrupted",
    "Kernel died": "the kernel died (the code crashed Python or ran out of memory): not graded, "
                   "scored 0",
}


@dataclass
class Result:
    """One student's grade on one notebook, as nbgrader's gradebook has it."""

    student: str
    notebook: str
    score: float
    max_score: float
    message: str = ""
    failed: tuple[str, ...] = ()  #: grade_ids of the test cells that scored below their points


def _env(work_dir: Path) -> dict[str, str]:
    env = nbgrader_env(WORK_DIR=str(work_dir))
    if env.get("VOC_ROOT"):
        env["VOC_ROOT"] = str(Path(env["VOC_ROOT"]).resolve())
    env.pop("COURSE_CHECKS", None)
    return env


def _run(args: list[str], course: Path, env: dict[str, str], timeout: float | None
         ) -> tuple[int | None, str]:
    """Run ``nbgrader ARGS`` in `course`; on timeout kill it and its kernel: (None, log)."""
    import psutil

    cmd = [NBGRADER, *args, "--log-level=WARN"]
    proc = subprocess.Popen(cmd, cwd=course, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
        return proc.returncode, log
    except subprocess.TimeoutExpired:
        family = psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]
        for p in family:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        log, _ = proc.communicate()
        return None, log


def _prepare(course: Path, source: Path, cell_timeout: int) -> list[str]:
    """A fresh course folder with the instructor notebooks released into its gradebook."""
    shutil.rmtree(course, ignore_errors=True)
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    notebooks = sorted(p.stem for p in Path(source).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"No instructor notebooks (NN_name.ipynb) in {source}")
    for name in notebooks:
        shutil.copyfile(Path(source) / f"{name}.ipynb", course / "source" / ASSIGNMENT /
                        f"{name}.ipynb")
    (course / "nbgrader_config.py").write_text(CONFIG.format(
        config=str(repo_root() / "nbgrader_config.py"), course=str(course),
        db=f"sqlite:///{course / 'gradebook.db'}", cell_timeout=int(cell_timeout),
        feedback=feedback_config.PREPROCESSORS))
    code, log = _run(["generate_assignment", ASSIGNMENT, "--force"], course, _env(course), None)
    if code:
        raise RuntimeError(f"nbgrader generate_assignment failed in {course}:\n{log[-3000:]}")
    return notebooks


def _truths(course: Path, notebooks: list[str], env: dict[str, str], cell_timeout: int,
            notebook_timeout: int) -> dict[str, nbformat.NotebookNode]:
    """Run every instructor notebook once in a clean kernel: the records of the solutions."""
    folder = course / "truth" / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    truths = {}
    for name in notebooks:
        src = course / "source" / ASSIGNMENT / f"{name}.ipynb"
        cmd = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
               "--allow-errors", f"--ExecutePreprocessor.timeout={int(cell_timeout)}",
               "--output-dir", str(folder), "--log-level=WARN", str(src)]
        try:
            done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True,
                                  timeout=notebook_timeout)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"the instructor notebook {name} ran over {notebook_timeout} s "
                               "(NOTEBOOK_TIMEOUT): no truths to grade against") from exc
        if done.returncode:
            raise RuntimeError(f"the instructor notebook {name} did not run:\n"
                               f"{(done.stdout + done.stderr)[-2000:]}")
        truths[name] = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    return truths


def _decide(course: Path, student: str, name: str, truth) -> list[Verdict]:
    """Compare the autograded notebook's records with the truth; write the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    path = course / "autograded" / student / ASSIGNMENT / f"{name}.ipynb"
    if not path.exists():
        return []
    decided = verdicts(nbformat.read(path, as_version=4), truth)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for v in decided:
            try:
                grade = gb.find_grade(v.grade_id, name, ASSIGNMENT, student)
            except MissingEntry:
                continue
            grade.auto_score = float(grade.max_score) if v.passed else 0.0
            grade.manual_score = None
        gb.db.commit()
    return decided


def _hand_ins(submitted: Path, notebooks: list[str]) -> dict[str, list[Path]]:
    students = sorted(p for p in Path(submitted).iterdir() if p.is_dir())
    if not students:
        raise FileNotFoundError(f"{submitted}: no student folders; expected "
                                "SUBMITTED/STUDENT/NN_name.ipynb")
    hand_ins = {}
    for folder in students:
        files = sorted(folder.glob("*.ipynb"))
        for path in files:
            if path.stem not in notebooks:
                print(f"{folder.name}: {path.name} is not one of the course notebooks "
                      f"({', '.join(notebooks)}); ignored", file=sys.stderr)
        hand_ins[folder.name] = [p for p in files if p.stem in notebooks]
    return hand_ins


def _messages(code: int | None, log: str, path: Path, cell_timeout: int,
              notebook_timeout: int) -> list[str]:
    notes = [note.format(cell_timeout=cell_timeout) for key, note in LOG_NOTES.items()
             if key in log]
    if code is None:
        notes.append(f"stopped after {notebook_timeout} s (NOTEBOOK_TIMEOUT): not graded, "
                     "scored 0")
    elif code and not notes:
        errors = [line for line in log.splitlines() if "ERROR" in line]
        notes.append("nbgrader could not grade it: " + (errors[0] if errors else log[-300:]))
    try:
        nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 (any unreadable file is the student's problem)
        notes.append(f"not a readable notebook ({type(exc).__name__}); scored 0")
    return notes


def _scores(course: Path, student: str, notebook: str) -> tuple[float, float, tuple[str, ...]]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        try:
            sub = gb.find_submission_notebook(notebook, ASSIGNMENT, student)
        except MissingEntry:
            return 0.0, float(gb.find_notebook(notebook, ASSIGNMENT).max_score), ()
        failed = tuple(g.name for g in sub.grades if (g.score or 0) < g.max_score)
        return float(sub.score), float(sub.max_score), failed


def grade(submitted: str | Path, out: str | Path, *, source: str | Path | None = None,
          course: str | Path | None = None, feedback: str | Path | None = None,
          cell_timeout: int = 600, notebook_timeout: int = 3600) -> list[Result]:
    """Autograde ``submitted/STUDENT/NN_name.ipynb``; write `out` (CSV) and HTML feedback.

    Every notebook that at least one student handed in is graded for every student (a missing
    hand-in scores 0). `feedback` defaults to ``feedback/`` beside `out`.
    """
    root = repo_root()
    source = Path(source or root / "source" / ASSIGNMENT)
    course = Path(course or root / "build" / "grade").resolve()
    out = Path(out)
    feedback = Path(feedback or out.parent / "feedback")
    work_root = Path(os.environ.get("WORK_DIR") or course / "work_dirs").resolve()
    notebooks = _prepare(course, source, cell_timeout)
    hand_ins = _hand_ins(Path(submitted), notebooks)
    graded = sorted({p.stem for paths in hand_ins.values() for p in paths})
    truths = _truths(course, graded, _env(work_root / TRUTH), cell_timeout, notebook_timeout)
    results = []
    for student, paths in hand_ins.items():
        target = course / "submitted" / student / ASSIGNMENT
        target.mkdir(parents=True)
        for path in paths:
            shutil.copyfile(path, target / path.name)
        env = _env(work_root / student)
        for name in graded:
            path = target / f"{name}.ipynb"
            notes = ["not handed in"] if not path.exists() else []
            why: dict[str, str] = {}
            if path.exists():
                code, log = _run(["autograde", ASSIGNMENT, f"--student={student}",
                                  f"--notebook={name}", "--force"], course, env, notebook_timeout)
                notes = _messages(code, log, path, cell_timeout, notebook_timeout)
                why = {v.grade_id: v.message for v in _decide(course, student, name,
                                                              truths[name])}
            score, max_score, failed = _scores(course, student, name)
            failed = failed if path.exists() else ()
            if failed:
                notes.insert(0, "failed: " + ", ".join(
                    f"{g} ({why[g]})" if why.get(g) else g for g in failed))
            results.append(Result(student, name, score, max_score, "; ".join(notes), failed))
            print(f"{student:>12} {name:<28} {score:g}/{max_score:g}  {results[-1].message}")
        if paths:
            code, log = _run(["generate_feedback", ASSIGNMENT, f"--student={student}", "--force"],
                             course, env, notebook_timeout)
            for html in sorted((course / "feedback" / student / ASSIGNMENT).glob("*.html")):
                (feedback / student).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(html, feedback / student / html.name)
            if code:
                print(f"{student}: nbgrader generate_feedback failed:\n{log[-1000:]}",
                      file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "notebook", "score", "max_score"])
        writer.writerows([r.student, r.notebook, f"{r.score:g}", f"{r.max_score:g}"]
                         for r in results)
    feedback.mkdir(parents=True, exist_ok=True)
    with (feedback / "messages.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["student", "notebook", "message"]] + [
            [r.student, r.notebook, r.message] for r in results if r.message])
    print(f"{len(results)} grades → {out}; feedback → {feedback}/STUDENT/NN_name.html, "
          f"messages → {feedback / 'messages.csv'}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submitted", help="folder of STUDENT/NN_name.ipynb hand-ins")
    parser.add_argument("out", help="CSV to write: student,notebook,score,max_score")
    parser.add_argument("--feedback", help="folder for the HTML feedback (default: beside OUT)")
    parser.add_argument("--source", help="instructor notebooks (default: source/voc)")
    parser.add_argument("--course", help="throw-away nbgrader course folder (build/grade)")
    parser.add_argument("--cell-timeout", type=int, default=600)
    parser.add_argument("--notebook-timeout", type=int, default=3600)
    args = parser.parse_args(argv)
    grade(args.submitted, args.out, source=args.source, course=args.course,
          feedback=args.feedback, cell_timeout=args.cell_timeout,
          notebook_timeout=args.notebook_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
