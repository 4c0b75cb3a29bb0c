"""Keep committed notebooks clean: `python -m helpers.notebook_tools check|strip|tasks FOLDER`.

`make test` runs `check` (a committed notebook with outputs fails the tests); `make strip` removes
outputs and execution counts before a commit. `mark_answer`/`mark_test` write the nbgrader
metadata of a task's cells (source/README.md); `tasks` lists the graded cells and their points.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

__all__ = ["notebooks_in", "dirty_cells", "strip_notebook", "mark_answer", "mark_test",
           "graded_cells"]


def notebooks_in(folder: str | Path) -> list[Path]:
    """The course notebooks in `folder`, in lesson order (their `NN_` prefix)."""
    paths = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"No NN_*.ipynb notebooks in {Path(folder).resolve()}")
    return paths


def dirty_cells(path: str | Path) -> list[int]:
    """Indices of code cells that carry outputs or an execution count."""
    nb = nbformat.read(path, as_version=4)
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            and (cell.get("outputs") or cell.get("execution_count") is not None)]


def strip_notebook(path: str | Path) -> bool:
    """Remove outputs and execution counts in place; return whether anything changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
    if changed:
        nbformat.write(nb, path)
    return changed


def mark_answer(cell, grade_id: str) -> None:
    """Make `cell` a task's answer cell (nbgrader: solution, not graded itself, editable)."""
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False,
                                 "grade_id": grade_id, "schema_version": 3}


def mark_test(cell, grade_id: str, points: int) -> None:
    """Make `cell` a task's locked test cell worth `points` (nbgrader: autograded tests)."""
    cell.metadata["nbgrader"] = {"solution": False, "grade": True, "locked": True,
                                 "points": points, "grade_id": grade_id, "schema_version": 3}


def graded_cells(path: str | Path) -> dict[str, int]:
    """The test cells of a notebook, ``{grade_id: points}`` in notebook order."""
    nb = nbformat.read(path, as_version=4)
    meta = [cell.metadata.get("nbgrader", {}) for cell in nb.cells]
    return {m["grade_id"]: m.get("points", 0) for m in meta if m.get("grade")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["check", "strip", "tasks"])
    parser.add_argument("folder", nargs="?", default="notebooks")
    args = parser.parse_args(argv)
    paths = notebooks_in(args.folder)
    if args.action == "tasks":
        for path in paths:
            cells = graded_cells(path)
            print(f"{path.name}: {len(cells)} graded cells, {sum(cells.values())} points "
                  + " ".join(f"{gid}={pts}" for gid, pts in cells.items()))
        return 0
    if args.action == "strip":
        for path in paths:
            if strip_notebook(path):
                print(f"stripped {path}")
        return 0
    dirty = {path: dirty_cells(path) for path in paths}
    dirty = {path: cells for path, cells in dirty.items() if cells}
    for path, cells in dirty.items():
        print(f"{path}: cells {cells} carry outputs; run `make strip` and commit again",
              file=sys.stderr)
    if not dirty:
        print(f"{len(paths)} notebooks, no outputs committed")
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
