"""Checks of notebook 02's tasks: the edits that turn mmseg's Cityscapes PSPNet config into the
homework's VOC config (model, data, schedule), and the learning rate the schedule ends with.

Each ``verify_*`` takes the student's answer and returns the problems found (see
`helpers.checks.check`), registered in :data:`TASKS`. A config task is checked by what mmseg and
mmengine build from the student's config (on a copy: the answer is never changed): the model and
its layers, the datasets and how many samples each split file gives, the pre-processor's batches,
the optimizer's learning rate, the hooks. Every problem names the field and, where it helps, the
student's value, never the expected one. A group of fields that still equals the shipped
Cityscapes file is "not answered". The last learning rate is compared with mmengine's own
``PolyLR``, stepped on a dummy optimizer, on one config.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from helpers.checks import Task, answered
from helpers.checks.config_data import verify_data_edits
from helpers.checks.config_fields import (
    CROP,
    GROUPS,
    SCALE,
    _answered_config,
    _not_config,
    _path_note,
    _plain,
    _same_path,
    base_config,
)

__all__ = ["GROUPS", "CROP", "SCALE", "base_config", "verify_model_edits", "verify_data_edits",
           "verify_schedule_edits", "verify_final_lr", "OTHER_SCHEDULES",
           "TASKS"]

# ----------------------------------------------------------------------------------------------
# Task 1: the model


def _norm_cfgs(node: Any, where: str) -> list[tuple[str, Any]]:
    """(key, norm_cfg) of every ``norm_cfg`` under `node`."""
    found = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "norm_cfg":
                found.append((f"{where}.norm_cfg", value))
            else:
                found += _norm_cfgs(value, f"{where}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            found += _norm_cfgs(value, f"{where}[{i}]")
    return found


def verify_model_edits(cfg: Any) -> list[str]:
    """BN everywhere, as many classes as PascalVOCDataset in both heads, no ImageNet weights;
    then the model mmseg builds from the config has no SyncBN layer and 21-channel classifiers."""
    import torch
    from mmseg.datasets import PascalVOCDataset
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    if _answered_config(cfg, "model") is None:
        return _not_config(cfg)
    cfg = copy.deepcopy(cfg)
    problems = []
    norms = [("norm_cfg", cfg.get("norm_cfg"))] + _norm_cfgs(cfg.model, "model")
    for part in ("backbone", "decode_head", "auxiliary_head"):
        if not any(key == f"model.{part}.norm_cfg" for key, _ in norms):
            problems.append(f"`model.{part}.norm_cfg` is missing")
    for key, norm in norms:
        if not isinstance(norm, Mapping):
            problems.append(f"`{key}` is a {type(norm).__name__}, not a dict with `type`")
        elif norm.get("type") != "BN":
            problems.append(f"`{key}.type` is {norm.get('type')!r}, not the norm layer task 1 "
                            "asks for")
        elif norm.get("requires_grad", True) is not True:
            problems.append(f"`{key}.requires_grad` is {norm.get('requires_grad')!r}: keep the "
                            "norm layers trainable")
    if any(key.startswith("model.") and isinstance(n, Mapping) and n.get("type") == "SyncBN"
           for key, n in norms) and cfg.get("norm_cfg", {}).get("type") == "BN":
        problems.append("note: the backbone and the heads hold their own copy of norm_cfg, made "
                        "when the file was loaded: set each of them")
    n_classes = len(PascalVOCDataset.METAINFO["classes"])
    for head in ("decode_head", "auxiliary_head"):
        got = cfg.model.get(head, {}).get("num_classes")
        if got != n_classes:
            problems.append(f"`model.{head}.num_classes` is {got!r}: it must equal the number of "
                            "classes in PascalVOCDataset's METAINFO")
    if cfg.model.get("pretrained") is not None:
        problems.append(f"`model.pretrained` is {cfg.model.get('pretrained')!r}: the backbone "
                        "must not download ImageNet weights")
    if problems:
        return problems
    register_all_modules()
    with warnings.catch_warnings():  # mmseg's deprecation notes
        warnings.simplefilter("ignore")
        model = MODELS.build(cfg.model)
    kinds = [type(m).__name__ for m in model.modules()]
    if "SyncBatchNorm" in kinds or "BatchNorm2d" not in kinds:
        problems.append("the model mmseg builds from cfg.model still has SyncBN layers (or no "
                        "BatchNorm2d at all)")
    for head in ("decode_head", "auxiliary_head"):
        conv = getattr(getattr(model, head, None), "conv_seg", None)
        if not isinstance(conv, torch.nn.Conv2d) or conv.out_channels != n_classes:
            problems.append(f"the built model's {head}.conv_seg does not give one score map "
                            "per VOC class")
    if "Pretrained" in str(model.backbone.init_cfg):
        problems.append("the built backbone would still load pretrained ImageNet weights "
                        "(its init_cfg)")
    return problems


# ----------------------------------------------------------------------------------------------
# Task 3: the schedule


def verify_schedule_edits(cfg: Any, work_dir: str | os.PathLike,
                          pretrained: str | os.PathLike | None) -> list[str]:
    """lr 0.01/8 in the optimizer mmengine builds (and its copy), 4,000 iterations validated
    every 1,000, the hooks mmengine builds, seed 0, `work_dir`, `load_from` = `pretrained`."""
    import mmengine.hooks  # noqa: F401  (registers CheckpointHook and LoggerHook)
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import HOOKS

    if _answered_config(cfg, "schedule") is None:
        return _not_config(cfg)
    cfg = copy.deepcopy(cfg)
    problems = []
    wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), copy.deepcopy(cfg.optim_wrapper))
    def homework_lr(lr: Any) -> bool:
        return type(lr) in (int, float) and math.isclose(lr * 8, 0.01, rel_tol=1e-12)

    built_lr, top_lr = wrapper.param_groups[0]["lr"], cfg.get("optimizer", {}).get("lr")
    for key, lr in (("optim_wrapper.optimizer.lr", built_lr), ("optimizer.lr", top_lr)):
        if not homework_lr(lr):
            problems.append(f"`{key}` is {lr!r}, not the homework's learning rate")
    if homework_lr(top_lr) and not homework_lr(built_lr):
        problems.append("note: optim_wrapper.optimizer is a copy of optimizer, made when the "
                        "file was loaded: the Runner builds its optimizer from that copy")
    shipped = base_config()
    for field, want in (("max_iters", 4000), ("val_interval", 1000)):
        if cfg.train_cfg.get(field) != want:
            problems.append(f"`train_cfg.{field}` is {cfg.train_cfg.get(field)!r}, not what "
                            "task 3 asks for")
    if cfg.train_cfg.get("type") != shipped.train_cfg.type:
        problems.append(f"`train_cfg.type` is {cfg.train_cfg.get('type')!r}: keep the shipped "
                        "training loop")
    if _plain(cfg.get("param_scheduler")) != _plain(shipped.param_scheduler):
        problems.append("`param_scheduler` changed: leave it as shipped (task 4 is about it)")
    hooks = cfg.get("default_hooks", {})
    try:
        logger = HOOKS.build(copy.deepcopy(dict(hooks["logger"])))
        ckpt = HOOKS.build(copy.deepcopy(dict(hooks["checkpoint"])))
    except Exception as exc:
        return problems + [f"mmengine cannot build default_hooks' logger or checkpoint: "
                           f"{type(exc).__name__}: {exc}"]
    if logger.interval != 500:
        problems.append(f"`default_hooks.logger.interval` is {logger.interval!r}, not what "
                        "task 3 asks for")
    for field, got, want in (("interval", ckpt.interval, 1000),
                             ("by_epoch", ckpt.by_epoch, False),
                             ("max_keep_ckpts", ckpt.max_keep_ckpts, 1),
                             ("save_best", ckpt.save_best, ["mIoU"]),
                             ("rule", getattr(ckpt, "rules", None), ["greater"])):
        if got != want:
            problems.append(f"the checkpoint hook's {field} is {got!r} (default_hooks."
                            f"checkpoint.{field}), not what task 3 asks for")
    randomness = cfg.get("randomness")
    seed = randomness.get("seed") if isinstance(randomness, Mapping) else None
    if type(seed) is not int or seed != 0:
        problems.append(f"`randomness` is {_plain(cfg.get('randomness'))!r}, not a seed of 0")
    if not _same_path(cfg.get("work_dir"), work_dir):
        problems.append(_path_note("work_dir", cfg.get("work_dir")).replace(
            "the folder the task names", "WORK_DIR"))
    load_from = cfg.get("load_from")
    if pretrained is None:
        if load_from is not None:
            problems.append(f"`load_from` is {load_from!r}, but `pretrained` is None: nothing "
                            "to load")
    elif isinstance(load_from, os.PathLike):
        problems.append(f"`load_from` is a {type(load_from).__name__}: use str(...)")
    elif not (isinstance(load_from, str) and Path(load_from).is_file()
              and Path(load_from).samefile(pretrained)):
        problems.append(f"`load_from` is {load_from!r}, not the Cityscapes checkpoint "
                        "`pretrained`")
    return problems


# ----------------------------------------------------------------------------------------------
# Task 4: the learning rate after the last iteration


def _stepped_poly_lr(cfg: Any) -> float:
    """mmengine's PolyLR (the config's only scheduler), stepped max_iters times on a dummy
    optimizer: the library computes it."""
    import torch
    from mmengine.optim.scheduler import PolyLR

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)],
                                lr=cfg.optim_wrapper.optimizer.lr)
    (sched,) = cfg.param_scheduler
    poly = PolyLR(optimizer, **{k: v for k, v in sched.items() if k != "type"})
    for _ in range(cfg.train_cfg.max_iters):
        optimizer.step()
        poly.step()
    return float(optimizer.param_groups[0]["lr"])


def _number(value: Any) -> float | None:
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    return float(value) if type(value) in (int, float) else None


#: Other schedules the check tries, each against mmengine's stepped PolyLR: the lr in
#: optim_wrapper, its copy in optimizer, PolyLR's power, eta_min and end, and max_iters.
OTHER_SCHEDULES = (
    (0.004, 0.02, 0.5, 0.0, 400, 100),    # the copies differ: the Runner's lr is optim_wrapper's
    (0.03, 0.03, 2.0, 1e-3, 300, 299),    # t = end - 1: PolyLR's last change
    (0.02, 0.02, 0.9, 5e-4, 250, 250),    # the schedule ends with the run
    (0.01, 0.01, 1.0, 2e-4, 150, 600),    # the run goes on past the schedule's end
)


def verify_final_lr(final_lr: Callable) -> list[str]:
    """`final_lr` on the seed's schedule (the shipped file with lr 0.01/8 and 4,000 iterations)
    and on :data:`OTHER_SCHEDULES` against mmengine's PolyLR stepped on a dummy optimizer, to
    1e-9 relative; and past the seed schedule's end it must give eta_min."""
    seed = base_config()
    seed.optimizer.lr = seed.optim_wrapper.optimizer.lr = 0.01 / 8
    seed.train_cfg.max_iters = 4000
    got = _number(answered(final_lr(copy.deepcopy(seed)), "final_lr"))
    if got is None:
        return ["final_lr returned something that is not a number"]
    problems = []
    if not math.isclose(got, _stepped_poly_lr(seed), rel_tol=1e-9, abs_tol=0.0):
        problems.append(f"for the seed's schedule (4,000 of PolyLR's 80,000 iterations) "
                        f"final_lr gives {got!r}: not the lr that mmengine's PolyLR reaches "
                        "(to 1e-9 relative); look at the T that mmengine divides by")
    past = copy.deepcopy(seed)
    past.train_cfg.max_iters = seed.param_scheduler[0].end + 5000
    late = _number(final_lr(copy.deepcopy(past)))
    if late is None or not math.isclose(late, seed.param_scheduler[0].eta_min, rel_tol=1e-9,
                                        abs_tol=1e-15):
        problems.append(f"with max_iters past the schedule's end final_lr gives {late!r}: "
                        "PolyLR stops there and stays at its eta_min")
    for lr, lr_copy, power, eta_min, end, iters in OTHER_SCHEDULES:
        other = copy.deepcopy(seed)
        other.optim_wrapper.optimizer.lr, other.optimizer.lr = lr, lr_copy
        other.param_scheduler[0].update(power=power, eta_min=eta_min, end=end)
        other.train_cfg.max_iters = iters
        value = _number(final_lr(copy.deepcopy(other)))
        if value is None or not math.isclose(value, _stepped_poly_lr(other), rel_tol=1e-9,
                                             abs_tol=1e-15):
            problems.append(f"with optim_wrapper's lr {lr:g} (optimizer's {lr_copy:g}), power "
                            f"{power:g}, eta_min {eta_min:g}, end {end} and max_iters {iters} "
                            f"final_lr gives {value!r}: not the lr that mmengine's PolyLR "
                            "reaches")
    return problems


#: The tasks of notebook 02 and their hints (an API or a concept, never the code).
TASKS = {
    "model_edits": Task(verify_model_edits,
                        hint="Config.fromfile copied norm_cfg into every part of the model that "
                             "used it: search the config for each copy (pretty_text, or `where` "
                             "in section 3); the class names are in PascalVOCDataset.METAINFO; "
                             "mmseg's BaseSegmentor docs say what `pretrained` does"),
    "data_edits": Task(verify_data_edits,
                       hint="after Config.fromfile every copy is separate: each data loader's "
                            "`dataset` holds its own pipeline, and the model and the config "
                            "each hold a data pre-processor; mmseg's PascalVOCDataset and "
                            "BaseSegDataset docs, and notebook 01, show what a VOC dataset needs"),
    "schedule_edits": Task(verify_schedule_edits,
                           hint="mmengine's Runner docs: the loop's length and validation are in "
                                "its training loop config, logging and checkpoints are default "
                                "hooks (LoggerHook, CheckpointHook), the optimizer wrapper holds "
                                "a copy of the optimizer"),
    "final_lr": Task(verify_final_lr,
                     hint="read mmengine's PolyParamScheduler (total_iters, and the steps it "
                          "takes between begin and end); t stops where the schedule ends; "
                          "eta_min is added back"),
}
