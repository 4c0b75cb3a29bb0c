"""Task checks for the course's graded exercises (torch-free core; see source/README.md).

Every task in a notebook is an answer cell the student fills (the release holds a stub that does
nothing) and a locked test cell that calls :func:`check`. One call does the right thing in both
worlds:

- **interactively** (JupyterLab, Colab, ``make run``) it prints ✓, ✗ with the problems and a hint,
  or "not answered yet", and hands the lesson either the student's answer (when right) or the
  reference result (otherwise, saying so), so "Run All" always reaches the end;
- **under nbgrader** (it sets ``NBGRADER_EXECUTION`` while it autogrades or validates) an
  unanswered or wrong task writes its report to stderr, which makes nbgrader score the test cell
  0, and still hands the lesson the reference result: a later task is then graded on its own,
  never failed by a name that an earlier wrong task left undefined;
- **with** ``COURSE_CHECKS=strict`` (``make test`` on the instructor notebooks) it raises
  :class:`TaskFailed`, an ``AssertionError``, so that nbval stops at the first failing check.

A *verify* function takes the answer and returns a list of problems, each a sentence that names
what is wrong (the field, the class, the pixel count) without giving the right value; an empty
list means correct. It raises :class:`NotAnswered` (use :func:`answered`) when the answer is still
the stub. Exceptions that the student's code raises are caught and reported with type and message.
The verify functions of notebook ``NN_name`` live in ``helpers/checks/<topic>.py``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["NotAnswered", "TaskFailed", "grading", "strict", "answered", "evaluate", "check"]

T = TypeVar("T")

#: ``COURSE_CHECKS=strict`` makes every check raise, as under nbgrader (used by ``make test``).
STRICT_ENV = "COURSE_CHECKS"


class NotAnswered(Exception):
    """Raised by a verify function when the answer is still the release's stub."""


class TaskFailed(AssertionError):
    """A task is unanswered or wrong under ``COURSE_CHECKS=strict``: the test cell fails."""


def strict() -> bool:
    """True with ``COURSE_CHECKS=strict``: a failing check raises."""
    return os.environ.get(STRICT_ENV) == "strict"


def grading() -> bool:
    """True under nbgrader (it sets ``NBGRADER_EXECUTION``) or with ``COURSE_CHECKS=strict``."""
    return bool(os.environ.get("NBGRADER_EXECUTION")) or strict()


def answered(value: T, what: str = "your function") -> T:
    """Return `value`, or raise :class:`NotAnswered` when it is None (what the stub gives back)."""
    if value is None:
        raise NotAnswered(f"{what} returned None")
    return value


def evaluate(answer: Any, verify: Callable[[Any], Iterable[str]]) -> tuple[str, list[str]]:
    """Run `verify` on `answer`: ("correct", []), ("wrong", problems) or ("unanswered", []).

    ``None`` and :class:`NotImplementedError` (nbgrader's default stub) count as not answered; any
    other exception, raised by the student's code while being verified, is one problem naming the
    exception's type and message.
    """
    if answer is None:
        return "unanswered", []
    try:
        problems = [str(p) for p in verify(answer)]
    except (NotAnswered, NotImplementedError):
        return "unanswered", []
    except Exception as exc:  # the student's code raised: report it, never crash the lesson
        return "wrong", [f"your code raised {type(exc).__name__}: {exc}"]
    return ("wrong", problems) if problems else ("correct", [])


def check(task_id: str, answer: Any, verify: Callable[[Any], Iterable[str]], *,
          reference: Any = None, hint: str = "") -> Any:
    """Check one task; return the answer when correct, else `reference` (see the module doc).

    Under :func:`strict`, an unanswered or wrong task raises :class:`TaskFailed` with the
    problems and the hint; under nbgrader the same report goes to stderr (the test cell scores 0)
    and `reference` is returned. What the verification itself writes to stderr (library
    warnings) goes to stdout: nbgrader scores a test cell with any stderr output 0.
    """
    with contextlib.redirect_stderr(sys.stdout):
        status, problems = evaluate(answer, verify)
    if status == "correct":
        print(f"✓ Task {task_id}: correct.")
        return answer
    if status == "unanswered":
        lines = [f"○ Task {task_id}: not answered yet"]
    else:
        lines = [f"✗ Task {task_id}: {len(problems)} problem(s):"]
        lines += [f"  - {p}" for p in problems]
        if hint:
            lines.append(f"  Hint: {hint}")
    if strict():
        raise TaskFailed("\n".join(lines))
    if grading():  # nbgrader: stderr scores the cell 0; the lesson goes on with the reference
        print("\n".join(lines), file=sys.stderr, flush=True)
        return reference
    go_on = ("continuing with the reference result." if reference is not None
             else "the lesson goes on without it.")
    if status == "unanswered":
        lines[0] += f" — {go_on}"
    else:
        lines.append(f"  Not accepted — {go_on}")
    print("\n".join(lines))
    return reference
