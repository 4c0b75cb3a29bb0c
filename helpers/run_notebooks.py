"""Run every course notebook top to bottom, in order: `make run` (the course's main job).

Executed copies (with their outputs and figures) land in `build/notebooks/`; the notebooks in
`notebooks/` stay clean. When no real VOC2012 exists at `VOC_ROOT`, notebook 01 creates the
synthetic demo dataset there and says so. Wall times are printed per notebook and can be written
as JSON for the benchmarks (`--json FILE`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from helpers.env import repo_root
from helpers.notebook_tools import notebooks_in

__all__ = ["run_notebook", "run_all"]


def run_notebook(path: Path, out_dir: Path, timeout: int = 3600) -> float:
    """Execute one notebook into `out_dir` (kernel started in `notebooks/`); return seconds."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / path.name)
    return time.perf_counter() - start


def run_all(folder: Path, out_dir: Path, only: list[str] | None = None) -> dict[str, float]:
    """Run the notebooks of `folder` in lesson order; stop at the first failing one."""
    times: dict[str, float] = {}
    for path in notebooks_in(folder):
        if only and not any(path.name.startswith(prefix) for prefix in only):
            continue
        print(f"▶ {path.name} ...", flush=True)
        try:
            times[path.name] = run_notebook(path, out_dir)
        except CellExecutionError as exc:
            print(f"✗ {path.name} failed; the executed copy with the error is "
                  f"{out_dir / path.name}\n{exc}", file=sys.stderr)
            raise SystemExit(1) from None
        print(f"✓ {path.name}: {times[path.name]:.1f} s", flush=True)
    print(f"all {len(times)} notebooks: {sum(times.values()):.1f} s "
          f"(SMOKE={os.environ.get('SMOKE', '0')})")
    return times


def main(argv: list[str] | None = None) -> int:
    root = repo_root()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=root / "notebooks")
    parser.add_argument("--out", type=Path, default=root / "build" / "notebooks")
    parser.add_argument("--only", nargs="*", help="notebook prefixes to run, e.g. 00 01")
    parser.add_argument("--json", type=Path, help="write {notebook: seconds} to this file")
    args = parser.parse_args(argv)
    times = run_all(args.notebooks, args.out, args.only)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(times, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
