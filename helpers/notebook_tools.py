"""Keep committed notebooks clean: `python -m helpers.notebook_tools check|strip notebooks/`.

`make test` runs `check` (a committed notebook with outputs fails the tests); `make strip` removes
outputs and execution counts before a commit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

__all__ = ["notebooks_in", "dirty_cells", "strip_notebook"]


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["check", "strip"])
    parser.add_argument("folder", nargs="?", default="notebooks")
    args = parser.parse_args(argv)
    paths = notebooks_in(args.folder)
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
