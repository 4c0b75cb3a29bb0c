"""The course's three training recipes as data (notebook 02); `build.py` makes them configs.

- ``seed``: exactly the homework's recipe (256x256 crop, 4,000 iterations, batch 8,
  lr 0.01/8, validation every 1,000, the Cityscapes PSPNet checkpoint as ``load_from``).
- ``official``: equal in model, pipeline and schedule to mmseg's
  ``pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py``; ``OFFICIAL_DIFFERENCES`` lists what differs
  and why (tests/test_config.py proves it field by field).
- ``smoke``: minutes on a CPU (CI, students without a GPU): a slim ResNet-18 backbone trained
  from scratch at a small crop.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BASE_CONFIG",
    "CONFIG_NAME",
    "OFFICIAL_CONFIG",
    "OFFICIAL_DIFFERENCES",
    "PRESETS",
    "RECIPES",
    "Recipe",
]

PRESETS = ("seed", "official", "smoke")
CONFIG_NAME = "pspnet_voc12.py"
"""File name of the training config inside a work dir (notebook 02 writes it, 03 reads it)."""

BASE_CONFIG = "pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py"
"""The homework's starting point: PSPNet R50-D8 trained on Cityscapes (19 classes)."""

OFFICIAL_CONFIG = "pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py"
"""mmseg's own VOC recipe, which the ``official`` preset reproduces."""

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
