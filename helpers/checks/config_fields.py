"""What notebook 02's config checks share: the fields each task edits, the shipped config they
start from, and small readers of config values (:mod:`helpers.checks.config` and
:mod:`helpers.checks.config_data` use them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from helpers.checks import NotAnswered, answered

__all__ = ["CROP", "GROUPS", "SCALE", "base_config"]

#: The top-level config keys each config task edits (``model.data_preprocessor`` is the data
#: task's: it pads batches to the crop).
GROUPS: dict[str, tuple[str, ...]] = {
    "model": ("model", "norm_cfg"),
    "data": ("dataset_type", "data_root", "crop_size", "data_preprocessor", "train_pipeline",
             "test_pipeline", "train_dataloader", "val_dataloader", "test_dataloader"),
    "schedule": ("optimizer", "optim_wrapper", "param_scheduler", "train_cfg", "val_cfg",
                 "test_cfg", "default_hooks", "randomness", "work_dir", "load_from", "resume"),
}

#: What task 2 asks for, as its text states it: the crop and the resize scale (width, height).
CROP = (256, 256)
SCALE = (320, 240)
#: The settings of the shipped training transforms that task 2 changes; the others stay.
_CHANGED = {"RandomResize": ("scale",), "RandomCrop": ("crop_size",)}


def base_config():
    """A fresh copy of the shipped Cityscapes config the tasks start from."""
    from mmengine.config import Config

    from helpers.mmseg_configs import find_config

    return Config.fromfile(str(find_config("pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py")))


def _plain(node: Any) -> Any:
    """A config value as plain dicts and lists (tuples become lists), for comparisons."""
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    return node


def _group(cfg: Any, group: str) -> dict[str, Any]:
    out = {key: _plain(cfg.get(key, "<absent>")) for key in GROUPS[group]}
    model = out.get("model")
    if group == "model" and isinstance(model, dict):
        model.pop("data_preprocessor", None)
    if group == "data":
        out["model.data_preprocessor"] = _plain(cfg.get("model", {}).get("data_preprocessor"))
    return out


def _answered_config(cfg: Any, group: str):
    """`cfg` itself when it is a Config whose `group` fields were edited; else NotAnswered or
    a problem."""
    from mmengine.config import Config

    answered(cfg, "cfg")
    if not isinstance(cfg, Config):
        return None
    if _group(cfg, group) == _group(base_config(), group):
        raise NotAnswered(f"the {group} fields are still Cityscapes'")
    return cfg


def _not_config(cfg: Any) -> list[str]:
    return [f"cfg is a {type(cfg).__name__}, not an mmengine Config: edit the one "
            "Config.fromfile returned"]


def _pair(value: Any) -> tuple | None:
    try:
        return tuple(int(v) for v in value) if len(value) == 2 else None
    except (TypeError, ValueError):
        return None


def _same_path(a: Any, b: Any) -> bool:
    return isinstance(a, str) and os.path.abspath(a) == os.path.abspath(str(b))


def _path_note(key: str, value: Any) -> str:
    if isinstance(value, os.PathLike):
        return (f"`{key}` is a {type(value).__name__}: a config holds plain values, "
                "use str(...)")
    return f"`{key}` = {value!r} is not the folder the task names"
