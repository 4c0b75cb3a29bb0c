"""Grade hand-ins: `python -m teacher.grading SUBMITTED OUT` (`make grade`).

``SUBMITTED/STUDENT/NN_name.ipynb`` are the students' notebooks.

1. **Course.** In a throw-away nbgrader course folder (``build/grade/``) the instructor notebooks
   of ``source/voc/`` are released again: nbgrader's sqlite gradebook then holds the instructor's
   test cells, hidden tests included. The points of each test cell are read from the sources.
2. **Truths.** Each instructor notebook runs once in a clean kernel (``jupyter nbconvert
   --execute``): its hidden tests record what the solutions return on the hidden inputs
   (:mod:`helpers.checks.record`).
3. **Hand-ins.** Each student is graded in a course folder of their own, a copy of the course
   (their own gradebook, their own ``WORK_DIR`` folder): ``nbgrader autograde`` runs each of their
   notebooks (edited test cells replaced by the instructor's, deleted ones put back, outputs
   cleared first), and the kernel that executes it runs inside a sandbox (:mod:`teacher.kernel`,
   :mod:`teacher.sandbox`: no network; only the student-facing course code, the environment,
   the dataset and the student's own folders; never the gradebook, the instructor notebooks,
   the truths or another hand-in; limits on memory, processes, CPU and time). The same hidden
   tests record what the student's code returns.
4. **Verdicts.** Outside the sandbox, the grader reads each test cell's records as JSON and
   compares them with the truths (:mod:`teacher.verdicts`); an answer that reaches into the
   course's code scores 0. nbgrader's own cell scores (which the student's kernel can sway) are
   never read.
5. **Feedback.** nbgrader's HTML feedback, from a fresh copy of the student's gradebook that holds
   only the verdicts, without hidden tests or records (:mod:`teacher.feedback`).
6. **Merge.** One process, this one, writes every student's scores into the class gradebook
   (``build/grade/gradebook.db``: sqlite is never written by two processes), the CSV `OUT`
   (``student,notebook,score,max_score``) and ``messages.csv`` beside the feedback (why a
   notebook lost points: failed test cells and why, time and memory limits, crashes).

`jobs` students are graded at a time (``make grade JOBS=N``; default: one per core, and no more
than fit in the available memory at ``MEM_LIMIT`` each), each kernel's thread pools sized to its
share of the cores. With `scheduler` (``SCHEDULER=tcp://HOST:PORT``) students go to the workers
of a running Dask cluster instead: each worker grades in the same sandbox and sends back data
(scores, messages, feedback HTML); the log names the worker of each student.

A cell that runs longer than `cell_timeout` is interrupted by nbgrader and the notebook goes on;
a notebook still running after `notebook_timeout`, or that hits a sandbox limit, is stopped and
keeps the points of what it recorded (0 when its kernel died). ``SMOKE`` and ``VOC_ROOT`` reach
every notebook.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from helpers.demo_data import ensure_dataset
from helpers.env import repo_root
from teacher import feedback as feedback_config
from teacher import sandbox
from teacher.assignments import ASSIGNMENT, NBGRADER, nbgrader_env
from teacher.release import FILES as SHIPPED
from teacher.verdicts import verdicts

__all__ = ["Result", "default_jobs", "grade", "main", "LAST_RUN"]

#: Where the last `grade` call spent its time (seconds): the course and the truths, the hand-ins,
#: the merge; read by benchmarks/bench_grade.py.
LAST_RUN: dict[str, float] = {}

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

#: nbgrader's executor starts the student's kernel in the sandbox (see teacher.kernel).
SANDBOXED_KERNEL = """\
c.Execute.kernel_manager_class = "teacher.kernel.SandboxedKernelManager"
c.KernelManager.transport = "ipc"
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

#: What a kernel inside the sandbox may see of the grader's environment (nothing else passes).
PASSED_ENV = ("SMOKE", "VOC_ROOT", "MPLBACKEND", "PYTHONHASHSEED", "LANG", "LC_ALL", "TZ")


@dataclass
class Result:
    """One student's grade on one notebook."""

    student: str
    notebook: str
    score: float
    max_score: float
    message: str = ""
    failed: tuple[str, ...] = ()  #: grade_ids of the test cells that scored below their points
    worker: str = ""  #: the machine and process that graded it
    seconds: float = 0.0  #: how long nbgrader took on it
    peak_memory: int = 0  #: the most memory its sandboxed kernel held (bytes; 0 unsandboxed)


@dataclass
class _Settings:
    """What every grading of one run shares (sent to Dask workers as data)."""

    sources: dict[str, str]  #: notebook name → instructor notebook (JSON text)
    truths: dict[str, str]  #: notebook name → executed instructor notebook (JSON text)
    points: dict[str, dict[str, float]]  #: notebook → test grade_id → points
    config: str  #: the repository's nbgrader_config.py (text)
    voc_root: str
    work_root: str
    cell_timeout: int
    notebook_timeout: int
    use_sandbox: bool
    threads: int


def default_jobs(limits: sandbox.Limits | None = None) -> int:
    """One hand-in per core, and no more than fit in the available memory at MEM_LIMIT each."""
    import psutil

    limits = limits or sandbox.Limits.from_env()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    by_memory = psutil.virtual_memory().available // max(limits.memory, 1)
    return max(1, min(cores or 1, int(by_memory)))


def _points(source: str) -> dict[str, float]:
    nb = nbformat.reads(source, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


def _write_config(course: Path, config: Path, cell_timeout: int, sandboxed: bool = False
                  ) -> None:
    (course / "nbgrader_config.py").write_text(CONFIG.format(
        config=str(config), course=str(course), db=f"sqlite:///{course / 'gradebook.db'}",
        cell_timeout=int(cell_timeout), feedback=feedback_config.PREPROCESSORS)
        + (SANDBOXED_KERNEL if sandboxed else ""))


def _tree_run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float | None
              ) -> tuple[int | None, str]:
    """Run `argv`; past `timeout` kill it and every process it started: (None, log)."""
    import psutil

    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
        return proc.returncode, log
    except subprocess.TimeoutExpired:
        for p in psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        log, _ = proc.communicate()
        return None, log


def _nbgrader(args: list[str], course: Path, env: dict[str, str], timeout: float | None
              ) -> tuple[int | None, str]:
    """Run ``nbgrader ARGS`` in `course` with the grader's rights (the kernel it starts for a
    hand-in is the sandboxed one: see SANDBOXED_KERNEL)."""
    return _tree_run([NBGRADER, *args, "--log-level=WARN"], course, env, timeout)


_TEMPLATE_LOCK = threading.Lock()


def _template(settings: _Settings, folder: Path) -> Path:
    """A course folder with the instructor notebooks released into its gradebook (made once per
    process and settings: every student's folder is a copy)."""
    with _TEMPLATE_LOCK:
        return _make_template(settings, folder)


def _make_template(settings: _Settings, folder: Path) -> Path:
    key = hashlib.sha256("".join(settings.sources.values()).encode()).hexdigest()[:16]
    course = folder / f"template-{key}"
    if (course / ".ready").exists():
        return course
    shutil.rmtree(course, ignore_errors=True)
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    for name, text in settings.sources.items():
        (course / "source" / ASSIGNMENT / f"{name}.ipynb").write_text(text)
    (course / "course_config.py").write_text(settings.config)
    _write_config(course, course / "course_config.py", settings.cell_timeout)
    code, log = _nbgrader(["generate_assignment", ASSIGNMENT, "--force"], course,
                          nbgrader_env(), None)
    if code:
        raise RuntimeError(f"nbgrader generate_assignment failed in {course}:\n{log[-3000:]}")
    (course / ".ready").touch()
    return course


def _kernel_env(settings: _Settings, home: Path, work_dir: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    bindir = str(Path(sys.executable).parent)
    threads = str(settings.threads)
    env.update(PATH=f"{bindir}:/usr/local/bin:/usr/bin:/bin", HOME=str(home),
               VOC_ROOT=settings.voc_root, WORK_DIR=str(work_dir), MPLBACKEND="Agg",
               OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
               OPENBLAS_NUM_THREADS=threads, PYTHONHASHSEED="0")
    return env


def _views(settings: _Settings, course: Path, work_dir: Path, home: Path
           ) -> tuple[list[str], list[str], dict[str, str]]:
    """What a sandbox sees: read-only (what the student repository ships: ``helpers/``, the
    benchmark runs notebook 05 reads, ...; and the dataset), writable (the hand-in's WORK_DIR
    folder and HOME) and mapped (a scratch folder where the course saves figures)."""
    root = repo_root()
    scratch = course / "figures"
    scratch.mkdir(exist_ok=True)
    shipped = [str(root / name) for name in SHIPPED if (root / name).exists()]
    return ([*shipped, settings.voc_root], [str(work_dir), str(home)],
            {str(scratch): str(root / "build" / "images")})


def _truth_run(argv: list[str], *, folder: Path, work_dir: Path, home: Path,
               settings: _Settings) -> tuple[int | None, str, str]:
    """Run the instructor notebook's executor, in the sandbox when it is on."""
    env = _kernel_env(settings, home, work_dir)
    if not settings.use_sandbox:
        return (*_tree_run(argv, folder, env, settings.notebook_timeout), "")
    read_only, writable, mapped = _views(settings, folder, work_dir, home)
    result = sandbox.run(argv, read_only=read_only, writable=[*writable, str(folder)],
                         mapped=mapped, env=env, cwd=folder, limits=sandbox.Limits.from_env(),
                         timeout=settings.notebook_timeout)
    if result.limit_hit == "wall":
        return None, result.output, ""
    return result.returncode, result.output, result.message or ""


def _autograde(student: str, name: str, *, course: Path, work_dir: Path, home: Path,
               settings: _Settings) -> tuple[int | None, str, str, int]:
    """``nbgrader autograde`` of one notebook; its kernel in the sandbox when it is on.
    (exit code or None after NOTEBOOK_TIMEOUT, log, the sandbox's limit message, the kernel's
    peak memory in bytes)."""
    env = _kernel_env(settings, home, work_dir)
    report = course / "reports" / f"{name}.json"
    report.parent.mkdir(exist_ok=True)
    report.unlink(missing_ok=True)
    if settings.use_sandbox:
        from teacher.kernel import ENV
        from teacher.kernel import settings as kernel_settings

        read_only, writable, mapped = _views(settings, course, work_dir, home)
        # A Unix socket's path holds at most 107 bytes: the sockets live in a short folder.
        ipc = Path(tempfile.mkdtemp(prefix="voc-ipc-"))
        limits = sandbox.Limits.from_env()
        env.update({ENV: kernel_settings(
            read_only=read_only, writable=[*writable, str(ipc)], mapped=mapped,
            report=str(report), limits=dict(
                memory=limits.memory, processes=limits.processes,
                cpu_seconds=limits.cpu_seconds, wall_seconds=settings.notebook_timeout))},
                   JUPYTER_RUNTIME_DIR=str(ipc))
    try:
        code, log = _nbgrader(["autograde", ASSIGNMENT, f"--student={student}",
                               f"--notebook={name}", "--force"], course, env,
                              settings.notebook_timeout)
    finally:
        if settings.use_sandbox:
            shutil.rmtree(ipc, ignore_errors=True)
    limit, peak = "", 0
    if report.is_file():
        ended = json.loads(report.read_text())
        peak = int(ended.get("peak_rss") or 0)
        if ended.get("limit_hit") and ended["limit_hit"] != "wall":
            limit = ended.get("message") or ""
        elif ended.get("limit_hit") == "wall":
            code = None
    return code, log, limit, peak


def _messages(code: int | None, log: str, limit: str, text: str, settings: _Settings
              ) -> list[str]:
    notes = [note.format(cell_timeout=settings.cell_timeout) for key, note in LOG_NOTES.items()
             if key in log]
    if limit:
        notes.append(limit + "; scored what it recorded before")
    elif code is None:
        notes.append(f"stopped after {settings.notebook_timeout} s (NOTEBOOK_TIMEOUT): scored "
                     "what it recorded before")
    elif code and not notes:
        errors = [line for line in log.splitlines() if "ERROR" in line]
        notes.append("nbgrader could not grade it: " + (errors[0] if errors else log[-300:]))
    try:
        nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 (any unreadable file is the student's problem)
        notes.append(f"not a readable notebook ({type(exc).__name__}); scored 0")
    return notes


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """nbgrader's add_submission makes SQLAlchemy warn about its own autoflush (harmless)."""
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        yield


def _record_scores(db: Path, graded: list[dict]) -> None:
    """Write the verdicts of `graded` (one dict per student: ``student``, ``scores``) into the
    gradebook `db`, as nbgrader's auto scores, creating each student's submission."""
    from nbgrader.api import Gradebook, MissingEntry

    with _quiet(), Gradebook(f"sqlite:///{db}") as gb:
        for one in graded:
            student = one["student"]
            gb.update_or_create_student(student)
            try:
                gb.find_submission(ASSIGNMENT, student)
            except MissingEntry:
                gb.add_submission(ASSIGNMENT, student)
            for name, earned in one["scores"].items():
                for grade_id, value in earned.items():
                    grade = gb.find_grade(grade_id, name, ASSIGNMENT, student)
                    grade.auto_score, grade.manual_score = value, None
        gb.db.commit()


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def _grade_student(student: str, hand_ins: dict[str, str], settings: _Settings,
                   scratch: str | None = None) -> dict:
    """Grade one student's notebooks (name → JSON text) in a course folder of their own.

    Returns plain data: ``results`` (one dict per notebook), ``scores`` (notebook → test
    grade_id → points earned), ``feedback`` (notebook → HTML, base64) and ``graded`` (notebook →
    the notebook as nbgrader ran it, JSON text).
    """
    # A Dask worker grades in a folder of its own process: workers on one machine share /tmp.
    base = Path(scratch) / "voc-grading" if scratch else \
        Path(tempfile.gettempdir()) / f"voc-grading-{os.getpid()}"
    base.mkdir(parents=True, exist_ok=True)
    template = _template(settings, base)
    course = base / "students" / student
    shutil.rmtree(course, ignore_errors=True)
    shutil.copytree(template, course)
    _write_config(course, course / "course_config.py", settings.cell_timeout,
                  sandboxed=settings.use_sandbox)
    shutil.copyfile(course / "gradebook.db", course / "clean.db")
    target = course / "submitted" / student / ASSIGNMENT
    target.mkdir(parents=True)
    home = course / "home"
    home.mkdir()
    work_dir = Path(settings.work_root) / student
    work_dir.mkdir(parents=True, exist_ok=True)
    results, scores, kept = [], {}, {}
    for name, points in settings.points.items():
        if name not in hand_ins:
            results.append(dict(notebook=name, score=0.0, max_score=sum(points.values()),
                                message="not handed in", failed=[]))
            continue
        (target / f"{name}.ipynb").write_text(hand_ins[name])
        began = time.monotonic()
        code, log, limit, peak = _autograde(student, name, course=course, work_dir=work_dir,
                                            home=home, settings=settings)
        took = time.monotonic() - began
        notes = _messages(code, log, limit, hand_ins[name], settings)
        graded = course / "autograded" / student / ASSIGNMENT / f"{name}.ipynb"
        decided = []
        if graded.is_file() and not graded.is_symlink():
            kept[name] = graded.read_text(errors="replace")
            try:
                decided = verdicts(nbformat.read(graded, as_version=4),
                                   nbformat.reads(settings.truths[name], as_version=4))
            except (ValueError, KeyError, AttributeError, nbformat.ValidationError):
                notes.append("its graded notebook could not be read; scored 0")
        passed = {v.grade_id for v in decided if v.passed}
        why = {v.grade_id: v.message for v in decided if not v.passed}
        scores[name] = {g: (p if g in passed else 0.0) for g, p in points.items()}
        failed = [g for g in points if g not in passed]
        if failed:
            notes.insert(0, "failed: " + ", ".join(f"{g} ({why[g]})" if why.get(g) else g
                                                    for g in failed))
        results.append(dict(notebook=name, score=sum(scores[name].values()),
                            max_score=sum(points.values()), message="; ".join(notes),
                            failed=failed, seconds=took, peak_memory=peak))
    # Feedback from a gradebook that holds nothing but the verdicts.
    shutil.move(course / "clean.db", course / "gradebook.db")
    _record_scores(course / "gradebook.db", [dict(student=student, scores=scores)])
    html = {}
    if scores:
        code, log = _nbgrader(["generate_feedback", ASSIGNMENT, f"--student={student}",
                               "--force"], course, nbgrader_env(), settings.notebook_timeout)
        for page in sorted((course / "feedback" / student / ASSIGNMENT).glob("*.html")):
            html[page.stem] = base64.b64encode(page.read_bytes()).decode()
        if code:
            print(f"{student}: nbgrader generate_feedback failed:\n{log[-1000:]}",
                  file=sys.stderr)
    shutil.rmtree(course, ignore_errors=True)
    return dict(student=student, results=results, scores=scores, feedback=html, graded=kept,
                worker=_worker())


def _truth(name: str, settings: _Settings, scratch: Path) -> str:
    """The instructor notebook `name` executed in a clean kernel (in the sandbox when on)."""
    folder = scratch / "truth" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / f"{name}.ipynb").write_text(settings.sources[name])
    (folder / "home").mkdir()
    work_dir = Path(settings.work_root) / TRUTH
    work_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--allow-errors",
            f"--ExecutePreprocessor.timeout={settings.cell_timeout}", "--output", "executed",
            "--log-level=WARN", f"{name}.ipynb"]
    code, log, limit = _truth_run(argv, folder=folder, work_dir=work_dir, home=folder / "home",
                                  settings=settings)
    if code or limit or not (folder / "executed.ipynb").is_file():
        raise RuntimeError(f"the instructor notebook {name} did not run ({limit or code}): no "
                           f"truths to grade against\n{log[-2000:]}")
    return (folder / "executed.ipynb").read_text()


def _hand_ins(submitted: Path, notebooks: list[str]) -> dict[str, dict[str, str]]:
    students = sorted(p for p in Path(submitted).iterdir() if p.is_dir())
    if not students:
        raise FileNotFoundError(f"{submitted}: no student folders; expected "
                                "SUBMITTED/STUDENT/NN_name.ipynb")
    hand_ins = {}
    for folder in students:
        hand_ins[folder.name] = {}
        for path in sorted(folder.glob("*.ipynb")):
            if path.stem not in notebooks:
                print(f"{folder.name}: {path.name} is not one of the course notebooks "
                      f"({', '.join(notebooks)}); ignored", file=sys.stderr)
            else:
                hand_ins[folder.name][path.stem] = path.read_text(errors="replace")
    return hand_ins


def _merge(course: Path, graded: list[dict]) -> None:
    """Write every student's scores into the class gradebook (this process only), and their
    graded notebooks where nbgrader keeps them (``autograded/STUDENT/voc/``)."""
    for one in graded:
        folder = course / "autograded" / one["student"] / ASSIGNMENT
        for name, text in one.get("graded", {}).items():
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.ipynb").write_text(text)
    _record_scores(course / "gradebook.db", graded)


def _map(settings: _Settings, work: dict[str, dict[str, str]], jobs: int,
         scheduler: str | None, scratch: Path, report: Callable[[dict], None]) -> list[dict]:
    if scheduler:
        from distributed import Client, as_completed

        with Client(scheduler) as client:
            remote = client.scatter(settings, broadcast=True)
            futures = [client.submit(_grade_student, student, notebooks, remote, None,
                                     key=f"grade-{student}", pure=False)
                       for student, notebooks in work.items()]
            done = []
            for future in as_completed(futures):
                done.append(future.result())
                report(done[-1])
            return done
    done = []
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="job") as pool:
        futures = [pool.submit(_grade_student, student, notebooks, settings, str(scratch))
                   for student, notebooks in work.items()]
        for future in futures:
            done.append(future.result())
            report(done[-1])
    return done


def grade(submitted: str | Path, out: str | Path, *, source: str | Path | None = None,
          course: str | Path | None = None, feedback: str | Path | None = None,
          cell_timeout: int = 600, notebook_timeout: int = 3600, jobs: int | None = None,
          use_sandbox: bool | None = None, scheduler: str | None = None) -> list[Result]:
    """Grade ``submitted/STUDENT/NN_name.ipynb``; write `out` (CSV) and HTML feedback.

    Every notebook that at least one student handed in is graded for every student (a missing
    hand-in scores 0). `feedback` defaults to ``feedback/`` beside `out`. `use_sandbox` defaults
    to on unless ``UNSAFE_NO_SANDBOX=1``; when on and no sandbox can start here, RuntimeError
    says why. `jobs` defaults to :func:`default_jobs`.
    """
    root, began = repo_root(), time.monotonic()
    if use_sandbox is None:
        use_sandbox = os.environ.get("UNSAFE_NO_SANDBOX") != "1"
    if use_sandbox and (reason := sandbox.unavailable()):
        raise RuntimeError(reason)
    source = Path(source or root / "source" / ASSIGNMENT)
    course = Path(course or root / "build" / "grade").resolve()
    out = Path(out)
    feedback = Path(feedback or out.parent / "feedback")
    work_root = Path(os.environ.get("WORK_DIR") or course / "work_dirs").resolve()
    jobs = jobs or default_jobs()
    names = sorted(p.stem for p in Path(source).glob("[0-9][0-9]_*.ipynb"))
    if not names:
        raise FileNotFoundError(f"No instructor notebooks (NN_name.ipynb) in {source}")
    hand_ins = _hand_ins(Path(submitted), names)
    graded = sorted({n for notebooks in hand_ins.values() for n in notebooks})
    shutil.rmtree(course, ignore_errors=True)
    course.mkdir(parents=True)
    texts = {n: (Path(source) / f"{n}.ipynb").read_text() for n in graded}
    voc_root = os.environ.get("VOC_ROOT", str(root / "data" / "VOCdevkit" / "VOC2012"))
    ensure_dataset(voc_root)  # as the notebooks would: a sandbox sees the dataset read-only
    settings = _Settings(
        sources=texts, truths={}, points={n: _points(t) for n, t in texts.items()},
        config=(root / "nbgrader_config.py").read_text(),
        voc_root=str(Path(voc_root).resolve()), work_root=str(work_root),
        cell_timeout=int(cell_timeout), notebook_timeout=int(notebook_timeout),
        use_sandbox=use_sandbox, threads=max(1, (os.cpu_count() or 1) // jobs))
    template = _template(settings, course)  # the class gradebook
    for name in ("gradebook.db", "source", "release", "nbgrader_config.py", "course_config.py"):
        shutil.move(template / name, course / name)
    _write_config(course, course / "course_config.py", cell_timeout)
    shutil.rmtree(template)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="truth") as pool:
        settings.truths = dict(zip(graded, pool.map(
            lambda n: _truth(n, settings, course), graded), strict=True))
    LAST_RUN.clear()
    LAST_RUN.update(jobs=jobs, truths=time.monotonic() - began)

    results: list[Result] = []

    def report(one: dict) -> None:
        for r in one["results"]:
            results.append(Result(one["student"], r["notebook"], r["score"], r["max_score"],
                                  r["message"], tuple(r["failed"]), one["worker"],
                                  r.get("seconds", 0.0), r.get("peak_memory", 0)))
            print(f"{one['student']:>12} {r['notebook']:<24} {r['score']:g}/{r['max_score']:g}"
                  f"  [{one['worker']}]  {r['message']}", flush=True)
        for name, page in one["feedback"].items():
            (feedback / one["student"]).mkdir(parents=True, exist_ok=True)
            (feedback / one["student"] / f"{name}.html").write_bytes(base64.b64decode(page))

    began = time.monotonic()
    done = _map(settings, {s: {n: t for n, t in nbs.items() if n in graded}
                           for s, nbs in hand_ins.items()}, jobs, scheduler, course, report)
    LAST_RUN.update(hand_ins=time.monotonic() - began)
    _merge(course, done)
    results.sort(key=lambda r: (r.student, r.notebook))
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
    print(f"course and truths {LAST_RUN['truths']:.0f} s, {len(results)} hand-ins "
          f"{LAST_RUN['hand_ins']:.0f} s ({jobs} at a time)")
    print(f"{len(results)} grades → {out}; feedback → {feedback}/STUDENT/NN_name.html, "
          f"messages → {feedback / 'messages.csv'}; class gradebook → {course / 'gradebook.db'}")
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
    parser.add_argument("--jobs", type=int, default=0,
                        help="hand-ins graded at once (default: one per core, within memory)")
    parser.add_argument("--scheduler", default="",
                        help="a Dask scheduler (tcp://HOST:PORT) to grade on instead")
    args = parser.parse_args(argv)
    try:
        grade(args.submitted, args.out, source=args.source, course=args.course,
              feedback=args.feedback, cell_timeout=args.cell_timeout,
              notebook_timeout=args.notebook_timeout, jobs=args.jobs or None,
              scheduler=args.scheduler or None)
    except RuntimeError as exc:
        if sandbox.OPT_OUT in str(exc):
            print(f"make grade: {exc}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
