"""Plain data for the grader: what a probe returns leaves the sandbox as JSON, nothing else.

Only ``dict`` (str keys), ``list``, ``str``, ``int``, ``float``, ``bool`` and ``None`` pass, by
their exact type: an object that merely claims to equal something is refused. :func:`plain`
turns numpy values, tuples and mappings into those; :func:`digest` stands for a large exact
array. This module runs inside the grading sandbox (teacher/kit/harness.py) and imports nothing
of the course.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["plain", "digest", "check_plain"]

_SCALARS = (str, int, float, bool, type(None))


def check_plain(value: Any, where: str = "payload") -> None:
    """Raise TypeError unless `value` is plain data (see the module's docstring)."""
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind in (list, tuple):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{where}: keys must be str, not {type(key).__name__}")
            check_plain(item, f"{where}[{key!r}]")
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
