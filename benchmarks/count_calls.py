"""How much of each lesson is the course's code and how much the libraries it teaches.

    .venv/bin/python benchmarks/count_calls.py [notebooks/]

Counts, with `ast`, the calls in the code cells of each release notebook, leaving out answer
cells, check cells and the Colab install cell. A call counts for **helpers** when its root name
(``f`` in ``f(...)``, ``m`` in ``m.a.b(...)``) was imported from ``helpers``, and for the
**libraries** when it was imported from mmseg, mmengine, mmcv, torch, onnxruntime, onnx or
openvino. Calls on other names (a variable's method, a builtin, numpy) count for neither. The
target: in every notebook (06, the optional one, too) the libraries' count is at least helpers'.
Prints a Markdown table and one `RESULT {json}` line.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import nbformat

LIBRARIES = ("mmseg", "mmengine", "mmcv", "torch", "onnxruntime", "onnx", "openvino")


def _origin(module: str) -> str | None:
    root = module.split(".")[0]
    if root == "helpers":
        return "helpers"
    return "libraries" if root in LIBRARIES else None


def _bindings(trees: list[ast.AST]) -> dict[str, str]:
    """name → "helpers" or "libraries", from every import of the notebook."""
    bound: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if origin := _origin(alias.name):
                        bound[(alias.asname or alias.name).split(".")[0]] = origin
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if origin := _origin(node.module):
                    for alias in node.names:
                        bound[alias.asname or alias.name] = origin
    return bound


def _root(func: ast.AST) -> str | None:
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else None


def _parse(source: str) -> ast.AST | None:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def count(path: Path) -> dict[str, int]:
    """Lesson-cell calls into helpers and into the libraries of one notebook."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    trees = [t for c in code if (t := _parse(c.source)) is not None]
    bound = _bindings(trees)
    counts = {"helpers": 0, "libraries": 0}
    for cell in code:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") or meta.get("grade") or "colab" in cell.metadata.get("tags", []):
            continue
        tree = _parse(cell.source)
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.Call) and (kind := bound.get(_root(node.func) or "")):
                counts[kind] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    folder = Path((argv or sys.argv[1:] or ["notebooks"])[0])
    rows = {p.stem: count(p) for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}
    print("| notebook | helpers | libraries | libraries ≥ helpers |\n|---|---|---|---|")
    for name, c in rows.items():
        print(f"| {name} | {c['helpers']} | {c['libraries']} | "
              f"{'yes' if c['libraries'] >= c['helpers'] else 'no'} |")
    total = {k: sum(c[k] for c in rows.values()) for k in ("helpers", "libraries")}
    print(f"| **total** | **{total['helpers']}** | **{total['libraries']}** | |")
    print("RESULT " + json.dumps({"figures": {f"{n}_{k}": {"median": v, "unit": "calls"}
                                             for n, c in rows.items() for k, v in c.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
