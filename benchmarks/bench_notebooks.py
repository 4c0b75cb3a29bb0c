"""Wall time of each notebook as `make test` runs it (SMOKE=1, fresh demo data), repeated.

    .venv/bin/python benchmarks/bench_notebooks.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, emit, summarize


def run_suite(smoke_dir: Path) -> dict[str, float]:
    """One pass over all notebooks in a fresh smoke folder; {notebook: seconds}."""
    shutil.rmtree(smoke_dir, ignore_errors=True)
    env = {**os.environ, "SMOKE": "1", "MPLBACKEND": "Agg",
           "VOC_ROOT": str(smoke_dir / "VOCdevkit" / "VOC2012"),
           "WORK_DIR": str(smoke_dir / "work_dirs" / "pspnet_voc12")}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "times.json"
        subprocess.run([sys.executable, "-m", "helpers.run_notebooks", "--out",
                        str(smoke_dir / "executed"), "--json", str(out)],
                       cwd=ROOT, env=env, check=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one pass instead of --repeats")
    args = parser.parse_args()
    passes = [run_suite(ROOT / "build" / "bench_notebooks") for _ in
              range(1 if args.quick else args.repeats)]
    figures = {f"notebook {name}": summarize([p[name] for p in passes], "s")
               for name in passes[0]}
    figures["notebooks, all together"] = summarize([sum(p.values()) for p in passes], "s")
    emit(figures)


if __name__ == "__main__":
    main()
