"""The visible checks of the course's tasks: ``check(task_id, answer, **context)``.

Every task in a notebook is an answer cell the student fills and a locked test cell that calls
:func:`check`. It prints ✓, ✗ with the problems found and a hint, or "not answered yet", and
returns the student's answer when it is right, else ``None``: the lesson then goes on with what
mmseg, mmengine or torch compute, in the open, never with a course function that does the task.

A check is feedback for the student, not the grade. The grade comes from the teacher's grader,
outside the student's kernel (see source/README.md in the teacher's repository).

With ``COURSE_CHECKS=strict`` (the instructor notebooks under ``make test``) an unanswered or wrong
task raises :class:`TaskFailed`, an ``AssertionError``, so nbval stops at the first failing check.

A *verify* function takes the answer (and the task's context) and returns a list of problems,
each a sentence that names what is wrong (the field, the class, the pixel count) without giving
the right value; an empty list means correct. It raises :class:`NotAnswered` (use
:func:`answered`) when the answer is still the release's stub. The verify functions of notebook
``NN_name`` live in ``helpers/checks/<topic>.py``, each registered in that module's ``TASKS``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["NotAnswered", "TaskFailed", "Task", "strict", "answered", "evaluate", "check",
           "register", "raised_where", "TOPICS"]

T = TypeVar("T")

#: ``COURSE_CHECKS=strict`` makes every check raise (``make test`` on the instructor notebooks).
STRICT_ENV = "COURSE_CHECKS"

#: The modules that register the tasks of each notebook (``helpers.checks.<topic>``).
TOPICS = ("environment", "data", "config", "training", "evaluation", "onnx")


class NotAnswered(Exception):
    """Raised by a verify function when the answer is still the release's stub."""


class TaskFailed(AssertionError):
    """A task is unanswered or wrong under ``COURSE_CHECKS=strict``: the test cell fails."""


@dataclass(frozen=True)
class Task:
    """One task's visible check: ``verify(answer, **context)`` and a hint that names an API."""

    verify: Callable[..., Iterable[str]]
    hint: str = ""


def strict() -> bool:
    """True with ``COURSE_CHECKS=strict``: a failing check raises."""
    return os.environ.get(STRICT_ENV) == "strict"


def answered(value: T, what: str = "your function") -> T:
    """Return `value`, or raise :class:`NotAnswered` when it is None (what the stub gives back)."""
    if value is None:
        raise NotAnswered(f"{what} returned None")
    return value


_REGISTERED: dict[str, Task] = {}


def register(task_id: str, task: Task) -> None:
    """Add a task outside the course's notebooks (a teacher's own exercise, a test)."""
    _REGISTERED[task_id] = task


def _task(task_id: str) -> Task:
    if task_id in _REGISTERED:
        return _REGISTERED[task_id]
    for topic in TOPICS:
        tasks = importlib.import_module(f"helpers.checks.{topic}").TASKS
        if task_id in tasks:
            return tasks[task_id]
    raise KeyError(f"no task {task_id!r} in helpers.checks ({', '.join(TOPICS)})")


def evaluate(answer: Any, verify: Callable[..., Iterable[str]], **context: Any
             ) -> tuple[str, list[str]]:
    """Run `verify` on `answer`: ("correct", []), ("wrong", problems) or ("unanswered", []).

    ``None`` and :class:`NotImplementedError` (nbgrader's default stub) count as not answered; any
    other exception, raised by the student's code while being verified, is one problem naming the
    exception's type and message, and the line of the student's cell that raised it
    (:func:`raised_where`).
    """
    if answer is None:
        return "unanswered", []
    try:
        problems = [str(p) for p in verify(answer, **context)]
    except (NotAnswered, NotImplementedError):
        return "unanswered", []
    except Exception as exc:  # the student's code raised: report it, never crash the lesson
        return "wrong", [f"your code raised {type(exc).__name__}: {exc}{raised_where(exc)}"]
    return ("wrong", problems) if problems else ("correct", [])


#: The file names IPython gives a notebook cell's code: ``/tmp/ipykernel_<pid>/<hash>.py``
#: (ipykernel, JupyterLab and Colab) or ``<ipython-input-<n>-<hash>>`` (plain IPython).
_CELL_FILE = re.compile(r"(^<ipython-input-\d+-[0-9a-f]+>$)|(ipykernel_\d+[/\\][^/\\]+\.py$)")


def raised_where(exc: BaseException) -> str:
    """`` (line N of your cell: `source line`)`` for the deepest frame of `exc`'s traceback
    whose code a notebook cell defined, the student's answer; "" when no cell's code is in it.

    IPython compiles each cell as its own file and keeps its source in :mod:`linecache`, so
    the line number counts from the top of that cell.
    """
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if _CELL_FILE.search(frame.filename):
            line = (frame.line or "").strip()
            found = f" (line {frame.lineno} of your cell" + (f": `{line}`)" if line else ")")
    return found


def check(task_id: str, answer: Any, **context: Any) -> Any:
    """Check one task; print the verdict; return the answer when correct, else ``None``.

    `context` goes to the task's verify function (the dataset root, the run's config, ...).
    Warnings that the verification raises in libraries are printed to stdout, not stderr, so a
    student never reads a library's deprecation note as a failure of their own.
    """
    task = _task(task_id)
    with contextlib.redirect_stderr(sys.stdout):
        status, problems = evaluate(answer, task.verify, **context)
    if status == "correct":
        print(f"✓ Task {task_id}: correct.")
        return answer
    if status == "unanswered":
        lines = [f"○ Task {task_id}: not answered yet — the lesson goes on without it."]
    else:
        lines = [f"✗ Task {task_id}: {len(problems)} problem(s):"]
        lines += [f"  - {p}" for p in problems]
        if task.hint:
            lines.append(f"  Hint: {task.hint}")
        lines.append("  Not accepted yet — the lesson goes on without it.")
    if strict():
        raise TaskFailed("\n".join(lines))
    print("\n".join(lines))
    return None
