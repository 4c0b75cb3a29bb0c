"""The student's JupyterLab, tested (`make lab-check`): Run All on every release notebook in a
real JupyterLab, driven in headless Chromium, as a student clicks it.

`make lab-check` writes the student repository (teacher.release) to ``build/lab-check/student``
and runs this script on it. One JupyterLab server (the course's environment, with the teacher's
nbgrader extensions turned off so the page is the student's) serves that folder; for each
notebook in lesson order a fresh Chromium page opens it, waits for its kernel, runs JupyterLab's
own "Run All Cells" command and waits for the last cell. Then it counts, and fails on any of:

- ``error`` outputs, and code cells that never ran (Run All stops at the first error);
- ``stderr`` outputs (the pink boxes a student reads as "something broke");
- widget errors (a progress bar that did not render: "Error displaying widget", a widget
  output without its view, a widget message in the browser's console);
- page errors (uncaught exceptions in JupyterLab's page).

The browser is Debian's ``chromium`` (or ``--chromium PATH``), driven by Playwright from PyPI
through ``executable_path``: nothing downloads a browser. SMOKE=1 in the environment reaches the
kernels, as with ``make run``. Results: ``build/lab-check/report.json``, the executed notebooks
and a screenshot of each page in the same folder.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

#: Evaluated in the page once the notebook is open: JupyterLab's own Run All, left running.
RUN_ALL = """() => {
  window.__labCheck = {done: false, error: null};
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    () => { window.__labCheck.done = true; },
    (e) => { window.__labCheck.error = String(e); window.__labCheck.done = true; });
}"""

#: Waits until the notebook's kernel is up and idle.
KERNEL_IDLE = """() => {
  const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = nb && nb.sessionContext && nb.sessionContext.session
    && nb.sessionContext.session.kernel;
  return !!(kernel && nb.sessionContext.isReady && kernel.status === 'idle');
}"""

#: What the notebook holds after Run All: the model's outputs and the page's widget errors.
COUNT = """() => {
  const nb = window.jupyterapp.shell.currentWidget;
  const r = {code_cells: 0, ran: 0, errors: [], stderr: [], widget_errors: [], widgets: 0,
             widget_views: 0};
  const text = (t) => (Array.isArray(t) ? t.join('') : String(t || '')).slice(0, 1000);
  nb.content.widgets.forEach((cell, i) => {
    if (cell.model.type !== 'code') return;
    r.code_cells += 1;
    const json = cell.model.toJSON();
    if (json.execution_count !== null && json.execution_count !== undefined) r.ran += 1;
    for (const out of json.outputs) {
      if (out.output_type === 'error')
        r.errors.push({cell: i, text: out.ename + ': ' + out.evalue});
      if (out.output_type === 'stream' && out.name === 'stderr')
        r.stderr.push({cell: i, text: text(out.text)});
      if (out.data && out.data['application/vnd.jupyter.widget-view+json']) r.widgets += 1;
    }
    cell.node.querySelectorAll('.jp-OutputArea-output').forEach((el) => {
      if (el.querySelector('.jupyter-widgets')) r.widget_views += 1;
      if (/Error displaying widget|Error rendering output|Could not render/.test(el.innerText))
        r.widget_errors.push({cell: i, text: el.innerText.slice(0, 300)});
    });
  });
  r.notebook = nb.context.model.toJSON();
  return r;
}"""


def find_chromium(given: str | None) -> str:
    """The Chromium to drive: `given`, else Debian's ``chromium`` on PATH."""
    path = given or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not Path(path).exists():
        raise SystemExit("lab-check needs Chromium: `apt-get install chromium` (Debian, as root), "
                         "or pass --chromium /path/to/chromium (make lab-check CHROMIUM=...)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(work: Path) -> dict[str, str]:
    """Jupyter config and settings folders of this run only: nbgrader's server and lab extensions
    off (the student repository has no nbgrader), every cell in the page (no windowing, so the
    widget views can be counted), no autosave (the executed notebooks land in `work`)."""
    config, settings = work / "jupyter-config", work / "lab-settings"
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    nbgrader = {f"nbgrader.server_extensions.{name}": False for name in
                ("formgrader", "validate_assignment", "assignment_list", "course_list")}
    (config / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": nbgrader}}))
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyter/nbgrader": True}}))
    for plugin, values in {"notebook-extension/tracker": {"windowingMode": "none"},
                           "docmanager-extension/plugin": {"autosave": False},
                           "apputils-extension/notification": {"fetchNews": "false",
                                                               "checkForUpdates": False}}.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return {"JUPYTER_CONFIG_DIR": str(config), "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(work / "lab-workspaces"),
            "JUPYTER_RUNTIME_DIR": str(work / "jupyter-runtime"),
            "JUPYTER_DATA_DIR": str(work / "jupyter-data")}


def start_lab(student: Path, work: Path) -> tuple[subprocess.Popen, str]:
    """A JupyterLab server on `student`, as a student's ``jupyter lab`` there; (process, URL)."""
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, **_settings(work), "PYTHONPATH": str(student)}
    env.pop("MPLBACKEND", None)  # the Makefile's Agg: a student's kernel draws inline
    env.pop("COURSE_CHECKS", None)
    log = (work / "jupyterlab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={student}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.allow_root=True"],
        cwd=student, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        if proc.poll() is not None:
            raise SystemExit(f"JupyterLab exited ({proc.returncode}); see {work}/jupyterlab.log")
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            return proc, f"{base}/lab/tree/notebooks/{{name}}?token={token}&reset"
        except OSError:
            time.sleep(1)
    proc.terminate()
    raise SystemExit(f"JupyterLab did not answer at {base} in 120 s; see {work}/jupyterlab.log")


def run_notebook(browser, url: str, name: str, work: Path, timeout_s: float) -> dict:
    """Open `name` in a fresh page, Run All, wait for the end; what it counted."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page_errors: list[str] = []
    console: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)[:500]))
    page.on("console", lambda msg: console.append(msg.text[:500]) if msg.type == "error" else None)
    start = time.perf_counter()
    try:
        page.goto(url.format(name=name), wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_function(KERNEL_IDLE, timeout=180_000, polling=500)
        if page.locator(".jp-Dialog").count():
            raise RuntimeError("a dialog opened: " + page.locator(".jp-Dialog").inner_text())
        page.evaluate(RUN_ALL)
        page.wait_for_function("() => window.__labCheck.done", timeout=timeout_s * 1000,
                               polling=1000)
        page.wait_for_function(KERNEL_IDLE, timeout=60_000, polling=500)
        page.wait_for_timeout(2000)  # the last outputs and widget views reach the page
        result = page.evaluate(COUNT)
        run_error = page.evaluate("() => window.__labCheck.error")
    except Exception as exc:  # a timeout or a page that never loaded: report it, check the next
        result = {"code_cells": 0, "ran": 0, "errors": [], "stderr": [], "widget_errors": [],
                  "widgets": 0, "widget_views": 0, "notebook": None}
        run_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    result["seconds"] = round(time.perf_counter() - start, 1)
    page.screenshot(path=str(work / f"{Path(name).stem}.png"), full_page=False)
    try:  # the kernel goes with its page: seven idle kernels would hold gigabytes
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    except Exception:  # noqa: BLE001,S110 (a page that never loaded has no kernel to stop)
        pass
    page.close()
    executed = result.pop("notebook")
    if executed:
        (work / name).write_text(json.dumps(executed, indent=1))
    if result["widgets"] > result["widget_views"]:
        result["widget_errors"].append({"cell": None, "text": f"{result['widgets']} widget "
                                        f"outputs, {result['widget_views']} rendered"})
    result["widget_errors"] += [{"cell": None, "text": m.splitlines()[0]} for m in console
                                if "idget" in m]
    result["page_errors"] = page_errors
    result["console_errors"] = console
    result["run_error"] = run_error
    return result


def problems(result: dict) -> list[str]:
    """One line per thing that fails the notebook."""
    found = [f"Run All failed: {result['run_error']}"] if result["run_error"] else []
    if result["ran"] < result["code_cells"]:
        found.append(f"{result['code_cells'] - result['ran']} of {result['code_cells']} code "
                     "cells never ran")
    for kind in ("errors", "stderr", "widget_errors"):
        found += [f"{kind} (cell {e['cell']}): {e['text'].strip()}" for e in result[kind]]
    found += [f"page error: {e}" for e in result["page_errors"]]
    return found


def check_folder(student: Path, work: Path, chromium: str, only: list[str] | None = None,
                 timeout_s: float = 3600) -> dict[str, dict]:
    """Run All on each ``notebooks/NN_*.ipynb`` of `student` in one JupyterLab; the results by
    notebook, each with its ``problems`` (none: it passed)."""
    names = sorted(p.name for p in (student / "notebooks").glob("[0-9][0-9]_*.ipynb")
                   if not only or p.name[:2] in only)
    if not names:
        raise SystemExit(f"no NN_*.ipynb notebooks in {student / 'notebooks'}: run "
                         f"`python -m teacher.release --out {student}` first")
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, dict] = {}
    lab, url = start_lab(student, work)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                         args=["--no-sandbox", "--disable-dev-shm-usage"])
            print(f"JupyterLab in Chromium {browser.version} ({chromium}), SMOKE="
                  f"{os.environ.get('SMOKE', '0')}, notebooks of {student}", flush=True)
            for name in names:
                result = run_notebook(browser, url, name, work, timeout_s)
                report[name] = {**result, "problems": problems(result)}
                mark = "✗" if report[name]["problems"] else "✓"
                print(f"{mark} {name}: {result['ran']}/{result['code_cells']} code cells ran, "
                      f"{len(result['errors'])} errors, {len(result['stderr'])} stderr, "
                      f"{len(result['widget_errors'])} widget errors ({result['widget_views']} "
                      f"widgets shown), {len(result['page_errors'])} page errors, "
                      f"{result['seconds']:.0f} s", flush=True)
                for line in report[name]["problems"]:
                    print(f"    {line[:600]}", flush=True)
            browser.close()
    finally:
        lab.terminate()
        lab.wait(timeout=30)
    return report


#: The self-test's notebooks: one a student would call clean, one with each kind of failure.
SELF_TEST = {
    "00_clean.ipynb": [
        'print("Refusing to overwrite: pass overwrite=True")',
        "from tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"],
    "01_pink.ipynb": [
        'import sys\nprint("error: refusing", file=sys.stderr)',
        "from IPython.display import display\ndisplay({'application/vnd.jupyter.widget-view+json':"
        " {'model_id': 'gone', 'version_major': 2, 'version_minor': 0}}, raw=True)",
        "from IPython.display import Javascript, display\n"
        "display(Javascript('setTimeout(() => { throw new Error(\"lab-check boom\"); })'))",
        'raise KeyError("img")',
        'print("never runs")'],
}


def self_test(work: Path, chromium: str) -> bool:
    """Prove the check fails: the clean notebook passes, the pink one fails for each kind."""
    import nbformat

    student = work / "self-test"
    shutil.rmtree(student, ignore_errors=True)
    (student / "notebooks").mkdir(parents=True)
    for name, sources in SELF_TEST.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                     "language": "python"}
        nbformat.write(nb, student / "notebooks" / name)
    report = check_folder(student, work / "self-test-results", chromium, timeout_s=300)
    pink = report["01_pink.ipynb"]
    wanted = {"a clean notebook passes": not report["00_clean.ipynb"]["problems"],
              "stderr": len(pink["stderr"]) == 1, "error": len(pink["errors"]) == 1,
              "cells after the error never ran": pink["ran"] == 4,
              "widget error": bool(pink["widget_errors"]), "page error": any(
                  "lab-check boom" in e for e in pink["page_errors"])}
    missed = [what for what, ok in wanted.items() if not ok]
    print("self-test: " + (f"missed {', '.join(missed)}" if missed else
                           "the check finds stderr, errors, widget and page errors"))
    return not missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", type=Path, default=Path("build/lab-check/student"),
                        help="the student repository (teacher.release --out)")
    parser.add_argument("--work", type=Path, default=Path("build/lab-check"))
    parser.add_argument("--chromium", help="Chromium's path (default: chromium on PATH)")
    parser.add_argument("--only", nargs="*", help="notebook prefixes, e.g. 00 01")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per notebook")
    parser.add_argument("--self-test", action="store_true",
                        help="first prove on two tiny notebooks that the check can fail")
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    work = args.work.resolve()
    if args.self_test and not self_test(work, chromium):
        return 1
    start = time.perf_counter()
    report = check_folder(args.student.resolve(), work, chromium, args.only, args.timeout)
    total = time.perf_counter() - start
    (work / "report.json").write_text(json.dumps(
        {"seconds": round(total, 1), "smoke": os.environ.get("SMOKE", "0"), "notebooks": report},
        indent=2))
    failed = [name for name, r in report.items() if r["problems"]]
    print(f"{len(report) - len(failed)} passed, {len(failed)} failed in {total:.0f} s "
          f"(report: {work / 'report.json'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
