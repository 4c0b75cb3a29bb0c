"""A clean Run All: nbval fails a notebook cell that shows a pink box (``pytest -p nbval_stderr``).

JupyterLab draws a cell's ``stderr`` stream and its ``error`` outputs in pink, and a student reads
pink as "something broke". nbval itself fails a cell that raises, but not one that writes to
``sys.stderr`` (a Python warning, a library's log line, ``print(..., file=sys.stderr)``), nor one
tagged ``raises-exception``. With this plugin, after nbval has run a cell, the cell fails when
its outputs hold an ``error`` or any ``stderr`` text that :data:`ALLOWED` does not cover, and the
report shows that text.

``make test`` runs the release notebooks' nbval pass with it (``PYTHONPATH`` names this folder:
the plugin is the teacher's, it does not ship to students). tests/test_stderr.py proves it
fails and passes what it should.
"""

from __future__ import annotations

import re

import pytest

#: stderr text that is allowed, each with why it cannot be avoided and is harmless for a student.
#: Keep this short: a new entry hides a pink box from the test, not from the student.
ALLOWED: tuple[tuple[str, str], ...] = (
)
_ALLOWED = [re.compile(pattern, re.MULTILINE) for pattern, _ in ALLOWED]


def pink(outputs: list[dict]) -> list[str]:
    """The texts of `outputs` (nbformat outputs of one cell) that JupyterLab shows in pink: each
    error's name and value, and each stderr stream less what :data:`ALLOWED` covers."""
    found = []
    for out in outputs:
        if out.get("output_type") == "error":
            found.append(f"error output: {out.get('ename')}: {out.get('evalue')}")
        elif out.get("output_type") == "stream" and out.get("name") == "stderr":
            text = out.get("text", "")
            for pattern in _ALLOWED:
                text = pattern.sub("", text)
            if text.strip():
                found.append(f"stderr: {text.strip()}")
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """After nbval ran a cell (an item with ``test_outputs``), fail it on :func:`pink`'s finds."""
    result = yield
    outputs = getattr(item, "test_outputs", None)
    found = pink(outputs) if outputs and hasattr(item, "raise_cell_error") else []
    if found:
        item.raise_cell_error(
            "Cell shows a pink box (stderr or an error) in a clean Run All: print a deliberate "
            "message to stdout, silence or fix a library's warning, or add it to ALLOWED in "
            "tests/plugins/nbval_stderr.py with the reason", "\n".join(found))
    return result
