"""Try a notebook's tasks: `python -m teacher.tasks NN_name [--no-sandbox]`.

Runs the harness on the instructor's solutions (the truths), the release's blank answers and
each plausible wrong answer of ``tests/wrong_answers/NN_name.py``, and prints every task's
points and message: what a teacher writing a task reads before `make grade`.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
import time
from pathlib import Path

from helpers.demo_data import ensure_dataset
from helpers.env import repo_root
from teacher import tasks
from teacher.verdicts import check_truths, verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook")
    parser.add_argument("--no-sandbox", action="store_true")
    args = parser.parse_args(argv)
    root = repo_root()
    name, mod = args.notebook, tasks.module(args.notebook)
    voc_root = str(Path(os.environ.get("VOC_ROOT", root / "data/VOCdevkit/VOC2012")).resolve())
    ensure_dataset(voc_root)
    source = json.loads((root / "source" / "voc" / f"{name}.ipynb").read_text())
    release = json.loads((root / "notebooks" / f"{name}.ipynb").read_text())
    wrong = runpy.run_path(str(root / "tests" / "wrong_answers" / f"{name}.py"))["WRONG_ANSWERS"]
    solutions = tasks.solutions(source)
    with tempfile.TemporaryDirectory() as tmp:
        fixtures = Path(tmp, "fixtures")
        fixtures.mkdir()
        began = time.monotonic()
        if hasattr(mod, "fixtures"):
            mod.fixtures(fixtures, voc_root)
        print(f"fixtures {time.monotonic() - began:.1f} s")

        def run(label: str, answers: dict[str, str]) -> dict:
            began = time.monotonic()
            out, limit, peak = tasks.run(name, answers, folder=Path(tmp, label),
                                         voc_root=voc_root, fixtures=str(fixtures),
                                         use_sandbox=not args.no_sandbox)
            print(f"--- {label}: {time.monotonic() - began:.1f} s, peak {peak >> 20} MiB "
                  f"{limit}")
            return out

        truths = run("solutions", solutions)
        check_truths(truths, mod)
        for label, answers in [("solutions", solutions), ("blank", tasks.answer_cells(release))] \
                + [(f"wrong {g}", dict(solutions, **{g: w})) for g, w in wrong.items()]:
            got = truths if label == "solutions" else run(label, answers)
            for v in verdicts(got, truths, mod, answers):
                print(f"  {v.task:<18} {v.points:g}/{v.max_points:g}  {v.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
