"""`make colab-check`: the Colab path, run off Colab, cold and then warm.

Each notebook gets a fresh "runtime", as a notebook opened from a badge does on Colab: a new
virtual environment that sees a base layer standing for Colab's preinstalled packages (torch
2.15.0 CUDA build, numpy, pandas, ... on Python 3.12; see colab_stub/colab_base.txt) through a
``.pth`` file, a new ``content/`` folder, and a kernel whose ``google.colab`` is the stand-in in
tests/colab_stub. The install cell clones a snapshot of ``--repo`` (default: this repository's
committed HEAD) and "Drive" is a local folder (``COURSE_USE_DRIVE=1``).

- cold pass: Drive starts empty; the first notebook builds mmcv and saves its wheel to Drive;
- warm pass: new runtimes again, the wheel is on Drive.

Every notebook in notebooks/ runs top to bottom under SMOKE=1; one whose Colab cell is not yet
the generated install cell gets `helpers.colab.install_cell` in its place. Notebook 00 runs its
install cell a second time at the end (a re-run after a success). Times go to report.json.

    python tests/colab_check.py --base build/colab-check/base --work build/colab-check
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from helpers.colab import install_cell  # noqa: E402  (stdlib only, no stack needed)

STUB = ROOT / "tests" / "colab_stub"
MARK = '"google.colab" in sys.modules'


def new_runtime(folder: Path, base: Path, env: dict[str, str]) -> str:
    """A fresh venv over the base layer, with a kernel spec; returns the kernel's name."""
    shutil.rmtree(folder, ignore_errors=True)
    python = Path(sys._base_executable)
    subprocess.run([str(python), "-m", "venv", str(folder / "venv")], check=True)
    site = next((folder / "venv" / "lib").glob("python3*/site-packages"))
    base_site = next((base / "lib").glob("python3*/site-packages"))
    # addsitedir, not a bare path: the base's own .pth files must work too, as they do on Colab
    # (setuptools' distutils shim: mmengine imports distutils, gone from Python 3.12)
    base_dir = str(base_site.resolve())
    (site / "colab-base.pth").write_text(f"import site; site.addsitedir({base_dir!r})\n")
    spec = folder / "venv" / "share" / "jupyter" / "kernels" / "colab"
    spec.mkdir(parents=True)
    argv = [str(folder / "venv" / "bin" / "python"), "-m", "ipykernel_launcher", "-f",
            "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": "Colab stand-in", "language": "python", "env": env}))
    os.environ["JUPYTER_PATH"] = str(folder / "venv" / "share" / "jupyter")
    (folder / "content").mkdir()
    return "colab"


def prepare(path: Path, rerun_install: bool) -> tuple[nbformat.NotebookNode, int]:
    """The notebook with the generated install cell; index of that cell."""
    nb = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and MARK in c.source)
    if "from helpers.colab import setup" not in nb.cells[index].source:
        nb.cells[index].source = install_cell("https://example.invalid/replaced-by-env")
    if rerun_install:
        nb.cells.append(nbformat.v4.new_code_cell(nb.cells[index].source))
    return nb, index


def run_notebook(path: Path, folder: Path, base: Path, env: dict[str, str],
                 rerun_install: bool) -> dict:
    """Run one notebook in a fresh runtime; its install cell's time, total time, restarts."""
    kernel = new_runtime(folder, base, env)
    times: dict[int, float] = {}
    started: dict[int, float] = {}
    restarts, result = 0, {"notebook": path.name}
    start = time.monotonic()
    while True:
        nb, index = prepare(path, rerun_install)
        client = NotebookClient(
            nb, timeout=3600, kernel_name=kernel,
            resources={"metadata": {"path": str(folder / "content")}},
            on_cell_execute=lambda cell, cell_index: started.__setitem__(cell_index,
                                                                         time.monotonic()),
            on_cell_executed=lambda cell, cell_index, execute_reply: times.__setitem__(
                cell_index, time.monotonic() - started[cell_index]))
        try:
            client.execute()
            result["status"] = "ok"
        except DeadKernelError:  # the install cell restarted the runtime: run it all again
            restarts += 1
            if restarts < 2:
                continue
            result["status"] = "kernel died twice"
        except CellExecutionError as exc:
            result["status"] = f"failed: {str(exc).strip().splitlines()[-1][:300]}"
        break
    out = "".join(o.get("text", "") for o in nb.cells[index].get("outputs", []))
    result.update(setup_s=round(times.get(index, float("nan")), 1),
                  total_s=round(time.monotonic() - start, 1), restarts=restarts,
                  install_log=[line for line in out.splitlines()
                               if re.match(r"(mmcv|Building|Built|Kept|Installing|Colab ready|"
                                           r"Set-up|Course stack|Restarting)", line)])
    if rerun_install:
        result["rerun_s"] = round(times.get(len(nb.cells) - 1, float("nan")), 2)
    nbformat.write(nb, folder / path.name)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="venv of Colab's packages")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--repo", default=ROOT.as_uri(), help="what the install cell clones")
    parser.add_argument("--notebooks", nargs="*", help="names (default: all in notebooks/)")
    parser.add_argument("--notebook-dir", type=Path,
                        help="run the notebooks found here (default: the snapshot's notebooks/)")
    parser.add_argument("--passes", nargs="*", default=["cold", "warm"])
    args = parser.parse_args()
    work = args.work.resolve()
    drive = work / "drive"
    # One snapshot of the course: the notebooks run are the ones the install cell clones.
    snapshot = work / "repo"
    shutil.rmtree(snapshot, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", args.repo, str(snapshot)], check=True)
    source = (args.notebook_dir or snapshot / "notebooks").resolve()
    names = args.notebooks or sorted(p.name for p in source.glob("*.ipynb"))
    report, failed = [], False
    for run in args.passes:
        if run == "cold":
            shutil.rmtree(drive, ignore_errors=True)
        for name in names:
            folder = work / run / name.split("_")[0]
            env = {"PYTHONPATH": str(STUB), "COURSE_REPO_URL": snapshot.as_uri(),
                   "COURSE_DIR": str(folder / "content" / "course"), "COURSE_USE_DRIVE": "1",
                   "COLAB_STUB_DRIVE": str(drive), "SMOKE": "1"}
            row = {"pass": run, **run_notebook(source / name, folder, args.base, env,
                                               rerun_install=name.startswith("00"))}
            failed |= row["status"] != "ok"
            print(json.dumps(row), flush=True)
            report.append(row)
            shutil.rmtree(folder / "venv", ignore_errors=True)  # keep the disk
    (work / "report.json").write_text(json.dumps(report, indent=1))
    print(f"\n{'pass':5} {'notebook':28} {'setup s':>8} {'total s':>8}  status")
    for row in report:
        print(f"{row['pass']:5} {row['notebook']:28} {row['setup_s']:8.1f} {row['total_s']:8.1f}  "
              f"{row['status']}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
