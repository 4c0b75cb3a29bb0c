"""Checks of notebook 02's tasks: the edits that turn mmseg's Cityscapes PSPNet config into the
homework's VOC config (model, data, schedule), and the learning rate the schedule ends with.

A config task is graded field by field: the student's config is flattened
(`helpers.config.flatten_config`) and compared, within the task's group of fields, with the one
the course's builder makes (`helpers.config.build_config("seed", ...)`, the reference). Every
wrong, missing or extra field is named with the student's value, never the expected one. A group
that still equals the shipped Cityscapes config is "not answered". The last learning rate is
checked against mmengine's own ``PolyLR``, stepped iteration by iteration.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Callable
from typing import Any

from helpers.checks import NotAnswered, answered

__all__ = [
    "GROUPS",
    "reference_config",
    "base_config",
    "group_of",
    "group_differences",
    "edits_verifier",
    "with_reference_edits",
    "final_lr_reference",
    "final_lr_verifier",
]

#: The top-level config keys each config task edits; ``model.data_preprocessor`` belongs to the
#: data task (it pads batches to the crop). Other keys (``custom_imports``, ``default_scope``,
#: the visualizer ...) are the course's.
GROUPS: dict[str, tuple[str, ...]] = {
    "model": ("model", "norm_cfg"),
    "data": ("dataset_type", "data_root", "crop_size", "data_preprocessor", "train_pipeline",
             "test_pipeline", "train_dataloader", "val_dataloader", "test_dataloader"),
    "schedule": ("optimizer", "optim_wrapper", "param_scheduler", "train_cfg", "val_cfg",
                 "test_cfg", "default_hooks", "randomness", "work_dir", "load_from", "resume"),
}

# A field that is a copy of another once the file is loaded: `Config.fromfile` resolves every
# `crop_size` or `train_pipeline` inside the dicts that use them, so changing the original later
# changes nothing else. (copy prefix, original prefix, what to say)
_COPIES = (
    (r"model\.(backbone|decode_head|auxiliary_head)\.norm_cfg\.", "norm_cfg.",
     "the heads and the backbone hold their own copy of norm_cfg"),
    (r"train_dataloader\.dataset\.pipeline\[", "train_pipeline[",
     "train_dataloader.dataset.pipeline is a copy of train_pipeline made when the file was "
     "loaded: set it too"),
    (r"(val|test)_dataloader\.dataset\.pipeline\[", "test_pipeline[",
     "val_dataloader.dataset.pipeline (and test_...) are copies of test_pipeline made when the "
     "file was loaded: set them too"),
    (r"(model\.)?data_preprocessor\.size", "crop_size",
     "data_preprocessor.size (at the top and inside model) is a copy of crop_size: set both"),
    (r"train_pipeline\[\d+\]\.crop_size", "crop_size",
     "RandomCrop's crop_size in the pipeline is a copy of crop_size"),
    (r"optim_wrapper\.optimizer\.lr", "optimizer.lr",
     "optim_wrapper.optimizer is a copy of optimizer: set the lr in both"),
)
_PATH_KEYS = re.compile(r"(.*\.)?(data_root|work_dir|load_from)")
_ABSENT = "<absent>"
_MAX_LINES = 12


def reference_config(voc_root: str | os.PathLike, work_dir: str | os.PathLike,
                     load_from: str | os.PathLike | None = None):
    """The homework's VOC config as the course builds it: ``build_config("seed", ...)``."""
    from helpers.config import build_config

    return build_config("seed", voc_root, work_dir,
                        load_from=str(load_from) if load_from else None)


def base_config():
    """A fresh copy of the shipped Cityscapes config the tasks start from."""
    from mmengine.config import Config

    from helpers.config import BASE_CONFIG, find_config

    return Config.fromfile(str(find_config(BASE_CONFIG)))


def group_of(key: str) -> str | None:
    """The task a flattened config key (``"train_pipeline[2].scale"``) belongs to, or None."""
    if key.startswith("model.data_preprocessor."):
        return "data"
    top = re.split(r"[.\[]", key, maxsplit=1)[0]
    return next((group for group, tops in GROUPS.items() if top in tops), None)


def _flat(cfg: Any, group: str) -> dict[str, Any]:
    from helpers.config import flatten_config

    flat = {}
    for key, value in flatten_config(cfg).items():
        if group_of(key) != group:
            continue
        if isinstance(value, str) and _PATH_KEYS.fullmatch(key):
            value = os.path.normpath(value)
        flat[key] = value
    return flat


def group_differences(cfg: Any, reference: Any, group: str) -> dict[str, tuple[Any, Any]]:
    """Fields of `group` whose values differ: key -> (value in cfg, value in reference)."""
    mine, ref = _flat(cfg, group), _flat(reference, group)
    return {key: (mine.get(key, _ABSENT), ref.get(key, _ABSENT))
            for key in sorted(mine.keys() | ref.keys())
            if mine.get(key, _ABSENT) != ref.get(key, _ABSENT)}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _problems(diffs: dict[str, tuple[Any, Any]], group: str) -> list[str]:
    lines = []
    for key, (mine, ref) in diffs.items():
        if isinstance(mine, os.PathLike):
            lines.append(f"`{key}` is a {type(mine).__name__}: a config holds plain values, "
                         "use str(...)")
        elif mine == _ABSENT:
            lines.append(f"`{key}` is missing")
        elif ref == _ABSENT:
            lines.append(f"`{key}` = {_short(mine)} is set, but the VOC config has no such field")
        else:
            lines.append(f"`{key}` = {_short(mine)} is not what the VOC recipe needs")
    if len(lines) > _MAX_LINES:
        lines = lines[:_MAX_LINES] + [f"... and {len(lines) - _MAX_LINES} more field(s) of the "
                                      f"{group} group"]
    notes = []
    for copy_key, original, note in _COPIES:
        copies = [k for k in diffs if re.match(copy_key, k)]
        originals_wrong = [k for k in diffs if k.startswith(original)]
        if copies and not originals_wrong and note not in notes:
            notes.append(note)
    return lines + [f"note: {n}" for n in notes]


def edits_verifier(group: str, reference: Any) -> Callable[[Any], list[str]]:
    """Verify for one config task: `group`'s fields of the student's config equal `reference`'s.

    Raises ``NotAnswered`` while the group still equals the shipped Cityscapes config.
    """
    if group not in GROUPS:
        raise ValueError(f"group {group!r}: choose one of {', '.join(GROUPS)}")

    def verify(cfg: Any) -> list[str]:
        from mmengine.config import Config

        answered(cfg, "cfg")
        if not isinstance(cfg, Config):
            return [f"cfg is a {type(cfg).__name__}, not an mmengine Config: edit the one "
                    "Config.fromfile returned"]
        if not group_differences(cfg, base_config(), group):
            raise NotAnswered(f"the {group} fields are still Cityscapes'")
        return _problems(group_differences(cfg, reference, group), group)

    return verify


def with_reference_edits(cfg: Any, reference: Any, group: str):
    """A copy of `cfg` whose `group` fields are `reference`'s (the lesson's fallback)."""
    from mmengine.config import Config

    out = (cfg if isinstance(cfg, Config) else base_config()).to_dict()
    out, ref = copy.deepcopy(out), reference.to_dict()
    for top in GROUPS[group]:
        if top == "model":  # all but the data task's data_preprocessor
            keep = out.get("model", {}).get("data_preprocessor")
            out["model"] = copy.deepcopy(ref["model"])
            if keep is not None:
                out["model"]["data_preprocessor"] = keep
        elif top in ref:
            out[top] = copy.deepcopy(ref[top])
        else:
            out.pop(top, None)
    if group == "data":
        out.setdefault("model", {})["data_preprocessor"] = copy.deepcopy(
            ref["model"]["data_preprocessor"])
    return Config(out)


# ----------------------------------------------------------------------------------------------
# The learning rate after the last iteration


def final_lr_reference(cfg: Any) -> float:
    """The lr after ``train_cfg.max_iters`` iterations: mmengine's schedulers, stepped."""
    import torch
    from mmengine.optim.scheduler import PolyLR

    lr = cfg.optim_wrapper.optimizer.lr
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    schedulers = []
    for sched in cfg.param_scheduler:
        if sched.get("type") != "PolyLR":
            raise ValueError(f"this check knows PolyLR only, not {sched.get('type')}")
        schedulers.append(PolyLR(optimizer, **{k: v for k, v in sched.items() if k != "type"}))
    for _ in range(cfg.train_cfg.max_iters):
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    return float(optimizer.param_groups[0]["lr"])


def _schedules(voc_root: str | os.PathLike, work_dir: str | os.PathLike) -> dict[str, Any]:
    """Configs whose last lr tells the mistakes apart: the seed's quirk (PolyLR ends at 80,000),
    a schedule that ends with the run, one that ends before it, another lr and length."""
    import warnings

    from helpers.config import build_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        short = build_config("smoke", voc_root, work_dir, **{"train_cfg.max_iters": 300})
        short.param_scheduler[0].update(end=120, power=2.0, eta_min=3e-4)
        return {
            "the seed config": reference_config(voc_root, work_dir),
            "the smoke config (its PolyLR ends with the run)":
                build_config("smoke", voc_root, work_dir),
            "a config whose PolyLR ends before the run": short,
            "a seed config with another lr and length": build_config(
                "seed", voc_root, work_dir, load_from=None,
                **{"optim_wrapper.optimizer.lr": 0.02, "optimizer.lr": 0.02,
                   "train_cfg.max_iters": 1500}),
        }


def final_lr_verifier(voc_root: str | os.PathLike, work_dir: str | os.PathLike
                      ) -> Callable[[Callable], list[str]]:
    """Verify for `final_lr(cfg)`: mmengine's PolyLR, stepped, on four schedules."""

    def verify(final_lr: Callable) -> list[str]:
        problems = []
        for where, cfg in _schedules(voc_root, work_dir).items():
            got = answered(final_lr(copy.deepcopy(cfg)), "final_lr")
            try:  # a numpy or torch scalar is fine, a str or a bool is not
                got = float(got) if not isinstance(got, str | bytes | bool) else None
            except (TypeError, ValueError):
                got = None
            if got is None:
                return ["final_lr returned something that is not a number"]
            if not math.isclose(got, final_lr_reference(cfg), rel_tol=1e-6, abs_tol=1e-12):
                problems.append(f"for {where} final_lr gives {got:.6g}: not the lr that PolyLR "
                                "reaches after train_cfg.max_iters iterations")
        return problems

    return verify
