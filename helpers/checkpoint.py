"""Load checkpoints safely: the one loader every checkpoint in the course goes through.

Introduced in notebook 03. A ``.pth`` file is a pickle, and unpickling can call any Python
function, so a checkpoint from the internet can run code on your machine. torch >= 2.6 loads
with ``weights_only=True`` by default: only tensors and plain containers, plus the globals one
explicitly allows. mmengine 0.10.7 calls ``torch.load`` without that argument, so loading its
own checkpoints fails on the few non-tensor objects they hold (``HistoryBuffer``, NumPy
arrays). The usual workaround, ``weights_only=False`` (or ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``),
makes every pickle executable again.

Here we keep ``weights_only=True`` and allow exactly the globals OpenMMLab checkpoints need
(``ALLOWED_GLOBALS``). Importing this module registers the loader with mmengine's
``CheckpointLoader`` for local paths and http(s) URLs, so ``Runner`` (``load_from``, ``resume``),
``mmseg.apis.init_model`` and ``mmengine.runner.load_checkpoint`` all use it. Configs written by
``helpers.config`` import it through ``custom_imports``, so mmseg's ``tools/train.py`` does too.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    "ALLOWED_GLOBALS",
    "CheckpointError",
    "UnsafeCheckpointError",
    "find_checkpoint",
    "init_model",
    "load_checkpoint",
]


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file and the fix."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint would run code (or build objects we do not allow) when loaded."""


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """The only ``getattr`` a checkpoint may call: a statistics method of ``HistoryBuffer``.

    mmengine's ``MessageHub`` state holds ``HistoryBuffer`` objects whose
    ``_statistics_methods`` dict stores functions such as ``HistoryBuffer.min``; pickle saves a
    function defined in a class as ``getattr(HistoryBuffer, "min")``. Allowing the builtin
    ``getattr`` itself would let a pickle walk from any allowed object to anything reachable
    through attributes (``__globals__``, ``__class__``, modules, ...). This replacement is
    bound to the pickle name ``builtins.getattr`` and answers only for that one class and its
    registered method names; the functions it returns are never called while unpickling
    (torch's unpickler calls only allowlisted callables).
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
    # MessageHub state in mmengine checkpoints (resume information: losses, lr, metrics)
    HistoryBuffer,
    (_history_buffer_getattr, "builtins.getattr"),
    # NumPy arrays and scalars inside HistoryBuffer and meta (plain data, no code):
    # ndarray/dtype rebuild from bytes + shape + dtype code; `scalar` from dtype + bytes.
    np.ndarray,
    np.dtype,
    # BUILD sets a dtype's state on its concrete class: numeric ones only (no object dtype,
    # whose arrays could carry arbitrary objects)
    *sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdFD"}, key=lambda t: t.__name__),
    (_multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
    (_multiarray.scalar, "numpy._core.multiarray.scalar"),
    # the same two under NumPy 1.x's module name (checkpoints saved before NumPy 2)
    (_multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    (_multiarray.scalar, "numpy.core.multiarray.scalar"),
]
"""Globals a checkpoint may reference beyond torch's defaults (tensors, containers)."""


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` and the OpenMMLab allowlist.

    Raises:
        FileNotFoundError: no such file (the message says how to make one).
        UnsafeCheckpointError: the file would run code or build objects outside
            ``ALLOWED_GLOBALS``; nothing from it was executed.
        CheckpointError: the file is not a checkpoint torch can read.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} not found. Train one with notebook 03 (or `python -m "
            "helpers.train --config FILE`); find it with helpers.checkpoint.find_checkpoint."
        )
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = _unpickler_reason(str(err))
        raise UnsafeCheckpointError(
            f"{path}: REFUSED to load - it references Python objects outside the allowlist of "
            f"weights and OpenMMLab metadata ({reason}). Unpickling it could run arbitrary "
            "code, so nothing from it was executed. Only load checkpoints from a source you "
            "trust; inspect it with torch.serialization.get_unsafe_globals_in_checkpoint()."
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({err}). Is the file complete? "
            "Download or train it again."
        ) from err


def _unpickler_reason(message: str) -> str:
    """The informative part of torch's weights_only error (it opens with generic advice)."""
    _, found, detail = message.partition("WeightsUnpickler error:")
    detail = detail.split("Check the documentation")[0] if found else message
    return " ".join(detail.split()) or "unpickling error"


def _load_from_local_safe(filename: str, map_location: Any = None) -> dict:
    """mmengine scheme ``''`` (local files): :func:`load_checkpoint`."""
    return load_checkpoint(filename, map_location)


def _load_from_http_safe(filename: str, map_location: Any = None) -> dict:
    """mmengine schemes ``http(s)://``: download once into torch's hub cache, then load safely.

    As mmengine's own http loader: rank 0 downloads, the other ranks wait for it.
    """
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(filename.split("?")[0]).name
    rank, world_size = get_dist_info()
    if rank == 0 and not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(filename, str(cached))
    if world_size > 1:
        torch.distributed.barrier()
    return load_checkpoint(cached, map_location)


# mmengine prints "Loads checkpoint by <name[10:]> backend": name them load_from_*.
_load_from_local_safe.__name__ = "load_from_local(safe)"
_load_from_http_safe.__name__ = "load_from_http(safe)"
CheckpointLoader.register_scheme(prefixes="", loader=_load_from_local_safe, force=True)
CheckpointLoader.register_scheme(
    prefixes=("http://", "https://"), loader=_load_from_http_safe, force=True
)


def find_checkpoint(work_dir: str | os.PathLike, which: str = "best") -> Path:
    """The best-mIoU (``"best"``) or the latest (``"last"``) checkpoint of a training run."""
    work_dir = Path(work_dir)
    how = ("Run notebook 03 first (or `python -m helpers.train --config "
           f"{work_dir}/pspnet_voc12.py`) to train a model into {work_dir}.")
    if which not in ("best", "last"):
        raise ValueError(f"which={which!r}: choose 'best' or 'last'.")
    if not work_dir.is_dir():
        raise FileNotFoundError(f"work dir {work_dir} does not exist. {how}")
    if which == "best":
        found = sorted(work_dir.glob("best_*.pth"), key=lambda p: p.stat().st_mtime)
    else:
        pointer = work_dir / "last_checkpoint"  # written by mmengine's CheckpointHook
        named = Path(pointer.read_text().strip()) if pointer.is_file() else None
        found = [named] if named and named.is_file() else sorted(
            work_dir.glob("iter_*.pth"), key=lambda p: int(p.stem.split("_")[1]))
    if not found:
        raise FileNotFoundError(f"no {which} checkpoint in {work_dir}. {how}")
    return found[-1]


def _num_classes(config: Any) -> int | None:
    head = config.model.get("decode_head")
    head = head[-1] if isinstance(head, (list, tuple)) else head
    return None if head is None else head.get("num_classes")


def init_model(config: Any, checkpoint: str | os.PathLike | None = None,
               device: str = "cpu") -> torch.nn.Module:
    """mmseg's ``init_model`` through the safe loader, refusing a checkpoint of another task.

    Args:
        config: a config file path or an ``mmengine.Config``.
        checkpoint: a checkpoint file, or None for random weights.
        device: ``"cpu"`` or ``"cuda"``.

    Raises:
        CheckpointError: the checkpoint's decode head predicts a different number of classes
            than the config (loading it would silently keep a random head).
    """
    from mmseg.apis import init_model as mmseg_init_model

    from helpers.config import load_config

    if isinstance(config, (str, os.PathLike)):
        config = load_config(config)
    if checkpoint is None:
        return mmseg_init_model(config, None, device=device)
    checkpoint = Path(checkpoint)
    raw = load_checkpoint(checkpoint)
    state = raw.get("state_dict", raw)
    seg = state.get("decode_head.conv_seg.weight")
    expected = _num_classes(config)
    if seg is not None and expected is not None and seg.shape[0] != expected:
        raise CheckpointError(
            f"{checkpoint} predicts {seg.shape[0]} classes, but the config builds a model "
            f"with {expected} classes: the head would stay random. Use the config the "
            "checkpoint was trained with (the .py file in its work dir)."
        )
    if "meta" not in raw:  # mmseg's init_model reads checkpoint["meta"] unconditionally
        raise CheckpointError(
            f"{checkpoint} has no 'meta' entry (a bare state_dict?), which mmseg's init_model "
            "needs. Re-save it as torch.save({'state_dict': weights, 'meta': {}}, path), or "
            "use a checkpoint written by mmengine's Runner."
        )
    model = mmseg_init_model(config, str(checkpoint), device=device)
    _check_fits(model, state, checkpoint)
    return model


def _check_fits(model: torch.nn.Module, weights: dict, checkpoint: Path) -> None:
    """Refuse a checkpoint of another architecture: mmengine only logs such mismatches and
    leaves those layers random, which shows up much later as a model that predicts garbage."""
    ours = model.state_dict()
    missing = [k for k in ours if k not in weights]
    other = [k for k, v in ours.items()
             if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    if missing or other:
        example = (f"{other[0]}: {tuple(weights[other[0]].shape)} in the checkpoint, "
                   f"{tuple(ours[other[0]].shape)} in the model" if other else missing[0])
        raise CheckpointError(
            f"{checkpoint} does not fit the model the config builds: {len(other)} tensors have "
            f"other shapes and {len(missing)} are missing (e.g. {example}). Use the config the "
            "checkpoint was trained with (the .py file in its work dir)."
        )
