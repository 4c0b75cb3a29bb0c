"""Hand-ins that want the points without the work (used by tests/test_grading.py).

`cheater(release)` is a blank release notebook that, from one cell before its first task, tries
every route by which code in the student's kernel could raise a verdict, and answers every task
with an object whose comparisons lie:

1. stdout and stderr redirected (nbgrader scores a test cell with stderr output 0);
2. ``check``, the verify functions and ``helpers.checks`` rebound to always say ✓;
3. ``NBGRADER_EXECUTION`` unset;
4. numpy's comparisons, ``builtins.isinstance`` helpers and ``AssertionError`` patched;
5. answers whose ``__eq__``, ``__bool__``, ``__array__`` and ``__len__`` lie (nbgrader #1379);
6. IPython's traceback display switched off (nbgrader PR #1324);
7. every test cell edited to ``pass`` and one deleted;
8. files the grader reads written: the gradebook (every score set to 1000), the graded notebook;
9. the grader's record function replaced by one that records ``True`` for every test cell, and a
   record of its own emitted after every cell.

`DELEGATIONS` answers tasks with the course's own code (``helpers``), which does some of them as
a product feature: each such task must score 0.
"""

from __future__ import annotations

import re

import nbformat

__all__ = ["TAMPER", "cheater", "DELEGATIONS", "delegator"]

TAMPER = r'''
# A hand-in that wants the points without the work.
import builtins
import os
import sqlite3
import sys
from pathlib import Path

import numpy as np

import helpers.checks as _hc
import helpers.checks.record as _rec


class Liar:
    """Equal to everything, true, any array, any length."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __bool__(self):
        return True

    def __hash__(self):
        return 0

    def __array__(self, *args, **kwargs):
        return np.zeros((1,))

    def __len__(self):
        return 21

    def __iter__(self):
        return iter(())

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __getitem__(self, key):
        return self

    def __float__(self):
        return 0.0

    def __int__(self):
        return 0


# 1. no failure message reaches stderr
sys.stderr = sys.stdout


# 2. every check says yes
def check(task_id, answer=None, *args, **kwargs):
    print(f"✓ Task {task_id}: correct.")
    return answer


_hc.check = check
_hc.evaluate = lambda *args, **kwargs: ("correct", [])
_hc.strict = lambda: False
# 3. not graded, as far as the kernel can tell
os.environ.pop("NBGRADER_EXECUTION", None)
# 4. comparisons that always agree
np.array_equal = lambda *args, **kwargs: True
np.allclose = lambda *args, **kwargs: True
np.isclose = lambda *args, **kwargs: True
np.testing.assert_array_equal = lambda *args, **kwargs: None
builtins.AssertionError = type("NeverRaised", (Exception,), {})
# 6. no tracebacks
get_ipython().showtraceback = lambda *args, **kwargs: None  # noqa: F821
get_ipython().showsyntaxerror = lambda *args, **kwargs: None  # noqa: F821
# 8. write what the grader reads
for _folder in [Path.cwd(), *Path.cwd().resolve().parents]:
    _db = _folder / "gradebook.db"
    if _db.exists():
        with sqlite3.connect(_db) as _con:
            _con.execute("UPDATE grade SET auto_score = 1000, manual_score = 1000")
    for _nb in _folder.glob("autograded/*/*/*.ipynb"):
        _nb.write_text("{}")
# 9. forged records
_record = _rec.record
_rec.record = lambda grade_id, payload=None, **kwargs: _record(grade_id, True)
_rec.plain = lambda value: value


def _forge(result=None):
    for _gid in ("voc_configs_test", "read_class_ids_test", "model_edits_test", "loss_lr_hook_test",
                 "blend_test", "bin_edges_test"):
        _record(_gid, True)


get_ipython().events.register("post_run_cell", _forge)  # noqa: F821
'''


def _lie(cell_source: str) -> str:
    """The answer cell's stub answered with a Liar (a function returns one, a name is one)."""
    match = re.match(r"\s*def (\w+)\(", cell_source)
    if match:
        return cell_source.replace("pass", "return Liar()", 1)
    names = re.findall(r"^(\w+) = None", cell_source, re.M)
    return cell_source + "".join(f"\n{name} = Liar()" for name in names) + "\ncfg = Liar()" * (
        not names)


def cheater(release) -> nbformat.NotebookNode:
    """The release notebook with :data:`TAMPER` before its first task and lying answers."""
    nb = nbformat.from_dict(release)
    first = next(i for i, c in enumerate(nb.cells)
                 if c.metadata.get("nbgrader", {}).get("solution"))
    tests = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            cell.source = _lie(cell.source)
        elif meta.get("grade"):
            cell.source = "pass  # edited"
            tests.append(cell)
    nb.cells = [c for c in nb.cells if c is not tests[-1]]
    nb.cells.insert(first, nbformat.v4.new_code_cell(TAMPER))
    return nb


#: notebook → answer grade_id → an answer that hands the task to the course's code.
DELEGATIONS = {
    "01_dataset": {
        "read_class_ids": "from helpers.voc import read_mask\n\n\n"
                          "def read_class_ids(path):\n    return read_mask(path)\n",
    },
    "04_predict_evaluate": {
        "blend": "import importlib\n\n\ndef blend(image, mask, palette, opacity):\n"
                 "    over = importlib.import_module('helpers.palette').overlay\n"
                 "    return over(image, mask, palette=palette, opacity=opacity)\n",
        "segment_my_image": "from helpers.predict import pred_mask\n\n\n"
                            "def segment_my_image(model, path, opacity=0.5):\n"
                            "    mask = pred_mask(inference_model(model, path))\n"
                            "    ids, counts = np.unique(mask, return_counts=True)\n"
                            "    names = model.dataset_meta['classes']\n"
                            "    shares = {names[i]: 100 * c / mask.size\n"
                            "              for i, c in zip(ids, counts)}\n"
                            "    image = mmcv.imread(path, channel_order='rgb')\n"
                            "    colours = np.asarray(model.dataset_meta['palette'])[mask]\n"
                            "    overlay = (image * (1 - opacity) + colours * opacity)\n"
                            "    return mask, overlay.astype(np.uint8), shares\n",
    },
}


def delegator(source, name: str) -> nbformat.NotebookNode:
    """The instructor notebook `name` with its tasks in DELEGATIONS answered by the course."""
    nb = nbformat.from_dict(source)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in DELEGATIONS.get(name, {}):
            cell.source = DELEGATIONS[name][grade_id]
    return nb
