"""Find a run's checkpoint, and build a model from a config and a checkpoint, strictly."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from helpers.checkpoint.errors import CheckpointError

__all__ = ["find_checkpoint", "init_model"]


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


def init_model(config: Any, checkpoint: str | os.PathLike | None = None,
               device: str = "cpu") -> torch.nn.Module:
    """The course's one model loader: build the model once, read the checkpoint once, load strictly.

    Args:
        config: a config file path or an ``mmengine.Config``.
        checkpoint: a file, URL or model-zoo address (read through the safe loaders), or None
            for random weights.
        device: ``"cpu"`` or ``"cuda"``.

    Returns the model in eval mode, with ``dataset_meta`` (classes, palette) from the
    checkpoint's meta, or else from the config's dataset.

    Raises:
        CheckpointError: the file cannot be loaded safely, or its weights do not fit the model
            the config builds (another class count, other layers or shapes).
    """
    from mmseg.apis import init_model as mmseg_init_model

    from helpers.mmseg_configs import load_config

    if isinstance(config, (str, os.PathLike)):
        config = load_config(config)
    ckpt = None
    if checkpoint is not None:
        ckpt = CheckpointLoader.load_checkpoint(str(checkpoint), map_location="cpu")
        if not isinstance(ckpt, dict):  # a loader registered after register_safe_loaders()
            raise CheckpointError(f"{checkpoint} holds a {type(ckpt).__name__}, not a dict.")
    model = mmseg_init_model(config, None, device=device)
    if ckpt is not None:
        _load_strict(model, ckpt, str(checkpoint))
    meta = _dataset_meta(ckpt.get("meta") if ckpt else None, config)
    if meta:
        model.dataset_meta = meta
    return model


def _load_strict(model: torch.nn.Module, ckpt: dict, source: str) -> None:
    """``load_state_dict(strict=True)``, with a clear CheckpointError for each way it fails.

    mmengine's ``load_checkpoint`` only logs mismatches and leaves those layers random, which
    shows up much later as a model that predicts garbage.
    """
    how = "Use the config the checkpoint was trained with (the .py file in its work dir)."
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source} holds no state_dict of tensors (keys: "
                              f"{', '.join(map(str, list(ckpt)[:5]))}). {how}")
    state = {re.sub(r"^module\.", "", k): v for k, v in state.items()}  # as mmengine: DDP prefix
    ours = model.state_dict()
    head = model.decode_head[-1] if isinstance(model.decode_head, torch.nn.ModuleList) \
        else model.decode_head
    seg = state.get("decode_head.conv_seg.weight")
    if seg is not None and seg.ndim and seg.shape[0] != head.num_classes:
        raise CheckpointError(
            f"{source} predicts {seg.shape[0]} classes, but the config builds a model with "
            f"{head.num_classes} classes: the head would stay random. {how}")
    for key in ours:  # BN counters, absent from old releases; unused by mmseg's BN (momentum)
        if key.endswith(".num_batches_tracked"):
            state.setdefault(key, ours[key])
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    other = [k for k in ours if k in state and state[k].shape != ours[k].shape]
    if missing or unexpected or other:
        example = (f"{other[0]}: {tuple(state[other[0]].shape)} in the checkpoint, "
                   f"{tuple(ours[other[0]].shape)} in the model" if other
                   else f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}")
        raise CheckpointError(
            f"{source} does not fit the model the config builds: {len(other)} tensors have "
            f"other shapes, {len(missing)} are missing and {len(unexpected)} are unexpected "
            f"(e.g. {example}). {how}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # what the checks above do not foresee (e.g. a dtype torch refuses)
        raise CheckpointError(f"{source} does not load into the model: {' '.join(str(err).split())}"
                              f". {how}") from err


def _dataset_meta(meta: Any, config: Any) -> dict | None:
    """Classes and palette: the checkpoint's meta (mmengine's or the 2020 releases'), else the
    config's test/val/train dataset (its class's ``METAINFO`` updated by its ``metainfo``)."""
    from mmseg.registry import DATASETS

    meta = meta if isinstance(meta, dict) else {}
    if isinstance(meta.get("dataset_meta"), dict):
        return dict(meta["dataset_meta"])
    if "CLASSES" in meta:
        return {k.lower(): meta[k] for k in ("CLASSES", "PALETTE") if k in meta}
    for loader in ("test_dataloader", "val_dataloader", "train_dataloader"):
        dataset = (config.get(loader) or {}).get("dataset") or {}
        kind = dataset.get("type")
        found = {**getattr(DATASETS.get(kind) if isinstance(kind, str) else None, "METAINFO", {}),
                 **(dataset.get("metainfo") or {})}
        if "classes" in found:
            return {k: found[k] for k in ("classes", "palette") if k in found}
    return None
