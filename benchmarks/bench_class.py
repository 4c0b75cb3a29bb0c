"""One class from the LMS download to the LMS import, timed step by step, with the make commands.

    .venv/bin/python benchmarks/bench_class.py [--students 20] [--jobs 2] [--keep DIR]

Builds a class of `--students` from the course's own test hand-ins (tests/tampering.py and
tests/wrong_answers/): students who hand in the solutions, the release untouched, every
plausible wrong answer, correct work with other local names, a cheater, answer cells with their
marks removed, a copy of a classmate's work with names changed and comments removed; one hands in
late, one twice, one forgets a notebook. Two students also hand in a model (random and biased
smoke-preset checkpoints) for the leaderboard. Everything is packed as Canvas's "download all
submissions" zip, then run through the commands a teacher types, under SMOKE=1 on the demo data:

    make collect, make grade (JOBS), make similarity, make leaderboard, make report,
    make regrade (one task of one student), make export (Canvas)

Prints each step's seconds and writes them, with the machine, to benchmarks/results_class.json;
the class report is OUT/feedback/report.html (kept with --keep).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from common import machine  # noqa: E402

KINDS = ("solution", "solution", "wrong", "innocent", "blank", "solution", "copy", "wrong",
         "solution", "unmarked", "innocent", "cheater", "solution", "wrong", "blank", "solution",
         "innocent", "wrong", "solution", "copy")


def _graded_notebooks() -> list[str]:
    from teacher import tasks

    return sorted(p.stem for p in (ROOT / "source" / "voc").glob("[0-9][0-9]_*.ipynb")
                  if tasks.points(json.loads(p.read_text())))


def _disguised(nb):
    """A classmate's work copied with its names changed and its comments removed."""
    import nbformat

    nb = nbformat.from_dict(copy.deepcopy(nb))
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            lines = [line for line in cell.source.splitlines() if not line.lstrip().startswith("#")]
            text = "\n".join(line.split("  #")[0] for line in lines)
            cell.source = re.sub(r"\bcfg\b", "conf", re.sub(r"\bmodel\b", "net", text))
    return nb


def build_class(students: int, base: Path, notebooks: list[str]) -> Path:
    """The Canvas zip of the class; returns its path."""
    import nbformat
    from tampering import cheater, innocent, unmarked

    folder = base / "canvas"
    folder.mkdir(parents=True)
    made: dict[str, dict] = {}
    for k in range(students):
        kind = KINDS[k % len(KINDS)]
        name = f"student{k:02d}"
        made[name] = {}
        for nb_name in notebooks:
            source = nbformat.read(ROOT / "source" / "voc" / f"{nb_name}.ipynb", as_version=4)
            release = nbformat.read(ROOT / "notebooks" / f"{nb_name}.ipynb", as_version=4)
            wrong = runpy.run_path(str(ROOT / "tests" / "wrong_answers" / f"{nb_name}.py"))
            if kind == "solution":
                nb = source
            elif kind == "blank":
                nb = release
            elif kind == "innocent":
                nb = innocent(source)
            elif kind == "unmarked":
                nb = unmarked(source)
            elif kind == "cheater":
                nb = cheater(release, str(base / "planted-code-ran.txt"), str(ROOT))
            elif kind == "copy":
                nb = _disguised(made["student03"][nb_name] if "student03" in made else source)
            else:  # wrong: every plausible wrong answer of the notebook
                nb = nbformat.from_dict(copy.deepcopy(source))
                for cell in nb.cells:
                    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                    if grade_id in wrong["WRONG_ANSWERS"]:
                        cell.source = wrong["WRONG_ANSWERS"][grade_id].strip("\n")
            made[name][nb_name] = nb
            if k == 2 and nb_name == notebooks[-1]:
                continue  # forgot one
            late = "_LATE" if k == 4 else ""
            again = "-1" if k == 5 else ""
            file = f"{name}{late}_{1000 + k}_{5000 + k}_{nb_name}{again}.ipynb"
            nbformat.write(nb, folder / file)
            if again:  # the first try, older
                first = folder / f"{name}_{1000 + k}_{4000 + k}_{nb_name}.ipynb"
                nbformat.write(release, first)
                os.utime(first, (time.time() - 3600, time.time() - 3600))
    archive = base / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.iterdir()):
            z.write(path, path.name)
    return archive


def checkpoints(submitted: Path, base: Path) -> None:
    """Two students' models: a random smoke-preset model and the same one biased to background."""
    import torch
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu
    from mmseg.apis import init_model

    from helpers.config import build_config
    from helpers.voc import CLASSES

    cfg = build_config("smoke", os.environ["VOC_ROOT"], base / "work_dir")
    torch.manual_seed(0)
    state = weights_to_cpu(init_model(cfg, None, device="cpu").state_dict())
    biased = {k: v.clone() for k, v in state.items()}
    biased["decode_head.conv_seg.bias"][0] += 20.0
    meta = dict(cfg=cfg.pretty_text, dataset_meta=dict(classes=CLASSES))
    for student, weights in (("student00", state), ("student01", biased)):
        save_checkpoint(dict(meta=meta, state_dict=weights),
                        str(submitted / student / "checkpoint.pth"))


def make(target: str, **variables: str) -> float:
    began = time.monotonic()
    args = ["make", "-s", target] + [f"{k}={v}" for k, v in variables.items()]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", help="keep the class folder here")
    args = parser.parse_args(argv)
    base = Path(args.keep or tempfile.mkdtemp(prefix="bench-class-")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    os.environ.update(SMOKE="1", VOC_ROOT=str(base / "VOCdevkit" / "VOC2012"),
                      WORK_DIR=str(base / "work_dirs"))
    from helpers.demo_data import ensure_dataset

    ensure_dataset(os.environ["VOC_ROOT"])
    notebooks = _graded_notebooks()
    archive = build_class(args.students, base, notebooks)
    submitted, out = base / "submitted", base / "out"
    steps = {}
    steps["collect"] = make("collect", FROM=archive, SUBMITTED=submitted)
    checkpoints(submitted, base)
    steps["grade"] = make("grade", SUBMITTED=submitted, OUT=out / "grades.csv",
                          COURSE=base / "course", JOBS=args.jobs)
    steps["similarity"] = make("similarity", SUBMITTED=submitted, OUT=out / "similarity.html")
    steps["leaderboard"] = make("leaderboard-data", HIDDEN=base / "hidden", HIDDEN_IMAGES=20)
    steps["leaderboard"] += make("leaderboard", SUBMITTED=submitted, OUT=out / "leaderboard.html",
                                HIDDEN=base / "hidden", SCRATCH=base / "lb-scratch")
    steps["report"] = make("report", FEEDBACK=out / "feedback", OUT=out / "report.html",
                           GRADES=out / "grades.csv", SIMILARITY=out / "similarity.json",
                           LEADERBOARD=out / "leaderboard.html.json")
    steps["regrade one task"] = make("regrade", SUBMITTED=submitted, OUT=out / "grades.csv",
                                     COURSE=base / "course", STUDENT="student07",
                                     NOTEBOOK="02_config", TASK="final_lr")
    steps["export"] = make("export", GRADES=out / "grades.csv", FORMAT="canvas",
                           OUT=out / "canvas.csv")
    result = dict(date=time.strftime("%Y-%m-%d"), machine=machine(), students=args.students,
                  notebooks=notebooks, jobs=args.jobs, seconds=steps,
                  hand_ins=sum(1 for _ in submitted.glob("*/*.ipynb")))
    (HERE / "results_class.json").write_text(json.dumps(result, indent=2))
    for step, seconds in steps.items():
        print(f"{step:<18} {seconds:7.1f} s")
    print(f"class report: {out / 'report.html'}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    print("RESULT " + json.dumps({"figures": {
        f"{k.replace(' ', '_')}_s": {"median": v, "unit": "s"} for k, v in steps.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
