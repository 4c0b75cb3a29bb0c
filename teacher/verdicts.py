"""Verdicts decided outside the sandbox, from plain data.

The harness (teacher/kit/harness.py) runs each answer cell alone, with the task's givens, and its
probe returns one payload per case kind (JSON). The grader runs the same harness on the
instructor's solutions once: the truths. Here, in the grader's own process, each case kind whose
payload equals the truth's earns its points (:func:`same`); nothing else the student's code did
counts. Each task gets one line for the student: which case kinds failed and why, without a
hidden value.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Verdict", "same", "blank", "check_truths", "verdicts"]


@dataclass
class Verdict:
    """The grader's decision on one task."""

    task: str  #: the answer cell's grade_id
    grade_id: str  #: the test cell's grade_id (where the gradebook keeps the points)
    points: float
    max_points: float
    message: str = ""  #: one line for the student; empty when every case passed
    cases: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.points >= self.max_points


def _number(x: Any) -> float | None:
    if type(x) in (int, float):
        return float(x)
    if x in ("nan", "inf", "-inf"):
        return float(x)
    return None


def same(got: Any, want: Any, rtol: float = 1e-6, atol: float = 1e-6) -> bool:
    """Whether two JSON values are equal: same structure, equal strings and bools, numbers
    within ``atol + rtol * |want|`` (NaN equals NaN, an infinity only itself)."""
    if type(want) is bool or type(got) is bool:
        return type(got) is type(want) and got == want
    a, b = _number(got), _number(want)
    if b is not None:
        if a is None:
            return False
        if math.isnan(b) or math.isnan(a):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(b) or math.isinf(a):
            return a == b
        return abs(a - b) <= atol + rtol * abs(b)
    if type(want) is str:
        return type(got) is str and got == want
    if type(want) is list:
        return type(got) is list and len(got) == len(want) and all(
            same(g, w, rtol, atol) for g, w in zip(got, want, strict=True))
    if type(want) is dict:
        return type(got) is dict and set(got) == set(want) and all(
            same(got[k], want[k], rtol, atol) for k in want)
    return got is None and want is None


def _empty(body: list) -> bool:
    """Statements that do nothing: a docstring, ``pass``, ``...``, ``name = None``, and
    functions whose body is only that."""
    for node in body:
        if isinstance(node, ast.Pass) or (isinstance(node, ast.Expr)
                                          and isinstance(node.value, ast.Constant)):
            continue
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and node.value.value is None:
            continue
        if isinstance(node, ast.FunctionDef) and _empty(node.body):
            continue
        return False
    return True


def blank(source: str) -> bool:
    """Whether an answer cell holds nothing but the release's stub (a docstring, comments,
    ``pass``, ``name = None``, a function that does nothing)."""
    try:
        return _empty(ast.parse(source).body)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def check_truths(truths: dict, mod) -> None:
    """Raise RuntimeError unless the solutions' run gave a payload for every case of `mod`."""
    broken = []
    for task, spec in mod.TASKS.items():
        got = truths.get(task, {})
        for kind in spec["points"]:
            if "payload" not in got.get("cases", {}).get(kind, {}):
                why = got.get("error") or got.get("answer") or got.get("cases", {}).get(kind)
                broken.append(f"{task}/{kind}: {why}")
    if broken:
        raise RuntimeError(f"the solutions of {mod.NOTEBOOK} give no truth for: "
                           + "; ".join(broken))


def _tolerance(spec: dict, key: str) -> float:
    value = spec.get(key, 1e-6)
    return float(value) if type(value) in (int, float) and value >= 0 else 1e-6


def verdicts(results: Any, truths: dict, mod, answers: dict[str, str],
             only: list[str] | None = None) -> list[Verdict]:
    """The verdict on every task of `mod` (or those in `only`) for harness `results` (possibly
    partial or garbage)."""
    results = results if isinstance(results, dict) else {}
    out = []
    for task, spec in mod.TASKS.items():
        if only is not None and task not in only:
            continue
        worth = float(sum(spec["points"].values()))
        got = results.get(task)
        got = got if isinstance(got, dict) else {}
        cases = got.get("cases") if isinstance(got.get("cases"), dict) else {}
        earned, passed, notes = 0.0, {}, []
        for kind, pts in spec["points"].items():
            mine = cases.get(kind) if isinstance(cases.get(kind), dict) else {}
            ok = "payload" in mine and same(mine["payload"], truths[task]["cases"][kind]["payload"],
                                            _tolerance(spec, "rtol"), _tolerance(spec, "atol"))
            passed[kind] = ok
            earned += pts if ok else 0.0
            if not ok and mine.get("error") and isinstance(mine["error"], str):
                notes.append(f"{kind}: {mine['error'][:200]}")
            elif not ok:
                notes.append(spec.get("say", {}).get(kind) or f"wrong on {kind}")
        source = answers.get(task)
        if earned >= worth:
            message = ""
        elif source is None or blank(source):
            message = "not answered"
        else:  # why the answer failed first, then each case kind that failed
            first = [got[k][:200] for k in ("answer", "error") if isinstance(got.get(k), str)]
            message = "; ".join(first + ([] if got.get("error") else notes))
        out.append(Verdict(task, spec["test"], earned, worth, message, passed))
    return out
