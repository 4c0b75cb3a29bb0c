"""Hand a task's outputs to the grader as plain data: ``record(grade_id, payload)``.

The teacher's hidden tests call the student's code on inputs the student has never seen and pass
what it returned to :func:`record`. It shows the payload as one output of the test cell, under the
MIME type :data:`RECORD_MIME`, as JSON. The grader reads it from the graded notebook and compares
it, in its own process, with what the instructor's solution recorded in a clean kernel. Nothing
in this module decides a grade: it only turns values into JSON.

Only ``dict`` (str keys), ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool`` and ``None``
pass, by their exact type: an object that merely claims to equal something is refused. Use
:func:`plain` for numpy values and :func:`digest` for large exact arrays.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["RECORD_MIME", "record", "plain", "digest"]

#: The MIME type of a recorded payload in a test cell's outputs.
RECORD_MIME = "application/vnd.voc-course.record+json"

_SCALARS = (str, int, float, bool, type(None))


def _check(value: Any, where: str = "payload") -> None:
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind in (list, tuple):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{where}: keys must be str, not {type(key).__name__}")
            _check(item, f"{where}[{key!r}]")
        return
    raise TypeError(f"{where}: {kind.__name__} is not plain data (use plain() or digest())")


def plain(value: Any, *, opaque: bool = False) -> Any:
    """`value` as plain data: numpy arrays and scalars become lists and Python numbers, mappings
    (a config's ConfigDict too) dicts with str keys, tuples lists.

    NaN and infinities become the strings ``"nan"``, ``"inf"`` and ``"-inf"`` (JSON has none).
    Any other object raises TypeError, or with `opaque` becomes ``"<TypeName>"``.
    """
    import numpy as np

    if isinstance(value, np.ndarray):
        return plain(value.tolist(), opaque=opaque)
    if isinstance(value, np.generic):
        return plain(value.item(), opaque=opaque)
    if isinstance(value, list | tuple):
        return [plain(v, opaque=opaque) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v, opaque=opaque) for k, v in value.items()}
    if type(value) is float and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if type(value) in _SCALARS:
        return value
    if opaque:
        return f"<{type(value).__name__}>"
    raise TypeError(f"{type(value).__name__} is not plain data")


def digest(array: Any) -> dict[str, Any]:
    """dtype, shape and SHA-256 of an exact array (masks, class ids), for large outputs."""
    import numpy as np

    a = np.ascontiguousarray(np.asarray(array))
    if a.dtype.hasobject:
        raise TypeError(f"digest: an array of Python objects ({a.dtype}) is not plain data")
    return {"dtype": str(a.dtype), "shape": list(a.shape),
            "sha256": hashlib.sha256(a.tobytes()).hexdigest()}


def record(grade_id: str, payload: Any, *, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    """Show `payload` as this test cell's record for the grader (JSON under RECORD_MIME).

    `rtol` and `atol` are how far a number may be from the truth's; the grader takes them from
    the instructor notebook's record, never from a hand-in's.
    """
    from IPython.display import display

    _check(payload)
    text = json.dumps({"grade_id": grade_id, "payload": payload, "rtol": float(rtol),
                       "atol": float(atol)}, allow_nan=False)
    display({RECORD_MIME: json.loads(text), "text/plain": f"recorded for grading: {grade_id}"},
            raw=True)
