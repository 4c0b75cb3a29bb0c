"""The graded tasks: what each answer is given, how it is probed, and what each case is worth.

One module per notebook, ``teacher/tasks/nNN_name.py``, defines

- ``NOTEBOOK``: the notebook's name (``NN_name``);
- ``PRELOAD``: libraries the harness imports once, before it forks a child per task;
- optionally ``warm_up()``: what the libraries do once on their first call (an exporter's
  tables), run once by the harness's server before any hand-in, with the teacher's inputs only;
- ``TASKS``: answer cell grade_id → a dict with
  ``test`` (the grade_id of the test cell that holds the task's points in the gradebook),
  ``givens(ns, ctx)`` (puts into the answer's namespace ``ns`` the names the task text says it
  may use: the notebook's imports, configs, models, paths, all made here),
  ``probe(ns, ctx)`` (returns ``{case kind: call}``: each call runs the answer on hidden inputs
  and returns plain data), ``points`` (case kind → points; they add up to the test cell's),
  ``say`` (case kind → the one line a student reads when that kind fails; never a hidden value),
  and optionally ``uses`` (course modules the task text names, see :data:`COURSE`),
  ``rtol``/``atol`` (how far a number may be from the truth) and ``timeout`` (seconds);
- optionally ``fixtures(folder, voc_root)``: what the grader makes once per grading run, outside
  the sandbox and before any hand-in (a trained run, an exported graph), shared read-only with
  every sandbox of that notebook as ``ctx.fixtures``.

A task module's top level imports only libraries: the harness (teacher/kit/harness.py) compiles
it inside the sandbox, where neither ``helpers`` nor ``teacher`` exists. ``ctx`` gives
``voc_root``, ``fixtures``, ``scratch`` (a fresh folder per task), ``plain`` and ``digest``.

The truth is the same harness run on the instructor's solutions; a hand-in earns a case's points
when its payload equals the truth's (:func:`teacher.verdicts.same`).
"""

from __future__ import annotations

import importlib
import inspect
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import nbformat

__all__ = ["COURSE", "KIT", "modules", "module", "answer_cells", "solutions", "job", "server",
           "run", "MAX_RESULT_BYTES"]

#: Course modules a task may declare in ``uses`` (name → file under the repository): only those
#: a task's text names, each importing nothing of the course. Inside the sandbox a task sees the
#: ones it declares as ``course.<name>``, and no other.
COURSE: dict[str, str] = {
    "graph": "helpers/onnx/graph.py",
    "pooling": "helpers/onnx/pooling.py",
    "run_config": "helpers/run_config.py",
}

#: The harness and the plain-data module: the only files of the grader a sandbox holds.
KIT = Path(__file__).resolve().parent.parent / "kit"

#: The most bytes of results the grader reads back from one sandbox.
MAX_RESULT_BYTES = 16 << 20


def modules() -> dict[str, ModuleType]:
    """Notebook name → its task module."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("n[0-9][0-9]_*.py")):
        mod = importlib.import_module(f"teacher.tasks.{path.stem}")
        found[mod.NOTEBOOK] = mod
    return found


def module(notebook: str) -> ModuleType:
    found = modules()
    if notebook not in found:
        raise KeyError(f"no task module for {notebook} in {Path(__file__).parent} "
                       f"(have: {', '.join(found)})")
    return found[notebook]


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def answer_cells(nb: dict) -> dict[str, str]:
    """Answer cell grade_id → source in notebook JSON `nb` (the first code cell marked as a
    solution with that grade_id; cells without the mark are not answers)."""
    found: dict[str, str] = {}
    cells = nb.get("cells", []) if isinstance(nb, dict) else []
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {})
        meta = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if isinstance(grade_id, str) and meta.get("solution") is True and grade_id not in found:
            found[grade_id] = _source(cell)
    return found


def solutions(source_nb: dict) -> dict[str, str]:
    """The instructor notebook's answer cells with their solution markers taken out."""
    return {g: "\n".join(line for line in text.splitlines()
                         if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
            for g, text in answer_cells(source_nb).items()}


def job(notebook: str | ModuleType, answers: dict[str, str], *, voc_root: str, fixtures: str,
        scratch: str, only: list[str] | None = None) -> dict:
    """The harness's job for one hand-in of `notebook` (a name, or a task module itself;
    answers: grade_id → source; `only`: these tasks, default all)."""
    mod = module(notebook) if isinstance(notebook, str) else notebook
    root = Path(__file__).resolve().parents[2]
    order = list(mod.TASKS)
    tasks = []
    for i, grade_id in enumerate(order):
        if only is not None and grade_id not in only:
            continue
        spec = mod.TASKS[grade_id]
        tasks.append(dict(
            grade_id=grade_id, answer=answers.get(grade_id, ""),
            earlier=[[g, answers[g]] for g in order[:i] if g in answers],
            course={n: (root / COURSE[n]).read_text() for n in spec.get("uses", ())}))
    return dict(notebook=mod.NOTEBOOK, tasks=tasks, voc_root=voc_root, fixtures=fixtures,
                scratch=scratch)


def server(notebooks: list[str | ModuleType], *, folder: Path, voc_root: str,
           fixtures: list[str], use_sandbox: bool = True, limits=None, threads: int = 1):
    """A :class:`teacher.sandbox.Session` running the harness as a server for hand-ins of
    `notebooks`: one sandbox (read-only: the Python env, `voc_root`, the `fixtures` folders;
    writable: `folder`) whose process imports the libraries once and grades one hand-in after
    another, each in a process of its own forked before its job is read, everything it left
    killed and wiped before the next. :func:`run` sends it one hand-in."""
    from teacher import sandbox

    folder = Path(folder).resolve()
    mods = [module(n) if isinstance(n, str) else n for n in notebooks]
    kit, scratch = folder / "kit", folder / "scratch"

    def prepare() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        for path in (kit, scratch):
            path.mkdir(parents=True)
        for name in ("harness.py", "data.py"):
            shutil.copyfile(KIT / name, kit / name)
        (kit / "init.json").write_text(json.dumps(dict(
            modules={m.NOTEBOOK: inspect.getsource(m) for m in mods}, scratch=str(scratch))))

    n = str(threads)
    env = {"HOME": str(scratch), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
           "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": n,
           "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "LANG": "C.UTF-8"}
    argv = [sys.executable, "-I", str(kit / "harness.py"), str(kit)]
    if use_sandbox:
        argv.append("--sandboxed")
    folder.mkdir(parents=True, exist_ok=True)
    session = sandbox.Session(argv, read_only=[voc_root, *sorted(set(fixtures))],
                              writable=[str(folder)], env=env, cwd=str(folder), limits=limits,
                              prepare=prepare, sandboxed=use_sandbox)
    session.scratch = str(scratch)
    return session


def run(notebook: str | ModuleType, answers: dict[str, str], *, folder: Path, voc_root: str,
        fixtures: str, use_sandbox: bool = True, limits=None, threads: int = 1,
        timeout_cap: float | None = None, only: list[str] | None = None, session=None
        ) -> tuple[dict, str, int]:
    """Grade `answers` of `notebook` with the harness: (results per answer grade_id, the one
    line of why grading stopped early or "", peak memory in bytes). `session`: a
    :func:`server` that serves `notebook` (default: one started in `folder` for this hand-in
    only); `limits.wall_seconds` bounds this hand-in."""
    from teacher import sandbox

    mod = module(notebook) if isinstance(notebook, str) else notebook
    limits = limits or sandbox.Limits.from_env()
    own = session is None
    if own:
        session = server([mod], folder=folder, voc_root=voc_root, fixtures=[fixtures],
                         use_sandbox=use_sandbox, limits=limits, threads=threads)
    results: dict = {}

    def keep(line: dict) -> None:
        task, result = line.get("task"), line.get("result")
        if isinstance(task, str) and task in mod.TASKS and isinstance(result, dict):
            results[task] = result

    message = dict(job(mod, answers, voc_root=voc_root, fixtures=fixtures,
                       scratch=session.scratch, only=only), timeout_cap=timeout_cap)
    try:
        reason, peak = session.request(message, timeout=limits.wall_seconds, on_line=keep,
                                       max_bytes=MAX_RESULT_BYTES)
    finally:
        if own:
            session.close()
            shutil.rmtree(folder, ignore_errors=True)
    return results, reason, peak


def points(source_nb: dict) -> dict[str, float]:
    """Test cell grade_id → points, from the instructor notebook (code cells only: a graded
    markdown cell is a written answer, see teacher.manual)."""
    nb = nbformat.from_dict(source_nb)
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
            for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}
