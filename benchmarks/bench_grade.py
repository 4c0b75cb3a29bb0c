"""How fast `make grade` grades a class, and what the sandbox costs.

    .venv/bin/python benchmarks/bench_grade.py [--students 3] [--notebooks 00_environment,...]

Hands in the instructor notebooks (solutions: every probe runs) for `--students` students and
grades them three times, under SMOKE=1 on a fresh demo dataset: sandboxed with JOBS=1, sandboxed
with JOBS=2, and with UNSAFE_NO_SANDBOX=1 and JOBS=1. It measures

- hand-ins per hour in each run, from the time of the hand-in phase alone (the course, the
  truths and the JOBS grading servers, which the truths start and the hand-ins then reuse, are
  made once per grading run, whatever the class size);
- the JOBS=2 / JOBS=1 speed-up, and that all three runs give the same grades;
- the peak memory of a sandboxed kernel (all its processes, RSS, the watchdog's largest reading);
- the sandbox's overhead, paired: a sandboxed and an unsandboxed grading server, both started and
  warmed up, grade the same solution hand-in of each notebook one after the other, `--rounds`
  times, the order swapped every round (so that the machine's drift over minutes, which the
  three whole runs above suffer one after the other, falls on both alike). Per notebook: the
  median over rounds of sandboxed / unsandboxed seconds, minus one; in all: the sum of the
  sandboxed medians over the sum of the unsandboxed ones, minus one. Beside it, the grader's
  own CPU seconds per hand-in in each mode (the sandbox's watchdog polls /proc in the grader).

The projection of a class of 1,000 students × 6 notebooks uses the model

    time = truths + hand-ins × (time per hand-in at JOBS=1) / (workers × efficiency)

with efficiency = speed-up at JOBS=2 / 2, measured here; workers = 16 on one 16-core machine
(128 GB: 16 × MEM_LIMIT 6G fit), 160 on 10 such nodes (Dask). Per-hand-in time comes from the
notebooks graded here; `--notebooks` should cover all six for a projection of all six.
Writes benchmarks/results_grade.json and the grading section of benchmarks/RESULTS.md, and prints
one `RESULT {json}` line (see common.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import machine  # noqa: E402
from report import GRADE_END, GRADE_START, grading_section  # noqa: E402

CLASS, NOTEBOOKS, NODES, CORES = 1000, 6, 10, 16


def _run(submitted: Path, base: Path, label: str, jobs: int, sandboxed: bool,
         notebooks: list[str]) -> dict:
    from teacher import grading

    source = base / "source"
    if not source.exists():
        source.mkdir()
        for name in notebooks:
            shutil.copyfile(HERE.parent / "source" / "voc" / f"{name}.ipynb",
                            source / f"{name}.ipynb")
    os.environ["WORK_DIR"] = str(base / f"work-{label}")
    began = time.monotonic()
    results = grading.grade(submitted, base / f"{label}.csv", source=source,
                            course=base / f"course-{label}", jobs=jobs, use_sandbox=sandboxed,
                            cell_timeout=900, notebook_timeout=1800)
    wall = time.monotonic() - began
    handed = [r for r in results if r.message != "not handed in"]
    phase = grading.LAST_RUN["hand_ins"]
    per_notebook = {}
    for r in handed:
        per_notebook.setdefault(r.notebook, []).append(r.seconds)
    return dict(label=label, jobs=jobs, sandboxed=sandboxed, hand_ins=len(handed), wall_s=wall,
                sandbox_s_per_notebook={n: sum(v) / len(v)
                                        for n, v in sorted(per_notebook.items())},
                truths_s=grading.LAST_RUN["truths"], hand_in_phase_s=phase,
                per_hour=3600 * len(handed) / phase, seconds_per_hand_in=phase / len(handed),
                peak_memory_mb=max((r.peak_memory for r in handed), default=0) / 2**20,
                scores={f"{r.student}/{r.notebook}": r.score for r in results},
                full_marks=all(r.score == r.max_score for r in handed))


def paired(notebooks: list[str], base: Path, rounds: int) -> dict:
    """The sandbox's overhead measured pairwise (see the module's docstring)."""
    import statistics

    from teacher import grading, sandbox, tasks

    voc_root = os.environ["VOC_ROOT"]
    made = grading.fixtures(notebooks, base / "course-jobs1" / "fixtures", voc_root)
    answers = {n: tasks.solutions(json.loads((HERE.parent / "source" / "voc" /
                                              f"{n}.ipynb").read_text())) for n in notebooks}
    threads = os.cpu_count() or 1
    servers = {mode: tasks.server(notebooks, folder=base / f"paired-{mode}", voc_root=voc_root,
                                  fixtures=[made[n] for n in notebooks],
                                  use_sandbox=mode == "sandboxed", limits=sandbox.Limits(),
                                  threads=threads) for mode in ("sandboxed", "unsafe")}
    seconds = {mode: {n: [] for n in notebooks} for mode in servers}
    cpu = {mode: 0.0 for mode in servers}

    def one(mode: str, name: str) -> float:
        wall, own = time.monotonic(), time.process_time()
        results, why, _ = tasks.run(name, answers[name], folder=base / "paired", voc_root=voc_root,
                                    fixtures=made[name], use_sandbox=mode == "sandboxed",
                                    threads=threads, session=servers[mode])
        if why or len(results) != len(tasks.module(name).TASKS):
            raise RuntimeError(f"{mode} {name}: {why or 'a task sent no result'}")
        cpu[mode] += time.process_time() - own
        return time.monotonic() - wall

    try:
        for mode in servers:  # start the servers, import the libraries, warm the caches
            for name in notebooks:
                one(mode, name)
        cpu.update(dict.fromkeys(cpu, 0.0))  # the warm-up's CPU does not count
        for k in range(rounds):
            order = ("sandboxed", "unsafe") if k % 2 == 0 else ("unsafe", "sandboxed")
            for name in notebooks:
                for mode in order:
                    seconds[mode][name].append(one(mode, name))
    finally:
        for session in servers.values():
            session.close()
    per_notebook = {n: statistics.median(a / b for a, b in zip(
        seconds["sandboxed"][n], seconds["unsafe"][n], strict=True)) - 1 for n in notebooks}
    medians = {mode: {n: statistics.median(v) for n, v in per.items()}
               for mode, per in seconds.items()}
    return dict(rounds=rounds, seconds=seconds, medians=medians, per_notebook=per_notebook,
                overhead=sum(medians["sandboxed"].values()) / sum(medians["unsafe"].values()) - 1,
                grader_cpu_s_per_hand_in={m: c / (rounds * len(notebooks))
                                          for m, c in cpu.items()})


def project(runs: dict[str, dict], pairs: dict | None = None) -> dict:
    """The model of the module's docstring, from the three runs (and the sandbox's overhead
    from the paired rounds, when given)."""
    one, two = runs["jobs1"], runs["jobs2"]
    speedup = two["per_hour"] / one["per_hour"]
    efficiency = min(1.0, speedup / 2)
    per_hand_in = one["seconds_per_hand_in"]
    hand_ins = CLASS * NOTEBOOKS
    machine_s = one["truths_s"] + hand_ins * per_hand_in / (CORES * efficiency)
    cluster_s = one["truths_s"] + hand_ins * per_hand_in / (NODES * CORES * efficiency)
    return dict(speedup=speedup, efficiency=efficiency,
                sandbox_overhead=pairs["overhead"] if pairs else None,
                sandbox_overhead_runs=one["seconds_per_hand_in"] / runs["unsafe"][
                    "seconds_per_hand_in"] - 1,
                same_grades=one["scores"] == two["scores"] == runs["unsafe"]["scores"],
                class_hand_ins=hand_ins, one_machine_h=machine_s / 3600,
                cluster_h=cluster_s / 3600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=3)
    parser.add_argument("--notebooks", default="00_environment,01_dataset,02_config,"
                        "03_training,04_predict_evaluate,05_onnx")
    parser.add_argument("--rounds", type=int, default=5,
                        help="paired rounds for the sandbox's overhead (0: skip)")
    parser.add_argument("--keep", help="keep the work folders here")
    args = parser.parse_args(argv)
    notebooks = args.notebooks.split(",")
    base = Path(args.keep or tempfile.mkdtemp(prefix="bench-grade-"))
    base.mkdir(parents=True, exist_ok=True)
    os.environ.update(SMOKE="1", VOC_ROOT=str(base / "VOCdevkit" / "VOC2012"))
    submitted = base / "submitted"
    for k in range(args.students):
        (submitted / f"student{k}").mkdir(parents=True, exist_ok=True)
        for name in notebooks:
            shutil.copyfile(HERE.parent / "source" / "voc" / f"{name}.ipynb",
                            submitted / f"student{k}" / f"{name}.ipynb")
    runs = {}
    for label, jobs, sandboxed in (("jobs1", 1, True), ("jobs2", 2, True),
                                   ("unsafe", 1, False)):
        runs[label] = _run(submitted, base, label, jobs, sandboxed, notebooks)
        print(f"{label}: {runs[label]['per_hour']:.0f} hand-ins/hour, "
              f"{runs[label]['seconds_per_hand_in']:.1f} s each, truths "
              f"{runs[label]['truths_s']:.0f} s; one hand-in's sandbox, per notebook: " + ", ".join(
                  f"{n} {s:.1f} s" for n, s in runs[label]["sandbox_s_per_notebook"].items()),
              flush=True)
    pairs = paired(notebooks, base, args.rounds) if args.rounds else None
    if pairs:
        print("sandbox overhead, paired, per notebook: " + ", ".join(
            f"{n} {v:+.1%}" for n, v in pairs["per_notebook"].items()) + f"; in all "
            f"{pairs['overhead']:+.1%}; the grader's own CPU per hand-in: " + ", ".join(
                f"{m} {c:.2f} s" for m, c in pairs["grader_cpu_s_per_hand_in"].items()),
            flush=True)
    result = dict(date=time.strftime("%Y-%m-%d"), machine=machine(), notebooks=notebooks,
                  students=args.students, runs=runs, paired=pairs,
                  projection=project(runs, pairs))
    (HERE / "results_grade.json").write_text(json.dumps(result, indent=2))
    page = HERE / "RESULTS.md"
    text = page.read_text() if page.exists() else ""
    section = "\n".join(grading_section(result))
    if GRADE_START in text:
        text = text[:text.index(GRADE_START)] + section + text[text.index(GRADE_END) +
                                                                len(GRADE_END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    page.write_text(text)
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    p = result["projection"]
    overhead = "not measured" if p["sandbox_overhead"] is None else \
        f"{p['sandbox_overhead']:+.1%} paired"
    print(f"JOBS=2 / JOBS=1: {p['speedup']:.2f}x; sandbox overhead {overhead} "
          f"({p['sandbox_overhead_runs']:+.1%} between whole runs); "
          f"same grades: {p['same_grades']}; 1,000 students x 6 notebooks: "
          f"{p['one_machine_h']:.1f} h on one 16-core machine, {p['cluster_h']:.2f} h on 10 nodes")
    print("RESULT " + json.dumps({"figures": {
        "jobs2_speedup": {"median": p["speedup"], "unit": "x"},
        "sandbox_overhead": {"median": p["sandbox_overhead"] if pairs else
                             p["sandbox_overhead_runs"], "unit": "fraction"},
        "cluster_hours": {"median": p["cluster_h"], "unit": "h"}}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
