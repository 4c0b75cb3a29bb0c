"""Build the VOC training config from MMSegmentation's shipped configs (notebook 02).

One builder, three presets, all starting from a config that ships inside the installed mmseg
package (``mmseg/.mim/configs``, no download) and changed field by field, the way
``--cfg-options`` would change it:

- ``seed``: exactly the homework's recipe (256x256 crop, 4,000 iterations, batch 8,
  lr 0.01/8, validation every 1,000, the Cityscapes PSPNet checkpoint as ``load_from``).
- ``official``: equal in model, pipeline and schedule to mmseg's
  ``pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py``; ``OFFICIAL_DIFFERENCES`` lists what differs
  and why (tests/test_config.py proves it field by field).
- ``smoke``: minutes on a CPU (CI, students without a GPU): a slim ResNet-18 backbone trained
  from scratch at a 128 px crop.

Command line::

    python -m helpers.config --preset seed --voc-root data/VOCdevkit/VOC2012 \
        --out work_dirs/pspnet_voc12/pspnet_voc12.py

The saved file runs unchanged with mmseg's own ``tools/train.py`` (``mmseg_tools_dir()``).
"""

from __future__ import annotations

import argparse
import copy
import difflib
import re
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmengine.config import Config, ConfigDict, DictAction

from helpers.voc import IMAGE_DIR, MASK_DIR, NUM_CLASSES, SPLIT_DIR, DatasetError, split_ids

__all__ = [
    "BASE_CONFIG",
    "CONFIG_NAME",
    "OFFICIAL_CONFIG",
    "OFFICIAL_DIFFERENCES",
    "PRESETS",
    "PRETRAINED_URL",
    "Recipe",
    "RECIPES",
    "build_config",
    "config_diff",
    "config_differences",
    "fetch_pretrained",
    "find_config",
    "flatten_config",
    "load_config",
    "mmseg_config_dir",
    "mmseg_tools_dir",
    "pretrained_path",
    "preset_table",
    "save_config",
    "unexplained_official_differences",
]

PRESETS = ("seed", "official", "smoke")
CONFIG_NAME = "pspnet_voc12.py"
"""File name of the training config inside a work dir (notebook 02 writes it, 03 reads it)."""

BASE_CONFIG = "pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py"
"""The homework's starting point: PSPNet R50-D8 trained on Cityscapes (19 classes)."""

OFFICIAL_CONFIG = "pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py"
"""mmseg's own VOC recipe, which the ``official`` preset reproduces."""

PRETRAINED_URL = (
    "https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/"
    "pspnet_r50-d8_512x1024_80k_cityscapes/"
    "pspnet_r50-d8_512x1024_80k_cityscapes_20200606_112131-2376f12b.pth"
)
"""The Cityscapes PSPNet checkpoint the homework fine-tunes (``load_from`` of ``seed``)."""


OFFICIAL_DIFFERENCES: dict[str, str] = {
    r"(train|val|test)_dataloader\.dataset\.data_root|data_root": (
        "the dataset lives at VOC_ROOT instead of mmseg's default data/VOCdevkit/VOC2012"
    ),
    r"train_dataloader\.dataset\..*|dataset_train\..*|dataset_aug\..*": (
        "train split: VOC2012 `train` (1,464 images) only; the shipped config concatenates it "
        "with the SBD `aug` split (10,582 images), which is not part of VOC2012. The training "
        "pipeline inside is the same (tested)"
    ),
    r"(.*\.)?norm_cfg\.type": (
        "BN on one device; helpers.distributed.configure switches to SyncBN when the world size "
        "is > 1 (the shipped config assumes 4 GPUs, hence SyncBN)"
    ),
    r"default_hooks\.checkpoint\.(save_best|rule|max_keep_ckpts)": (
        "keep the best-mIoU checkpoint and the last one (the shipped config keeps every one)"
    ),
    r"randomness\..*": "seeded (seed 0) so that two runs give the same metrics",
    r"work_dir": "the run's folder",
    r"auto_scale_lr\..*": (
        "records that lr 0.01 was tuned for 16 images per step (4 GPUs x 4), disabled: the lr "
        "stays 0.01 on any number of GPUs, as with the shipped config"
    ),
    r"custom_imports\..*": "imports helpers.checkpoint: safe checkpoint loading (notebook 03)",
}
"""Fields in which ``official`` differs from ``OFFICIAL_CONFIG``: regex -> reason.

The batch size is per process and equal (4); the shipped run uses 4 GPUs, i.e. 16 images per
step, so on one GPU the total batch is 4 (see notebook 03, "Scaling out", for the lr rule).
"""


@dataclass(frozen=True)
class Recipe:
    """The knobs a preset sets on top of the base config (see ``RECIPES``)."""

    crop: tuple[int, int]  #: training crop (h, w); also the data preprocessor's pad size
    train_scale: tuple[int, int]  #: RandomResize scale (long, short), before ratio 0.5-2
    test_scale: tuple[int, int]  #: Resize scale of the test pipeline
    photometric: bool  #: PhotoMetricDistortion in the training pipeline
    pad: bool  #: Pad to the crop in the training pipeline
    batch: int  #: images per process and step
    lr: float
    max_iters: int
    val_interval: int
    log_interval: int
    ckpt_interval: int
    poly_end: int | None  #: PolyLR's end; None = max_iters
    train_workers: int
    val_workers: int
    load_from: str | None  #: "pretrained" = the Cityscapes checkpoint in checkpoints/
    keep_pretrained_backbone: bool  #: keep model.pretrained (ImageNet backbone weights)
    slim_channels: int | None = None  #: ResNet-18 with this base width (smoke only)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    lr_total_batch: int | None = None  #: images per step (all processes) the lr was tuned for


RECIPES: dict[str, Recipe] = {
    # The homework's config cell ("修改配置文件"), field by field. Its PolyLR keeps the base's
    # end=80000, so over 4,000 iterations the lr hardly decays (an exercise in notebook 02).
    "seed": Recipe(
        crop=(256, 256), train_scale=(320, 240), test_scale=(320, 240), photometric=False,
        pad=False, batch=8, lr=0.01 / 8, max_iters=4000, val_interval=1000, log_interval=500,
        ckpt_interval=1000, poly_end=80000, train_workers=2, val_workers=4,
        load_from="pretrained", keep_pretrained_backbone=False,
    ),
    # mmseg's pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py.
    "official": Recipe(
        crop=(512, 512), train_scale=(2048, 512), test_scale=(2048, 512), photometric=True,
        pad=True, batch=4, lr=0.01, max_iters=20000, val_interval=2000, log_interval=50,
        ckpt_interval=2000, poly_end=None, train_workers=4, val_workers=4,
        load_from=None, keep_pretrained_backbone=True, lr_total_batch=16,
    ),
    # Minutes on two CPU cores, from scratch; must reach val mIoU >= 50 on the demo data.
    "smoke": Recipe(
        crop=(96, 96), train_scale=(192, 96), test_scale=(192, 96), photometric=False,
        pad=False, batch=8, lr=0.05, max_iters=200, val_interval=50, log_interval=10,
        ckpt_interval=50, poly_end=None, train_workers=0, val_workers=0,
        load_from=None, keep_pretrained_backbone=False, slim_channels=16,
        ratio_range=(0.75, 1.5),
    ),
}


# --------------------------------------------------------------------------------------------
# Where mmseg keeps its configs


def mmseg_config_dir() -> Path:
    """``mmseg/.mim/configs`` of the installed mmsegmentation package."""
    import mmseg

    path = Path(mmseg.__file__).parent / ".mim" / "configs"
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: mmseg's shipped configs are missing. Install mmsegmentation from PyPI "
            "(`pip install mmsegmentation==1.2.2`, its wheel ships .mim/configs) or pass the "
            "path of a config file as `base`."
        )
    return path


def mmseg_tools_dir() -> Path:
    """``mmseg/.mim/tools`` of the installed package (``train.py``, ``test.py``, ...)."""
    return mmseg_config_dir().parent / "tools"


def find_config(name: str | Path) -> Path:
    """Path of a config: an existing file, or a file name shipped under ``mmseg_config_dir()``."""
    path = Path(name)
    if path.is_file():
        return path
    name = path.name if path.suffix == ".py" else f"{path.name}.py"
    matches = sorted(mmseg_config_dir().rglob(name))
    if not matches:
        raise FileNotFoundError(
            f"config {str(path)!r} not found: it is neither a file nor a config shipped under "
            f"{mmseg_config_dir()}. List the shipped ones with "
            "sorted(p.name for p in helpers.config.mmseg_config_dir().rglob('*.py'))."
        )
    return matches[0]


def load_config(path: str | Path) -> Config:
    """``Config.fromfile`` with a clear error when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"config file {path} not found. Write it with notebook 02 or "
            f"`python -m helpers.config --preset smoke --voc-root VOC_ROOT --out {path}`."
        )
    return Config.fromfile(str(path))


# --------------------------------------------------------------------------------------------
# Pretrained weights


def pretrained_path(dest: str | Path | None = None) -> Path:
    """Where the Cityscapes checkpoint lives locally: ``<repo>/checkpoints/<file name>``."""
    if dest is None:
        from helpers.env import repo_root

        dest = repo_root() / "checkpoints"
    return Path(dest) / PRETRAINED_URL.rsplit("/", 1)[1]


def fetch_pretrained(dest: str | Path | None = None, timeout: float = 5.0) -> Path | None:
    """Download the homework's Cityscapes checkpoint into ``checkpoints/`` (once).

    Returns its path, or None (with a clear notice) when the machine is offline: training then
    starts from scratch. The file's SHA-256 prefix (in its name) is checked by torch.hub.
    """
    path = pretrained_path(dest)
    if path.is_file():
        return path
    try:  # a short probe, so that an offline machine answers in seconds, not minutes
        urllib.request.urlopen(urllib.request.Request(PRETRAINED_URL, method="HEAD"),
                               timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # the server answered (e.g. no HEAD allowed): we are online
    except (urllib.error.URLError, OSError) as err:
        print(f"OFFLINE: cannot reach {PRETRAINED_URL.split('/')[2]} ({err}).\n"
              "Training will start from scratch (random weights): expect a much lower mIoU.\n"
              f"On a machine with internet, run helpers.config.fetch_pretrained() or put the "
              f"file at {path}.")
        return None
    import torch.hub

    path.parent.mkdir(parents=True, exist_ok=True)
    hash_prefix = re.search(r"-([0-9a-f]{8})\.pth$", path.name)
    torch.hub.download_url_to_file(
        PRETRAINED_URL, str(path), hash_prefix=hash_prefix.group(1) if hash_prefix else None
    )
    return path


# --------------------------------------------------------------------------------------------
# The builder


def _check_voc_root(voc_root: Path) -> None:
    if not voc_root.is_dir():
        raise DatasetError(
            f"VOC root {voc_root} does not exist. Point VOC_ROOT at .../VOCdevkit/VOC2012 "
            "(helpers.voc.download_voc fetches the real data) or create the synthetic demo data "
            f"with `python -m helpers.demo_data --root {voc_root}`."
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


def _voc_dataset(voc_root: str, split: str, pipeline: list[dict]) -> dict:
    return dict(
        type="PascalVOCDataset",
        data_root=voc_root,
        data_prefix=dict(img_path=IMAGE_DIR, seg_map_path=MASK_DIR),
        ann_file=f"{SPLIT_DIR}/{split}.txt",
        pipeline=pipeline,
    )


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

    The seed preset loads ``pretrained_path()`` when it exists; otherwise it says so and starts
    from scratch (run ``fetch_pretrained()`` on a machine with internet).
    """
    from helpers.distributed import set_norm_type

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
        cfg[loader].dataset = _voc_dataset(str(voc_root), split, pipeline)
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
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    cfg.load_from = str(pretrained_path()) if r.load_from == "pretrained" else r.load_from
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
            f"load_from={load_from}: no such checkpoint. Fetch it (helpers.config."
            "fetch_pretrained() for the Cityscapes one) or pass load_from=None to start "
            "from scratch."
        )
    warnings.warn(f"No pretrained checkpoint at {load_from}: training starts FROM SCRATCH. "
                  "On a machine with internet run helpers.config.fetch_pretrained() first.",
                  stacklevel=3)
    cfg.load_from = None


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write ``cfg`` as a Python config file (parent folders created) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg.dump(str(path))
    return path


# --------------------------------------------------------------------------------------------
# Reading configs side by side


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


# --------------------------------------------------------------------------------------------
# Command line


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


if __name__ == "__main__":
    sys.exit(main())
