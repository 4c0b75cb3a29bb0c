"""Verdicts decided outside the student's kernel, from plain data.

A test cell's hidden tests ("probes") call the student's code on inputs the student has never
seen and record what it returned with :func:`helpers.checks.record.record` (JSON in the cell's
outputs). The grader runs the instructor notebook in a clean kernel once, which records the
truths, then compares each hand-in's records with them here, in its own process. Nothing the
student's code does in its kernel reaches this comparison except the records themselves, and a
record earns the points only when it equals the truth on the hidden inputs, which is what doing
the task means:

- stdout, stderr, tracebacks and nbgrader's own cell scores are ignored;
- a test cell counts only its own outputs (nbgrader restores edited or deleted test cells and
  clears the hand-in's outputs before it runs), with exactly one record of its own ``grade_id``;
- a record is JSON (strings, numbers, lists, dicts): no object of the student's survives into it;
- an answer cell that reaches into the course's code (``helpers``, dynamic imports, or a course
  function listed in :data:`FORBIDDEN` for its task) scores 0 on the task: the course's product
  features (export, prediction, training commands) also do some tasks.
"""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from typing import Any

from helpers.checks.record import RECORD_MIME

__all__ = ["RECORD_MIME", "FORBIDDEN", "Verdict", "records", "same", "delegations", "verdicts"]

#: Names an answer cell must not use for its task, beyond any ``helpers`` import: the course
#: functions that do the task (the answer cell's grade_id → names).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "read_class_ids": ("read_mask", "load_sample"),
    "class_counts": ("class_statistics", "scan_masks", "load_sample", "read_mask"),
    "voc_dataset": ("voc_dataset",),
    "model_edits": ("build_config", "set_norm_type", "seed_cfg", "official"),
    "data_edits": ("build_config", "seed_cfg", "official"),
    "schedule_edits": ("build_config", "seed_cfg", "official"),
    "resume": ("train", "build_runner"),
    "best_iteration": ("read_scalars", "val_metrics", "find_checkpoint", "load_checkpoint"),
    "blend": ("prediction_grid", "worst_gallery", "predict_images", "predict_cli"),
    "iou_per_class": ("evaluate",),
    "most_confused": ("evaluate",),
    "segment_my_image": ("predict_cli", "predict_images", "pred_mask", "prediction_grid"),
    "bin_edges": ("adaptive_pool_matrix", "ExactAdaptiveAvgPool2d"),
    "export_exact": ("export_onnx", "export_cli", "reports", "unpatched", "deploy_report"),
    "ort_vs_pytorch": ("verify_onnx", "reports"),
    "segment_onnx": ("prepare_feed", "prepare_image", "segment", "segment_file", "deploy_report",
                     "compare_miou"),
}

#: Attributes that reach other modules' globals or code (``f.__globals__["overlay"]``).
_DUNDERS = ("__globals__", "__dict__", "__class__", "__subclasses__", "__builtins__",
            "__closure__", "__code__", "__getattribute__", "__self__", "__func__", "__wrapped__",
            "__mro__", "__bases__", "__base__", "__loader__", "__spec__")

#: Names that load or run code behind a static reading's back (``sys.modules``,
#: ``os.system`` and ``os.popen`` are matched as attributes; ``subprocess`` would run
#: ``python -m helpers.onnx``).
_DYNAMIC = ("__import__", "importlib", "exec", "eval", "compile", "runpy", "globals",
            "__builtins__", "get_ipython", "modules", "subprocess", "system", "popen")


@dataclass
class Verdict:
    """The grader's decision on one test cell."""

    grade_id: str
    passed: bool
    message: str = ""


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _is_test(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution") and cell.cell_type == "code"


def records(nb) -> dict[str, list[dict[str, Any]]]:
    """grade_id of every test cell → the records (``payload``, ``rtol``, ``atol``) made under its
    own grade_id in its outputs."""
    found: dict[str, list[dict[str, Any]]] = {}
    for cell in nb.cells:
        if not _is_test(cell):
            continue
        grade_id = _grade_id(cell)
        found[grade_id] = []
        for out in cell.get("outputs", []):
            data = out.get("data", {}) if out.get("output_type") in (
                "display_data", "execute_result") else {}
            rec = data.get(RECORD_MIME)
            if isinstance(rec, dict) and rec.get("grade_id") == grade_id and "payload" in rec:
                found[grade_id].append(json.loads(json.dumps(rec)))  # plain dicts and lists
    return found


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


def _names(tree: ast.AST) -> set[str]:
    """Bare names, imported names and ``modules`` of ``x.modules`` (not other attributes: a
    method such as ``runner.train()`` is the library's, not the course's ``train``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and (node.attr in ("modules", "system", "popen")
                                                  or node.attr in _DUNDERS):
            names.add(node.attr)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            names.update(a.name for a in node.names)
    return names


def delegations(source: str, grade_id: str) -> list[str]:
    """What in answer cell `source` (task `grade_id`) reaches into the course's code."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # it cannot run either: the probe records nothing
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "helpers"
                                                for a in node.names):
            found.append("imports helpers")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "helpers":
            found.append(f"imports from {node.module}")
    names = _names(tree)
    found += [f"uses {n}" for n in (*_DYNAMIC, *_DUNDERS) if n in names]
    found += [f"uses the course's {n}" for n in FORBIDDEN.get(grade_id, ()) if n in names]
    return found


def _answers_before(nb) -> dict[str, list[tuple[str, str]]]:
    """test grade_id → [(answer grade_id, source)] of the answer cells since the last test."""
    pending: list[tuple[str, str]] = []
    out: dict[str, list[tuple[str, str]]] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            pending.append((meta.get("grade_id"), cell.source))
        elif _is_test(cell):
            out[_grade_id(cell)] = pending
            pending = []
    return out


def _tolerance(rec: dict[str, Any], key: str) -> float:
    value = rec.get(key, 1e-6)
    return float(value) if type(value) in (int, float) and value >= 0 else 1e-6


def verdicts(graded, truth) -> list[Verdict]:
    """The verdict on every test cell of the autograded notebook `graded` against `truth`.

    `truth` is the instructor notebook executed in a clean kernel; every test cell must have
    recorded exactly one payload there, or the hidden test is broken (a RuntimeError for the
    teacher). The tolerance for numbers is the truth record's.
    """
    want, got = records(truth), records(graded)
    broken = sorted(g for g, p in want.items() if len(p) != 1)
    if broken:
        raise RuntimeError(f"the instructor notebook recorded no single truth for {broken}: "
                           "its hidden tests must call record(grade_id, payload) once")
    answers = _answers_before(graded)
    result = []
    for grade_id, (truth_record,) in want.items():
        mine = got.get(grade_id, [])
        reached = [f"{a}: {d}" for a, src in answers.get(grade_id, [])
                   for d in delegations(src, a)]
        rtol, atol = _tolerance(truth_record, "rtol"), _tolerance(truth_record, "atol")
        if reached:
            result.append(Verdict(grade_id, False, "delegates to the course's code ("
                                  + "; ".join(reached) + ")"))
        elif len(mine) != 1:
            result.append(Verdict(grade_id, False, "no answer recorded" if not mine else
                                  f"{len(mine)} records instead of one"))
        elif not same(mine[0]["payload"], truth_record["payload"], rtol, atol):
            result.append(Verdict(grade_id, False, "wrong on the hidden inputs"))
        else:
            result.append(Verdict(grade_id, True))
    return result

