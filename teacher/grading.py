"""Grade hand-ins: `python -m teacher.grading SUBMITTED OUT` (`make grade`).

``SUBMITTED/STUDENT/NN_name.ipynb`` are the students' notebooks. Only their *answer cells* count
(the code cells marked as solutions, found by their grade_id): nothing else a student wrote or
kept, no output, no other cell, no file, is read, let alone run, outside a sandbox.

1. **Course.** The class gradebook (``build/grade/gradebook.db``) gets the assignment from
   nbgrader's ``generate_assignment`` of ``source/voc/``; nbgrader never executes a hand-in.
2. **Fixtures.** What a task needs that takes a run to make (notebook 03's trained run, 05's
   exported graph) is made once, by the grader, with a fixed seed (``fixtures()`` of the task
   modules, :mod:`teacher.tasks`), and shared read-only.
3. **Truths.** The harness (teacher/kit/harness.py) runs the instructor's solutions, task by task,
   in the sandbox, on the grading servers of step 4 (which then go on to the hand-ins): each
   probe's payload per case kind is a truth.
4. **Hand-ins.** Per JOBS slot or Dask worker thread, one sandbox (:mod:`teacher.sandbox`: no
   network, a fresh HOME and scratch folder, only the Python environment, the dataset, the
   fixtures and the harness; never the course's package, the gradebook, the sources or the
   truths) runs the harness as a server (:func:`teacher.tasks.server`): it imports the libraries
   once, then grades one hand-in after another, each in a process forked before its job is read,
   which forks a child per task that builds the task's givens, runs the hand-in's answer cell and
   the hidden probe; what a hand-in leaves (processes, files) is gone before the next. What
   comes back is capped JSON.
5. **Verdicts.** In this process each case kind's payload is compared with the truth
   (:mod:`teacher.verdicts`): points per case kind, one line per task.
6. **Feedback and merge.** HTML feedback per hand-in from the verdicts only
   (:mod:`teacher.feedback`); this process alone writes the class gradebook, the CSV `OUT`
   (``student,notebook,score,max_score`` and lateness: :mod:`teacher.late`), ``messages.csv`` and
   ``verdicts.json`` (every task's points and message) beside the feedback.

A failure is its hand-in's own: a notebook that cannot be read, a task that raises, runs past its
time or floods its output, a sandbox that hits a limit, scores that hand-in or task 0 with a
one-line message, and the class run always ends with its CSV, gradebook and feedback.

`jobs` hand-ins are graded at a time (``make grade JOBS=N``; default: one per core, within memory
at ``MEM_LIMIT`` each). With `scheduler` (``SCHEDULER=tcp://HOST:PORT``) students go to the
workers of a running Dask cluster instead (the workers need this repository's environment and
the course folder at the same path, as on one machine or a shared file system).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import hashlib
import inspect
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from helpers.demo_data import ensure_dataset
from helpers.env import repo_root
from teacher import feedback as feedback_page
from teacher import late, manual, sandbox, tasks
from teacher.assignments import ASSIGNMENT, NBGRADER, nbgrader_env
from teacher.verdicts import Verdict, blank, check_truths, verdicts

__all__ = ["Result", "default_jobs", "grade", "main", "LAST_RUN", "MAX_NOTEBOOK_BYTES"]

#: Where the last `grade` call spent its time (seconds): fixtures and truths, the hand-ins, the
#: merge; read by benchmarks/bench_grade.py.
LAST_RUN: dict[str, float] = {}

#: A hand-in larger than this is not read (scored 0): answer cells are a few kB.
MAX_NOTEBOOK_BYTES = 20 << 20

CONFIG = """\
c = get_config()  # noqa: F821
load_subconfig({config!r})  # noqa: F821 (the course's shared settings)
c.CourseDirectory.root = {course!r}
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.db_url = {db!r}
"""


@dataclass
class Result:
    """One student's grade on one notebook."""

    student: str
    notebook: str
    score: float
    max_score: float
    message: str = ""
    failed: tuple[str, ...] = ()  #: answer grade_ids of the tasks below full marks
    worker: str = ""  #: the machine and process that graded it
    seconds: float = 0.0  #: how long its sandbox took
    peak_memory: int = 0  #: the most memory its sandbox held (bytes; 0 unsandboxed)
    tasks: dict = field(default_factory=dict)  #: task → [points, max points, message]


@dataclass
class _Settings:
    """What every grading of one run shares (sent to Dask workers as data)."""

    notebooks: list[str]
    truths: dict[str, dict]  #: notebook → the harness's results on the solutions
    fixtures: dict[str, str]  #: notebook → its fixtures folder
    voc_root: str
    task_timeout: int
    notebook_timeout: int
    use_sandbox: bool
    threads: int
    only_tasks: list[str] | None = None  #: regrade these tasks only (None: every task)


def default_jobs(limits: sandbox.Limits | None = None) -> int:
    """One hand-in per core, and no more than fit in the available memory at MEM_LIMIT each."""
    import psutil

    limits = limits or sandbox.Limits.from_env()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    by_memory = psutil.virtual_memory().available // max(limits.memory, 1)
    return max(1, min(cores or 1, int(by_memory)))



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


_LOCAL = threading.local()
_SERVERS: list = []
_SERVERS_LOCK = threading.Lock()


def _server(settings: _Settings, base: Path):
    """This thread's grading server (:func:`teacher.tasks.server`) for `settings`: started at
    the thread's first job (the solutions' truths, then the hand-ins on the same threads), it
    grades every later one, so the sandbox starts and the libraries are imported once per JOBS
    slot or Dask worker thread and grading run, not once per hand-in."""
    graded = sorted(settings.fixtures)
    key = (tuple(graded), settings.voc_root, tuple(sorted(settings.fixtures.items())),
           settings.use_sandbox, settings.threads)
    current = getattr(_LOCAL, "server", None)
    if current is not None and current[0] == key:
        return current[1]
    if current is not None:
        current[1].close()
    session = tasks.server(graded, folder=base / f"server-{threading.get_ident()}",
                           voc_root=settings.voc_root,
                           fixtures=[settings.fixtures[n] for n in graded],
                           use_sandbox=settings.use_sandbox, limits=sandbox.Limits.from_env(),
                           threads=settings.threads)
    _LOCAL.server = (key, session)
    with _SERVERS_LOCK:
        _SERVERS.append(session)
    return session


def close_servers() -> None:
    """Stop every grading server this process started (a Dask worker's end on its own: a
    server left idle for teacher/kit/harness.py's IDLE_SECONDS ends itself)."""
    with _SERVERS_LOCK:
        for session in _SERVERS:
            session.close()
        _SERVERS.clear()


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def _read_hand_in(text: str) -> dict | str:
    """The notebook's JSON, or why it cannot be graded."""
    if len(text) > MAX_NOTEBOOK_BYTES:
        return f"larger than {MAX_NOTEBOOK_BYTES >> 20} MB: not read; scored 0"
    try:
        nb = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return f"not a readable notebook ({type(exc).__name__}); scored 0"
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return "not a notebook (no list of cells); scored 0"
    return nb


def _verdict(mod, task: str, kept: list) -> Verdict:
    """A verdict of an earlier run (``[points, max_points, message]`` of verdicts.json)."""
    points, worth, message = kept
    return Verdict(task, mod.TASKS[task]["test"], float(points), float(worth), str(message))


def _grade_notebook(student: str, name: str, text: str | None, settings: _Settings,
                    base: Path, previous: dict | None = None) -> tuple[dict, dict[str, float], str]:
    """(result row, test grade_id → points, feedback HTML) of one notebook hand-in. With
    `settings.only_tasks`, only those tasks run; the others keep `previous` (task → [points,
    max_points, message] of the last run)."""
    mod = tasks.module(name)
    specs = mod.TASKS
    worth = sum(sum(s["points"].values()) for s in specs.values())
    zero = {s["test"]: 0.0 for s in specs.values()}
    if text is None:
        return dict(notebook=name, score=0.0, max_score=worth, message="not handed in",
                    failed=list(specs)), zero, ""
    nb = _read_hand_in(text)
    if isinstance(nb, str):
        return dict(notebook=name, score=0.0, max_score=worth, message=nb, failed=list(specs)), \
            zero, feedback_page.page(student, name, [], nb)
    answers = tasks.answer_cells(nb)
    only = [t for t in specs if t in settings.only_tasks] if settings.only_tasks else None
    untouched = {t for t in specs if t not in answers or (
        blank(answers[t]) and "YOUR CODE HERE" in answers[t])}  # the release's stub: 0, unrun
    run = [t for t in (only or specs) if t not in untouched]
    limits = sandbox.Limits.from_env()
    limits = sandbox.Limits(memory=limits.memory, processes=limits.processes,
                            cpu_seconds=limits.cpu_seconds,
                            wall_seconds=float(settings.notebook_timeout))
    began = time.monotonic()
    results, limit, peak = tasks.run(
        name, answers, folder=base / f"{student}-{name}", voc_root=settings.voc_root,
        fixtures=settings.fixtures[name], use_sandbox=settings.use_sandbox, limits=limits,
        threads=settings.threads, timeout_cap=settings.task_timeout, only=run,
        session=_server(settings, base)) if run else \
        ({}, "", 0)
    took = time.monotonic() - began
    decided = verdicts(results, settings.truths[name], mod, answers, only=only)
    if limit:
        for v in decided:
            if v.task not in results and v.task not in untouched:
                v.message = f"not graded: {limit}"
    if only is not None:  # the other tasks keep the last run's verdicts
        fresh = {v.task: v for v in decided}
        decided = [fresh[t] if t in fresh else _verdict(mod, t, (previous or {})[t])
                   for t in specs]
    failed = [v.task for v in decided if not v.passed]
    notes = "; ".join(f"{v.task} ({v.message})" if v.message else v.task
                      for v in decided if not v.passed)
    message = (f"lost points: {notes}" if notes else "") + (f"; {limit}" if limit else "")
    scores = {v.grade_id: v.points for v in decided}
    row = dict(notebook=name, score=sum(scores.values()), max_score=worth,
               message=message.strip("; "), failed=failed, seconds=took, peak_memory=peak,
               tasks={v.task: [v.points, v.max_points, v.message] for v in decided})
    return row, scores, feedback_page.page(student, name, decided, limit)


def _grade_student(student: str, hand_ins: dict[str, str], settings: _Settings,
                   scratch: str | None = None, previous: dict | None = None,
                   names: list[str] | None = None) -> dict:
    """Grade one student's notebooks (name → JSON text; only `names` when given). Never
    raises for a hand-in's sake.

    Returns plain data: ``results`` (one dict per notebook), ``scores`` (notebook → test
    grade_id → points earned) and ``feedback`` (notebook → HTML, base64).
    """
    base = Path(scratch or tempfile.gettempdir()) / f"voc-grading-{os.getpid()}"
    base.mkdir(parents=True, exist_ok=True)
    results, scores, html = [], {}, {}
    for name in (n for n in names or settings.notebooks
                 if n in hand_ins or previous is None):
        try:
            row, earned, page = _grade_notebook(student, name, hand_ins.get(name), settings,
                                                base, (previous or {}).get(name))
        except Exception as exc:  # noqa: BLE001 (its failure is its own: the class goes on)
            mod = tasks.module(name)
            row = dict(notebook=name, score=0.0, max_score=sum(
                sum(s["points"].values()) for s in mod.TASKS.values()),
                message=f"could not be graded ({type(exc).__name__}: {str(exc)[:200]}); "
                        "scored 0", failed=list(mod.TASKS))
            earned, page = {s["test"]: 0.0 for s in mod.TASKS.values()}, ""
        results.append(row)
        scores[name] = earned
        if page:
            html[name] = base64.b64encode(page.encode()).decode()
    return dict(student=student, results=results, scores=scores, feedback=html,
                worker=_worker())


def _truths(name: str, settings: _Settings, scratch: Path, folder: Path) -> dict:
    """The harness's results on the instructor's solutions of `name` (in `folder`), checked
    complete."""
    source = json.loads((folder / f"{name}.ipynb").read_text())
    mod = tasks.module(name)
    results, limit, _ = tasks.run(
        name, tasks.solutions(source), folder=scratch / f"truth-{name}",
        voc_root=settings.voc_root, fixtures=settings.fixtures[name],
        use_sandbox=settings.use_sandbox, threads=settings.threads,
        timeout_cap=settings.task_timeout, session=_server(settings, scratch))
    if limit:
        raise RuntimeError(f"the solutions of {name} hit a sandbox limit: {limit}")
    check_truths(results, mod)
    return results


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def fixtures(names: list[str], folder: Path, voc_root: str) -> dict[str, str]:
    """Each notebook's fixtures folder, made once (fixed seeds) by its task module and kept
    while the module and the data stay the same."""
    made = {}
    for name in names:
        mod = tasks.module(name)
        path = folder / f"{name}-{_key(inspect.getsource(mod), voc_root)}"
        if not (path / ".ready").exists():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            if hasattr(mod, "fixtures"):
                mod.fixtures(path, voc_root)
            (path / ".ready").touch()
        made[name] = str(path.resolve())
    return made


def _cached_truths(name: str, settings: _Settings, scratch: Path, folder: Path,
                   cache: Path) -> dict:
    """:func:`_truths`, kept in `cache` while the task module, the solutions, the fixtures and
    the data stay the same (a regrade reuses them: the same hand-in gets the same grade)."""
    key = _key(inspect.getsource(tasks.module(name)), (folder / f"{name}.ipynb").read_text(),
               settings.fixtures[name], settings.voc_root)
    path = cache / f"{name}-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    truths = _truths(name, settings, scratch, folder)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truths))
    return truths


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
            elif path.is_symlink() or not path.is_file():
                print(f"{folder.name}: {path.name} is not a plain file; ignored",
                      file=sys.stderr)
            elif path.stat().st_size > MAX_NOTEBOOK_BYTES:
                hand_ins[folder.name][path.stem] = " " * (MAX_NOTEBOOK_BYTES + 1)
            else:
                hand_ins[folder.name][path.stem] = path.read_text(errors="replace")
    return hand_ins


def _class_gradebook(course: Path, source: Path, names: list[str]) -> None:
    """nbgrader's gradebook of the assignment (its notebooks, cells and points)."""
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    for name in names:
        shutil.copyfile(source / f"{name}.ipynb", course / "source" / ASSIGNMENT / f"{name}.ipynb")
    (course / "nbgrader_config.py").write_text(CONFIG.format(
        config=str(repo_root() / "nbgrader_config.py"), course=str(course),
        db=f"sqlite:///{course / 'gradebook.db'}"))
    done = __import__("subprocess").run(
        [NBGRADER, "generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN"], cwd=course,
        env=nbgrader_env(), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"nbgrader generate_assignment failed in {course}:\n"
                           f"{(done.stdout + done.stderr)[-3000:]}")


def _map(settings: _Settings, work: dict[str, dict[str, str]], pool: ThreadPoolExecutor,
         scheduler: str | None, scratch: Path, report: Callable[[dict], None],
         previous: dict[str, dict] | None = None) -> list[dict]:
    before = (lambda student: previous.get(student, {})) if previous is not None else \
        (lambda student: None)

    def _names(notebooks: dict[str, str]) -> list[str]:
        """One job per notebook hand-in (JOBS and Dask workers share a class by hand-ins, not
        by students); without an earlier run, missing notebooks are jobs too ("not handed in")."""
        return [n for n in settings.notebooks if n in notebooks or previous is None]

    # Longest first: a notebook's cost is what its solutions' tasks took in the truths run
    # (the harness times each task), so the last jobs of a run are short and no JOBS slot or
    # Dask worker idles while another grades one long hand-in at the end.
    cost = {n: sum(r.get("seconds", 0.0) for r in settings.truths.get(n, {}).values()
                   if isinstance(r, dict)) for n in settings.notebooks}
    jobs = sorted(((student, name) for student, notebooks in work.items()
                   for name in _names(notebooks)), key=lambda job: -cost[job[1]])
    if scheduler:
        from distributed import Client, as_completed

        with Client(scheduler) as client:
            remote = client.scatter(settings, broadcast=True)
            futures = [client.submit(_grade_student, student, work[student], remote, None,
                                     before(student), [name], key=f"grade-{student}-{name}",
                                     pure=False, priority=len(jobs) - rank)
                       for rank, (student, name) in enumerate(jobs)]
            done = []
            for future in as_completed(futures):
                done.append(future.result())
                report(done[-1])
            return done
    done = []
    futures = [pool.submit(_grade_student, student, work[student], settings, str(scratch),
                           before(student), [name]) for student, name in jobs]
    for future in futures:
        done.append(future.result())
        report(done[-1])
    return done


def _earlier(feedback: Path) -> list[Result]:
    """The results of the last run, from ``verdicts.json`` beside its feedback."""
    path = feedback / "verdicts.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no earlier grading run to regrade; run make grade "
                                "first (with the same OUT and FEEDBACK)")
    return [Result(r["student"], r["notebook"], r["score"], r["max_score"], r["message"],
                   tuple(r["failed"]), r["worker"], r["seconds"], r["peak_memory"], r["tasks"])
            for r in json.loads(path.read_text())]


def grade(submitted: str | Path, out: str | Path, *, source: str | Path | None = None,
          course: str | Path | None = None, feedback: str | Path | None = None,
          cell_timeout: int = 600, notebook_timeout: int = 3600, jobs: int | None = None,
          use_sandbox: bool | None = None, scheduler: str | None = None,
          course_toml: str | Path | None = None, regrade: bool = False,
          students: list[str] | None = None, notebooks: list[str] | None = None,
          only_tasks: list[str] | None = None) -> list[Result]:
    """Grade ``submitted/STUDENT/NN_name.ipynb``; write `out` (CSV) and HTML feedback.

    Every notebook that at least one student handed in is graded for every student (a missing
    hand-in scores 0). `cell_timeout` caps each task's time, `notebook_timeout` each hand-in's
    sandbox. `feedback` defaults to ``feedback/`` beside `out`. `use_sandbox` defaults to on
    unless ``UNSAFE_NO_SANDBOX=1``; when on and no sandbox can start here, RuntimeError says
    why. `jobs` defaults to :func:`default_jobs`. The CSV has, next to each raw score, how late
    the hand-in was and its penalty under `course_toml` (default: the repository's course.toml;
    hand-in times from ``submitted/collected.json`` when `make collect` wrote it, else the files'
    times): ``student,notebook,score,max_score,late_days,penalty,final_score,time_source``.

    With `regrade`, only the hand-ins of `students` (default all) and `notebooks` (default all
    graded last time), and of them only `only_tasks` (default all), are graded again; every other
    grade stays as the last run (``verdicts.json`` beside the feedback) left it, and the CSV,
    the class gradebook, their feedback pages and the report are updated in place. Fixtures and
    truths are kept while the tasks, solutions and data stay the same, so a hand-in graded again
    gets the same grade.
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
    jobs = jobs or default_jobs()
    names = sorted(p.stem for p in Path(source).glob("[0-9][0-9]_*.ipynb")
                   if tasks.points(json.loads(p.read_text())))  # 06, optional, has no task
    if not names:
        raise FileNotFoundError(f"No instructor notebooks (NN_name.ipynb) in {source}")
    for what, asked, known in (("notebook", notebooks, names),):
        unknown = sorted(set(asked or ()) - set(known))
        if unknown:
            raise ValueError(f"no such {what}: {', '.join(unknown)} (have: {', '.join(known)})")
    hand_ins = _hand_ins(Path(submitted), names)
    earlier: list[Result] = []
    made = None
    if regrade:
        earlier = _earlier(feedback)
        graded = sorted({r.notebook for r in earlier})
        if not (course / "gradebook.db").is_file():
            raise FileNotFoundError(f"{course / 'gradebook.db'}: no class gradebook to update; "
                                    "regrade with the COURSE of the last run")
        missing = sorted(set(students or ()) - set(hand_ins) - {r.student for r in earlier})
        if missing:
            raise ValueError(f"no hand-ins of {', '.join(missing)} in {submitted}")
        unknown = sorted(set(only_tasks or ()) - {t for n in graded
                                                  for t in tasks.module(n).TASKS})
        if unknown:
            raise ValueError(f"no such task: {', '.join(unknown)}")
    else:
        graded = sorted({n for nbs in hand_ins.values() for n in nbs})
        kept = [d for d in (course / "fixtures", course / "truths") if d.is_dir()]
        parked = course.parent / f".kept-{os.getpid()}"
        for folder in kept:  # made with fixed seeds: reused across runs
            parked.mkdir(parents=True, exist_ok=True)
            folder.rename(parked / folder.name)
        shutil.rmtree(course, ignore_errors=True)
        course.mkdir(parents=True)
        for folder in kept:
            (parked / folder.name).rename(course / folder.name)
        shutil.rmtree(parked, ignore_errors=True)
        # nbgrader makes the gradebook (seconds) while the fixtures, truths and hand-ins are
        # graded: the scores go in at the end
        book = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gradebook")
        made = book.submit(_class_gradebook, course, source, names)
        book.shutdown(wait=False)
    chosen = [n for n in graded if not notebooks or n in notebooks]
    voc_root = os.environ.get("VOC_ROOT", str(root / "data" / "VOCdevkit" / "VOC2012"))
    ensure_dataset(voc_root)  # as the notebooks would: a sandbox sees the dataset read-only
    voc_root = str(Path(voc_root).resolve())
    settings = _Settings(
        notebooks=graded, truths={}, fixtures=fixtures(chosen, course / "fixtures", voc_root),
        voc_root=voc_root, task_timeout=int(cell_timeout),
        notebook_timeout=int(notebook_timeout), use_sandbox=use_sandbox,
        threads=max(1, (os.cpu_count() or 1) // jobs), only_tasks=only_tasks)
    scratch = course / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    results: list[Result] = []

    def report(one: dict) -> None:
        for r in one["results"]:
            results.append(Result(one["student"], r["notebook"], r["score"], r["max_score"],
                                  r["message"], tuple(r["failed"]), one["worker"],
                                  r.get("seconds", 0.0), r.get("peak_memory", 0),
                                  r.get("tasks", {})))
            print(f"{one['student']:>12} {r['notebook']:<24} {r['score']:g}/{r['max_score']:g}"
                  f"  [{one['worker']}]  {r['message']}", flush=True)
        for name, page in one["feedback"].items():
            (feedback / one["student"]).mkdir(parents=True, exist_ok=True)
            (feedback / one["student"] / f"{name}.html").write_bytes(base64.b64decode(page))

    work = {s: {n: t for n, t in nbs.items() if n in chosen} for s, nbs in hand_ins.items()
            if not students or s in students}
    previous = None
    if regrade:
        previous = {}
        for r in earlier:
            previous.setdefault(r.student, {})[r.notebook] = r.tasks
    # One pool of JOBS threads for the truths and the hand-ins: each thread's grading server
    # (started by the truths, wiped clean after every hand-in) goes on to grade the class.
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="job")
    try:
        settings.truths = dict(zip(chosen, pool.map(
            lambda n: _cached_truths(n, settings, scratch, source, course / "truths"), chosen),
            strict=True))
        if scheduler:  # the Dask workers start their own servers
            close_servers()
        LAST_RUN.clear()
        LAST_RUN.update(jobs=jobs, truths=time.monotonic() - began)
        if regrade:
            settings.notebooks = chosen
        began = time.monotonic()
        done = _map(settings, work, pool, scheduler, scratch, report, previous)
    finally:
        pool.shutdown(cancel_futures=True)
        close_servers()
    LAST_RUN.update(hand_ins=time.monotonic() - began)
    fresh = {(r.student, r.notebook) for r in results}
    results += [r for r in earlier if (r.student, r.notebook) not in fresh]
    if made is not None:
        made.result()  # nbgrader's error, if any, stops the run here
    _record_scores(course / "gradebook.db", done)
    shutil.rmtree(scratch, ignore_errors=True)
    results.sort(key=lambda r: (r.student, r.notebook))
    out.parent.mkdir(parents=True, exist_ok=True)
    rules = Path(course_toml or root / "course.toml")  # deadlines and the late rule
    collected = Path(submitted) / "collected.json"  # hand-in times, when make collect ran
    config = late.load(rules, names) if rules.is_file() else late.Config()
    table = late.rows(results, collected if collected.is_file() else None, config,
                      submitted=submitted)
    with out.open("w", newline="") as f:  # with the written answers' scores (make manual)
        writer = csv.DictWriter(f, late.COLUMNS + manual.COLUMNS)
        writer.writeheader()
        writer.writerows(manual.merged(table, config, source=source))
    feedback.mkdir(parents=True, exist_ok=True)
    with (feedback / "messages.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["student", "notebook", "message"]] + [
            [r.student, r.notebook, r.message] for r in results if r.message])
    with (feedback / "verdicts.json").open("w") as f:  # per task, for the report and regrading
        json.dump([dict(student=r.student, notebook=r.notebook, score=r.score,
                        max_score=r.max_score, message=r.message, failed=list(r.failed),
                        worker=r.worker, seconds=round(r.seconds, 2), peak_memory=r.peak_memory,
                        tasks=r.tasks) for r in results], f)
    from teacher import report as class_report  # histograms, failures, time, limits, lateness

    (feedback / "report.html").write_text(class_report.build(feedback / "verdicts.json", out))
    print(f"fixtures and truths {LAST_RUN['truths']:.0f} s, {len(fresh)} hand-ins "
          f"{LAST_RUN['hand_ins']:.0f} s ({jobs} at a time)")
    print(f"{len(results)} grades → {out}; feedback → {feedback}/STUDENT/NN_name.html, "
          f"messages → {feedback / 'messages.csv'}, class report → {feedback / 'report.html'}; "
          f"class gradebook → {course / 'gradebook.db'}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submitted", help="folder of STUDENT/NN_name.ipynb hand-ins")
    parser.add_argument("out", help="CSV to write: student,notebook,score,max_score,...")
    parser.add_argument("--feedback", help="folder for the HTML feedback (default: beside OUT)")
    parser.add_argument("--source", help="instructor notebooks (default: source/voc)")
    parser.add_argument("--course", help="the grader's course folder (default: build/grade)")
    parser.add_argument("--cell-timeout", type=int, default=600,
                        help="the most seconds one task may take")
    parser.add_argument("--notebook-timeout", type=int, default=3600,
                        help="the most seconds one notebook hand-in's sandbox may take")
    parser.add_argument("--jobs", type=int, default=0,
                        help="hand-ins graded at once (default: one per core, within memory)")
    parser.add_argument("--scheduler", default="",
                        help="a Dask scheduler (tcp://HOST:PORT) to grade on instead")
    parser.add_argument("--course-toml", help="deadlines and late rule (default: course.toml)")
    parser.add_argument("--regrade", action="store_true",
                        help="grade again only --student/--notebook/--task, keep the rest")
    parser.add_argument("--student", default="", help="comma-separated students to regrade")
    parser.add_argument("--notebook", default="", help="comma-separated notebooks to regrade")
    parser.add_argument("--task", default="", help="comma-separated tasks (answer grade_ids)")
    args = parser.parse_args(argv)

    def listed(text: str) -> list[str] | None:
        return [x.strip() for x in text.split(",") if x.strip()] or None

    if not args.regrade and (args.student or args.notebook or args.task):
        parser.error("--student, --notebook and --task need --regrade (make regrade)")
    try:
        grade(args.submitted, args.out, source=args.source, course=args.course,
              feedback=args.feedback, cell_timeout=args.cell_timeout,
              notebook_timeout=args.notebook_timeout, jobs=args.jobs or None,
              scheduler=args.scheduler or None, course_toml=args.course_toml,
              regrade=args.regrade, students=listed(args.student),
              notebooks=listed(args.notebook), only_tasks=listed(args.task))
    except (FileNotFoundError, ValueError, late.ConfigError) as exc:
        print(f"make grade: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if sandbox.OPT_OUT in str(exc):
            print(f"make grade: {exc}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    # Run as `python -m teacher.grading`, this file is `__main__`: call the functions of the
    # module `teacher.grading` instead, which Dask sends to its workers by name, not by value.
    from teacher.grading import main as _main

    sys.exit(_main())
