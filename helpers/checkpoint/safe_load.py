"""Read one checkpoint file with ``weights_only=True`` and the OpenMMLab allowlist (notebook 03)."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from helpers.checkpoint.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
    _one_line,
)

__all__ = ["ALLOWED_GLOBALS", "load_checkpoint"]


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """The only ``getattr`` a checkpoint may call: a statistics method of ``HistoryBuffer``.

    mmengine's ``MessageHub`` state holds ``HistoryBuffer`` objects whose
    ``_statistics_methods`` dict stores functions such as ``HistoryBuffer.min``; pickle saves a
    function defined in a class as ``getattr(HistoryBuffer, "min")``. The builtin ``getattr``
    would let a pickle walk from any allowed object to anything reachable through attributes
    (``__globals__``, modules, ...). This replacement, bound to the pickle name
    ``builtins.getattr``, answers only for that class and its registered method names; the
    functions it returns are never called while unpickling (only allowlisted callables are).
    """
    # the four built in (HistoryBuffer fills _statistics_methods only when first instantiated)
    # and any registered with HistoryBuffer.register_statistics
    allowed = {"min", "max", "current", "mean", *HistoryBuffer._statistics_methods}
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f"refused getattr({obj!r}, {name!r}): a checkpoint may only fetch HistoryBuffer's "
        "statistics methods this way"
    )


_multiarray = np._core.multiarray
ALLOWED_GLOBALS: list[Any] = [
    # MessageHub state in mmengine checkpoints (resume information: losses, lr, metrics).
    # BUILD may set any attribute of a HistoryBuffer: data only, none of its methods runs.
    HistoryBuffer,
    (_history_buffer_getattr, "builtins.getattr"),
    # NumPy arrays and scalars inside HistoryBuffer and meta. The pickle may CALL these four:
    # np.dtype(spec) builds a dtype from a spec made of allowed objects (strings, numbers,
    # containers) - any dtype, the object dtype "O" included; _reconstruct(ndarray, shape, dtype)
    # makes an array; scalar(dtype, data) makes a NumPy scalar; ndarray.__setstate__ (BUILD)
    # fills an array from bytes, or, for the object dtype, from a list. None of them imports a
    # module or calls a function it is given, so every item an object array can hold is one the
    # same restricted unpickler already built. What they can do is allocate: a crafted shape
    # asks for any amount of memory, which load_checkpoint reports as a CheckpointError.
    np.ndarray,
    np.dtype,
    # BUILD sets a dtype's pickled state (byte order, flags) only on these numeric dtype
    # classes; a pickled object dtype is refused there.
    *sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdFD"}, key=lambda t: t.__name__),
    (_multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
    (_multiarray.scalar, "numpy._core.multiarray.scalar"),
    # the same two under NumPy 1.x's module name (checkpoints saved before NumPy 2)
    (_multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    (_multiarray.scalar, "numpy.core.multiarray.scalar"),
]
"""Globals a checkpoint may reference beyond torch's defaults (tensors, containers)."""

_CALLS = {"OBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4"}  # call what earlier instructions named
_CODE_ERRORS = re.compile(r"GLOBAL|reduce for|create new object|Can only build|refused getattr")
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_OPCODES = {op.code.encode("latin-1")[0]: op.name for op in pickletools.opcodes}


def _unpickler_reason(message: str) -> str:
    """The informative part of torch's weights_only error (it opens with generic advice)."""
    _, found, detail = message.partition("WeightsUnpickler error:")
    detail = detail.split("Check the documentation")[0] if found else message
    detail = re.sub(r"Unsupported operand (\d+)", lambda m: "unsupported pickle instruction "
                    f"{_OPCODES.get(int(m.group(1)), m.group(1))}", detail)
    return " ".join(detail.split()) or "unpickling error"


def _code_references(path: Path) -> list[str]:
    """What the file's pickles import beyond the allowlist, read with ``pickletools`` (a static
    disassembly: nothing runs). Finds what torch's unpickler may not reach, e.g. a protocol-4
    pickle, which it stops reading at its first FRAME instruction."""
    allowed = {g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__name__}"
               for g in ALLOWED_GLOBALS}
    allowed |= set(getattr(torch._weights_only_unpickler, "_get_allowed_globals", dict)())
    found: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                pickles = [archive.read(i) for i in archive.infolist()
                           if i.filename.endswith(".pkl") and i.file_size < 1 << 28]
        else:
            pickles = [path.read_bytes()]
    except (OSError, zipfile.BadZipFile):
        return found
    for data in pickles:
        stream, strings = io.BytesIO(data), [""]
        try:
            while stream.tell() < len(data):  # a legacy file holds several pickles in a row
                for op, arg, _ in pickletools.genops(stream):
                    strings += [arg] if isinstance(arg, str) else []
                    if op.name in ("GLOBAL", "INST"):  # "module name"; protocol 2 says
                        module, name = arg.split(" ", 1)  # __builtin__ for builtins
                        found.append(f"{_PY2_MODULES.get(module, module)}.{name}")
                    elif op.name == "STACK_GLOBAL":
                        found.append(".".join(strings[-2:]))
                    elif op.name in _CALLS:
                        found.append(f"pickle instruction {op.name}")
        except Exception:  # noqa: BLE001 - the raw tensor bytes after the pickles, or damage
            pass
    return sorted(set(found) - allowed)


def _not_a_checkpoint(path: Path, detail: str) -> CheckpointError:
    """Name what the file holds instead of a checkpoint (an error page, nothing, damage)."""
    with path.open("rb") as f:
        head = f.read(512).lstrip().lower()
    if not head:
        what = "is empty (an interrupted download?)"
    elif head.startswith(b"<"):
        what = "is an HTML/XML page, not a checkpoint (an error page saved by a failed download?)"
    else:
        what = (f"is not a loadable checkpoint ({detail}): it is truncated, damaged, or was not "
                "written by torch.save")
    return CheckpointError(f"{path} {what}. Download it again, or train it again with notebook 03.")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint file with ``weights_only=True`` and the OpenMMLab allowlist.

    Raises:
        CheckpointNotFoundError: no such file (the message says how to make one).
        UnsafeCheckpointError: the file references code or objects outside
            ``ALLOWED_GLOBALS``; nothing from it was executed.
        CheckpointError: the file is not a checkpoint (an HTML page, empty, truncated, crafted
            data that fails to load, or a pickle that does not hold a dict).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"checkpoint {path} not found. Train one with notebook 03 (or `python -m "
            "helpers.train --config FILE`); find it with helpers.checkpoint.find_checkpoint.")
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason, refs = _unpickler_reason(str(err)), _code_references(path)
        if not refs and not _CODE_ERRORS.search(reason):
            raise _not_a_checkpoint(path, reason) from None
        raise UnsafeCheckpointError(
            f"{path}: REFUSED to load - it references Python code or objects outside the "
            f"allowlist of weights and OpenMMLab metadata ({', '.join(refs[:5]) or reason[:300]})."
            " Nothing from it was executed. Only load checkpoints from a source you trust."
        ) from None
    except Exception as err:  # anything a damaged or crafted file raises (MemoryError too)
        raise _not_a_checkpoint(path, f"{type(err).__name__}: {_one_line(err)}") from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict "
                              "(state_dict, meta, ...). Save one with torch.save({'state_dict': "
                              "model.state_dict()}, path) or mmengine's Runner.")
    return ckpt
