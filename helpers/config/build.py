"""Build the VOC training config of a preset from MMSegmentation's shipped configs (notebook 02).

One builder for the three recipes of :mod:`helpers.config.presets`, starting from a config that
ships inside the installed mmseg package (``mmseg/.mim/configs``, no download) and changed field
by field, the way ``--cfg-options`` would change it.

Command line (also ``python -m helpers.config``)::

    python -m helpers.config --preset seed --voc-root data/VOCdevkit/VOC2012 \\
        --out work_dirs/pspnet_voc12/pspnet_voc12.py

The saved file runs unchanged with mmseg's own ``tools/train.py`` (``mmseg_tools_dir()``).
"""

from __future__ import annotations

import argparse
import copy
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmengine.config import Config, ConfigDict, DictAction

from helpers.config.presets import BASE_CONFIG, CONFIG_NAME, PRESETS, RECIPES, Recipe
from helpers.downloads import PRETRAINED_URL, pretrained_path
from helpers.mmseg_configs import find_config
from helpers.voc import NUM_CLASSES, SPLIT_DIR, DatasetError, dataset_cfg, split_ids

__all__ = ["build_config", "main", "save_config", "set_norm_type"]

# Normalisation layers that are batch norm under another name; others (GN, LN) are left alone.
_BATCH_NORMS = frozenset({"BN", "BN2d", "SyncBN", "MMSyncBN"})


def set_norm_type(cfg: Config, norm_type: str) -> int:
    """Set every batch-norm ``norm_cfg`` in ``cfg.model`` (and ``cfg.norm_cfg``) to ``norm_type``.

    mmseg configs name the normalisation layer in ``norm_cfg`` dicts (backbone, decode head,
    auxiliary head); ``'SyncBN'`` computes batch statistics over all processes, ``'BN'`` over
    the process's own mini-batch. Returns how many ``norm_cfg`` entries were changed.
    """
    changed = 0

    def visit(node: Any) -> None:
        nonlocal changed
        if isinstance(node, Mapping):
            norm = node.get("norm_cfg")
            if isinstance(norm, Mapping) and norm.get("type") in _BATCH_NORMS:
                if norm["type"] != norm_type:
                    norm["type"] = norm_type
                    changed += 1
            for value in node.values():
                visit(value)
        elif isinstance(node, list | tuple):
            for value in node:
                visit(value)

    visit(cfg.get("model"))
    top = cfg.get("norm_cfg")
    if isinstance(top, Mapping) and top.get("type") in _BATCH_NORMS:
        top["type"] = norm_type
    return changed


def _check_voc_root(voc_root: Path) -> None:
    if not voc_root.is_dir():
        raise DatasetError(
            f"VOC root {voc_root} does not exist. Point VOC_ROOT at .../VOCdevkit/VOC2012 "
            "(helpers.downloads.download_voc fetches the real data) or create the synthetic demo "
            f"data with `python -m helpers.demo_data --root {voc_root}`."
        )
    for split in ("train", "val"):
        if not split_ids(voc_root, split):  # raises DatasetError naming a missing split file
            raise DatasetError(
                f"{voc_root / SPLIT_DIR / f'{split}.txt'} is empty: list one image id per line."
            )


def _heads(model: ConfigDict) -> list[ConfigDict]:
    heads = []
    for key in ("decode_head", "auxiliary_head"):
        head = model.get(key)
        heads += list(head) if isinstance(head, (list, tuple)) else [head] if head else []
    return heads


def _slim_resnet(model: ConfigDict, width: int) -> None:
    """Turn a ResNet-D8 segmentor into a ResNet-18 of base width ``width`` (heads follow)."""
    backbone = model.backbone
    if "ResNet" not in backbone.type:
        raise ValueError(
            f"the smoke preset slims ResNet backbones; this config has {backbone.type}. "
            "Pick a ResNet-based base config (e.g. a pspnet_r50-d8 or deeplabv3plus_r50-d8 one)."
        )
    backbone.update(depth=18, base_channels=width, stem_channels=width)
    stages = [width * 2**i for i in range(backbone.get("num_stages", 4))]  # BasicBlock: x1
    for head in _heads(model):
        idx = head.in_index
        head.in_channels = [stages[i] for i in idx] if isinstance(idx, (list, tuple)) \
            else stages[idx]
        head.channels = max(16, head.channels * width // 256)
        if "c1_in_channels" in head:  # DeepLabV3+ low-level branch reads stage 0
            head.c1_in_channels = stages[0]
            head.c1_channels = max(8, head.c1_channels * width // 256)
    model.pretrained = None


def _pipelines(r: Recipe) -> tuple[list[dict], list[dict]]:
    train = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations"),
        dict(type="RandomResize", scale=r.train_scale, ratio_range=r.ratio_range,
             keep_ratio=True),
        dict(type="RandomCrop", crop_size=r.crop, cat_max_ratio=0.75),
        dict(type="RandomFlip", prob=0.5),
    ]
    train += [dict(type="PhotoMetricDistortion")] if r.photometric else []
    train += [dict(type="Pad", size=r.crop)] if r.pad else []
    train += [dict(type="PackSegInputs")]
    test = [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=r.test_scale, keep_ratio=True),
        # annotations load after Resize: metrics compare at the original resolution
        dict(type="LoadAnnotations"),
        dict(type="PackSegInputs"),
    ]
    return train, test


def build_config(
    preset: str,
    voc_root: str | Path,
    work_dir: str | Path,
    base: str | Path = BASE_CONFIG,
    **overrides: Any,
) -> Config:
    """The training config of a preset, built from a shipped mmseg config.

    Args:
        preset: one of ``PRESETS``.
        voc_root: the ``VOCdevkit/VOC2012`` folder, with ``ImageSets/Segmentation/{train,val}.txt``.
        work_dir: where the Runner writes checkpoints and logs.
        base: a config shipped with mmseg (file name) or a path; any ``EncoderDecoder`` config.
        **overrides: ``--cfg-options``-style changes applied last, e.g.
            ``**{"train_cfg.max_iters": 20}`` or ``load_from=None``. For presets whose PolyLR
            follows the schedule (official, smoke), its ``end`` follows ``train_cfg.max_iters``.

    The seed preset loads the Cityscapes checkpoint by its URL once ``fetch_pretrained()`` has
    put it in the cache (the safe loader reads the cache, or downloads it on a machine that
    lacks it); before that it says so and starts from scratch.
    """
    if preset not in RECIPES:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}.")
    r = RECIPES[preset]
    voc_root = Path(voc_root)
    _check_voc_root(voc_root)
    cfg = Config.fromfile(str(find_config(base)))
    if cfg.model.get("type") != "EncoderDecoder":
        raise ValueError(f"{base}: model type {cfg.model.get('type')}, expected EncoderDecoder.")

    # Model: BN on one device (SyncBN needs a process group), 21 VOC classes in every head.
    set_norm_type(cfg, "BN")  # helpers.distributed.configure sets SyncBN for several GPUs
    for head in _heads(cfg.model):
        head.num_classes = NUM_CLASSES
    if r.slim_channels:
        _slim_resnet(cfg.model, r.slim_channels)
    elif not r.keep_pretrained_backbone:
        cfg.model.pretrained = None  # load_from (or nothing, offline) gives the weights
    cfg.crop_size = r.crop
    cfg.data_preprocessor = dict(cfg.get("data_preprocessor", {}), size=r.crop)
    cfg.model.data_preprocessor.size = r.crop

    # Data: mmseg's PascalVOCDataset on the VOC split files.
    cfg.dataset_type, cfg.data_root = "PascalVOCDataset", str(voc_root)
    cfg.train_pipeline, cfg.test_pipeline = _pipelines(r)
    for loader, split, pipeline, batch, workers in (
        ("train_dataloader", "train", cfg.train_pipeline, r.batch, r.train_workers),
        ("val_dataloader", "val", cfg.test_pipeline, 1, r.val_workers),
    ):
        cfg[loader].update(batch_size=batch, num_workers=workers, persistent_workers=workers > 0)
        cfg[loader].dataset = dataset_cfg(voc_root, split, pipeline)
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)

    # Schedule, logging, checkpoints, seed, weights, output folder.
    cfg.optimizer.lr = r.lr
    cfg.optim_wrapper.optimizer.lr = r.lr
    cfg.train_cfg.update(max_iters=r.max_iters, val_interval=r.val_interval)
    if r.lr_total_batch:  # mmseg's idiom; `tools/train.py --auto-scale-lr` enables the rule
        cfg.auto_scale_lr = dict(enable=False, base_batch_size=r.lr_total_batch)
    cfg.default_hooks.logger.interval = r.log_interval
    cfg.default_hooks.checkpoint.update(interval=r.ckpt_interval, save_best="mIoU",
                                        rule="greater", max_keep_ckpts=1)
    cfg.randomness = {"seed": 0}  # one seed for every preset
    cfg.work_dir = str(work_dir)
    if r.load_from == "pretrained":  # by URL once fetched: each machine reads its own cache
        cfg.load_from = PRETRAINED_URL if pretrained_path().is_file() else str(pretrained_path())
    else:
        cfg.load_from = r.load_from
    # Loading the config imports helpers.checkpoint, which makes every checkpoint load safe
    # (also under mmseg's tools/train.py).
    cfg.custom_imports = dict(imports=["helpers.checkpoint"], allow_failed_imports=False)

    cfg.merge_from_dict(overrides)
    _set_poly_end(cfg, r.poly_end or cfg.train_cfg.max_iters)
    _resolve_load_from(cfg, explicit="load_from" in overrides)
    return cfg


def _set_poly_end(cfg: Config, end: int) -> None:
    for sched in cfg.param_scheduler:
        if sched.get("type") == "PolyLR":
            sched.end = end


def _resolve_load_from(cfg: Config, explicit: bool) -> None:
    load_from = cfg.get("load_from")
    if not load_from or re.match(r"^[a-z+-]+://", str(load_from)) or Path(load_from).is_file():
        return
    if explicit:
        raise FileNotFoundError(
            f"load_from={load_from}: no such checkpoint. Fetch it (helpers.downloads."
            "fetch_pretrained() for the Cityscapes one) or pass load_from=None to start "
            "from scratch."
        )
    warnings.warn(f"No pretrained checkpoint at {load_from}: training starts FROM SCRATCH. "
                  "On a machine with internet run helpers.downloads.fetch_pretrained() first.",
                  stacklevel=3)
    cfg.load_from = None


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write ``cfg`` as a Python config file (parent folders created) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg.dump(str(path))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.config --preset NAME --voc-root DIR --out FILE``."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.config",
        description="Write the VOC training config of a preset (built from mmseg's shipped "
        "configs). Train it with `python -m helpers.train --config FILE` or with mmseg's own "
        "tools/train.py.",
    )
    parser.add_argument("--preset", required=True, help=f"one of {', '.join(PRESETS)}")
    parser.add_argument("--voc-root", required=True, help="the VOCdevkit/VOC2012 folder")
    parser.add_argument("--out", required=True, help=f"file to write, e.g. .../{CONFIG_NAME}")
    parser.add_argument("--work-dir", help="work dir (default: the folder of --out)")
    parser.add_argument("--base", default=BASE_CONFIG, help="base config shipped with mmseg")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="extra key=value overrides, e.g. train_cfg.max_iters=100")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        cfg = build_config(args.preset, args.voc_root, args.work_dir or out.parent,
                           base=args.base, **args.cfg_options)
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    print(save_config(cfg, out))
    return 0

