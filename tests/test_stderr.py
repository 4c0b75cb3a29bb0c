"""The clean-Run-All check (tests/plugins/nbval_stderr.py) fails what a student would see as a
pink box and passes the rest: tiny notebooks run by nbval in a real kernel, with and without the
plugin, as ``make test`` runs the release notebooks."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

PLUGINS = Path(__file__).parent / "plugins"
sys.path.insert(0, str(PLUGINS))
import nbval_stderr  # noqa: E402

#: One notebook's cells, each with what the plugin reports for it (None: it passes).
CELLS = [
    ('print("hello")', None),
    ('import sys\nsys.stderr.write("Refusing to write predictions\\n")',
     "stderr: Refusing to write predictions"),
    ('import sys\nprint("Refusing to write predictions: pass overwrite=True", file=sys.stdout)',
     None),
    ('import warnings\nwarnings.warn("this API is deprecated")',
     "UserWarning: this API is deprecated"),
    ('import warnings\nwith warnings.catch_warnings():\n    warnings.simplefilter("ignore")\n'
     '    warnings.warn("silenced")', None),
    ('import logging\nlogging.getLogger("lib").warning("careful")', "stderr: careful"),
    ('raise ValueError("a deliberate refusal")',  # tagged raises-exception below
     "error output: ValueError: a deliberate refusal"),
    ('import warnings\nwarnings.warn("old style", FutureWarning)', None),  # allowed: CONFTEST
    ('import warnings\nwarnings.warn("new style", FutureWarning)', "FutureWarning: new style"),
    ('"the end"', None),
]

#: The tiny notebook's folder gets an allowlist entry for one warning, as ALLOWED would hold it.
CONFTEST = '''import re

import nbval_stderr

nbval_stderr._ALLOWED.append(re.compile(r"^.*: FutureWarning: old style\\n(?:  .*\\n)?", re.M))
'''


def _nbval(folder: Path, *plugin: str) -> list[str]:
    """Run nbval over the notebook in `folder`; per cell "passed" or the failure's text."""
    report = folder / "report.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get(
        "PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                    "-p", "no:cacheprovider", "--color=no", *plugin, f"--junitxml={report}",
                    "-q", "."], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    verdicts = []
    for case in ET.parse(report).getroot().iter("testcase"):
        failure = case.find("failure")
        verdicts.append("passed" if failure is None
                        else failure.get("message", "") + (failure.text or ""))
    return verdicts


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stderr_notebook")
    cells = [nbformat.v4.new_code_cell(source) for source, _ in CELLS]
    cells[6].metadata["tags"] = ["raises-exception"]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), folder / "pink.ipynb")
    (folder / "conftest.py").write_text(CONFTEST)
    return folder


def test_the_plugin_fails_every_pink_box_and_names_it(notebooks):
    verdicts = _nbval(notebooks, "-p", "nbval_stderr")
    assert len(verdicts) == len(CELLS)
    for (source, expected), verdict in zip(CELLS, verdicts, strict=True):
        if expected is None:
            assert verdict == "passed", (source, verdict)
        else:
            assert "Cell shows a pink box" in verdict and expected in verdict, (source, verdict)


def test_nbval_alone_passes_them(notebooks):
    """Without the plugin nbval lets stderr and a tagged exception through: the plugin is what
    fails them above."""
    assert _nbval(notebooks) == ["passed"] * len(CELLS)


def test_the_allowlist_removes_only_what_it_names(monkeypatch):
    monkeypatch.setattr(nbval_stderr, "_ALLOWED", [nbval_stderr.re.compile(
        r"^.*: FutureWarning: old style\n(?:  .*\n)?", nbval_stderr.re.MULTILINE)])
    allowed = "/lib/x.py:3: FutureWarning: old style\n  import x\n"
    stream = {"output_type": "stream", "name": "stderr"}
    assert nbval_stderr.pink([{**stream, "text": allowed}]) == []
    assert nbval_stderr.pink([{**stream, "text": allowed + "Traceback: boom\n"}]) == \
        ["stderr: Traceback: boom"]
    assert nbval_stderr.pink([{"output_type": "stream", "name": "stdout", "text": "x"}]) == []


def test_every_allowed_entry_says_why():
    for pattern, why in nbval_stderr.ALLOWED:
        nbval_stderr.re.compile(pattern)
        assert len(why) > 20, pattern
