"""Reading configs side by side: diffs, flattened differences, the preset table (notebook 02).

Generic tools for any two mmengine ``Config`` objects, plus the two views notebook 02 shows:
which differences from mmseg's own VOC recipe are not explained by ``OFFICIAL_DIFFERENCES``,
and a pandas table of the knobs that tell the presets apart.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmengine.config import Config

from helpers.config.build import build_config
from helpers.config.presets import OFFICIAL_CONFIG, OFFICIAL_DIFFERENCES, PRESETS, RECIPES
from helpers.mmseg_configs import find_config

__all__ = [
    "config_diff",
    "config_differences",
    "flatten_config",
    "preset_table",
    "unexplained_official_differences",
]


def config_diff(base: Config, new: Config, context: int = 1,
                labels: tuple[str, str] = ("base", "new")) -> str:
    """A unified diff of two configs' ``pretty_text`` (what changed, in config syntax)."""
    lines = difflib.unified_diff(
        base.pretty_text.splitlines(), new.pretty_text.splitlines(),
        fromfile=labels[0], tofile=labels[1], n=context, lineterm="",
    )
    return "\n".join(lines)


def flatten_config(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model.decode_head.num_classes": 21, "train_pipeline[2].scale": (320, 240), ...}``."""
    if isinstance(node, Config):
        node = node.to_dict()
    items: dict[str, Any] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            items.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(node, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in node):
        for i, value in enumerate(node):
            items.update(flatten_config(value, f"{prefix}[{i}]"))
    else:
        items[prefix] = list(node) if isinstance(node, tuple) else node
    return items


def config_differences(a: Config, b: Config) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between two configs: key -> (value in a, value in b).

    A field present in only one config shows ``"<absent>"`` on the other side.
    """
    fa, fb = flatten_config(a), flatten_config(b)
    absent = "<absent>"
    return {
        key: (fa.get(key, absent), fb.get(key, absent))
        for key in sorted(fa.keys() | fb.keys())
        if fa.get(key, absent) != fb.get(key, absent)
    }


def unexplained_official_differences(cfg: Config) -> dict[str, tuple[Any, Any]]:
    """Differences between ``cfg`` and ``OFFICIAL_CONFIG`` not covered by OFFICIAL_DIFFERENCES."""
    official = Config.fromfile(str(find_config(OFFICIAL_CONFIG)))
    patterns = [re.compile(p) for p in OFFICIAL_DIFFERENCES]
    return {
        key: values
        for key, values in config_differences(cfg, official).items()
        if not any(p.fullmatch(key) for p in patterns)
    }


def preset_table(voc_root: str | Path, work_dir: str | Path,
                 presets: Sequence[str] = PRESETS):
    """A pandas table of the knobs that tell the presets apart (notebook 02)."""
    import pandas as pd

    rows = {}
    for name in presets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = build_config(name, voc_root, work_dir, load_from=None)
        rows[name] = {
            "backbone": f"ResNet-{cfg.model.backbone.depth}"
                        f" (width {cfg.model.backbone.get('base_channels', 64)})",
            "crop": tuple(cfg.crop_size),
            "batch": cfg.train_dataloader.batch_size,
            "lr": cfg.optim_wrapper.optimizer.lr,
            "max_iters": cfg.train_cfg.max_iters,
            "val_interval": cfg.train_cfg.val_interval,
            "PolyLR end": cfg.param_scheduler[0].end,
            "load_from": "Cityscapes PSPNet" if RECIPES[name].load_from else "-",
            "ImageNet backbone": bool(cfg.model.get("pretrained")),
        }
    return pd.DataFrame(rows).T
