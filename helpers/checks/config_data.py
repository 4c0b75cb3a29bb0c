"""Check of notebook 02's Task 2, the data: what mmseg builds from the student's data fields (the
datasets and how many samples each split file gives, the pipelines, the pre-processor's batches),
on a copy of the config. Registered in :data:`helpers.checks.config.TASKS`."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpers.checks.config_fields import (
    _CHANGED,
    CROP,
    SCALE,
    _answered_config,
    _not_config,
    _pair,
    _path_note,
    _plain,
    _same_path,
    base_config,
)

__all__ = ["verify_data_edits"]


def _steps(pipeline: Any) -> list[str]:
    return [t.get("type") if isinstance(t, Mapping) else repr(t) for t in pipeline or []]


def _step(pipeline: Any, kind: str) -> Mapping | None:
    return next((t for t in pipeline or [] if isinstance(t, Mapping) and t.get("type") == kind),
                None)


def _train_pipeline_problems(pipeline: Any, key: str, shipped: Any) -> list[str]:
    steps = _steps(pipeline)
    problems = []
    if "PhotoMetricDistortion" in steps:
        problems.append(f"`{key}` still has PhotoMetricDistortion")
    resize, crop = _step(pipeline, "RandomResize"), _step(pipeline, "RandomCrop")
    if resize is None:
        problems.append(f"`{key}` has no RandomResize")
    else:
        if _pair(resize.get("scale")) != SCALE:
            problems.append(f"RandomResize's scale in `{key}` is {_plain(resize.get('scale'))}, "
                            "not the one task 2 asks for")
        want = _step(shipped, "RandomResize")
        for arg in ("ratio_range", "keep_ratio"):
            if _plain(resize.get(arg)) != _plain(want.get(arg)):
                problems.append(f"RandomResize's {arg} in `{key}` is not the shipped one: "
                                "keep it")
    if crop is None:
        problems.append(f"`{key}` has no RandomCrop")
    elif _pair(crop.get("crop_size")) != CROP:
        problems.append(f"RandomCrop's crop_size in `{key}` is {_plain(crop.get('crop_size'))}, "
                        "not the new crop")
    kept = [s for s in _steps(shipped) if s not in ("PhotoMetricDistortion",)]
    if not problems and steps != kept:
        problems.append(f"the steps of `{key}` are {steps}: keep the shipped ones, in their "
                        "order, without PhotoMetricDistortion")
    if not problems:  # the steps are the shipped ones: their other settings stay too
        for step, want in zip(pipeline, [t for t in shipped if t["type"] in kept], strict=True):
            for arg in sorted(set(step) | set(want)):
                if arg not in ("type", *_CHANGED.get(step["type"], ())) and \
                        _plain(step.get(arg)) != _plain(want.get(arg)):
                    problems.append(f"{step['type']}'s {arg} in `{key}` is not the shipped one: "
                                    "keep it")
    return problems


def _test_pipeline_problems(pipeline: Any, key: str, shipped: Any) -> list[str]:
    steps = _steps(pipeline)
    resize = _step(pipeline, "Resize")
    if resize is None:
        return [f"`{key}` has no Resize"]
    problems = []
    if _pair(resize.get("scale")) != SCALE:
        problems.append(f"Resize's scale in `{key}` is {_plain(resize.get('scale'))}, not the "
                        "one task 2 asks for")
    if resize.get("keep_ratio") != _step(shipped, "Resize").get("keep_ratio"):
        problems.append(f"Resize's keep_ratio in `{key}` is not the shipped one: keep it")
    if steps != _steps(shipped):
        problems.append(f"the steps of `{key}` are {steps}: keep the shipped ones in their "
                        "order (LoadAnnotations after Resize: metrics at the original size)")
    return problems


def _split_ids(voc_root: Path, split: str) -> list[str]:
    return (voc_root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


def _dataset_problems(loader: str, dataset_cfg: Any, split: str, voc_root: Path,
                      pipeline_key: str, pipeline: Any) -> list[str]:
    """Build the loader's dataset with mmseg: PascalVOCDataset, one sample per id of the split,
    images in JPEGImages and masks in SegmentationClass, the loader's pipeline = `pipeline`."""
    from mmseg.datasets import PascalVOCDataset
    from mmseg.registry import DATASETS

    if not isinstance(dataset_cfg, Mapping):
        return [f"`{loader}.dataset` is a {type(dataset_cfg).__name__}, not a dataset dict"]
    problems = []
    if _plain(dataset_cfg.get("pipeline")) != _plain(pipeline):
        problems.append(f"`{loader}.dataset.pipeline` differs from `{pipeline_key}`: the loader "
                        f"holds its own copy of {pipeline_key}, made when the file was loaded: "
                        "set it too")
    if dataset_cfg.get("type") != "PascalVOCDataset":
        return problems + [f"`{loader}.dataset.type` is {dataset_cfg.get('type')!r}, not "
                           "mmseg's VOC dataset"]
    if not _same_path(dataset_cfg.get("data_root"), voc_root):
        problems.append(_path_note(f"{loader}.dataset.data_root", dataset_cfg.get("data_root")))
        return problems
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = DATASETS.build(copy.deepcopy(dict(dataset_cfg)))
    except Exception as exc:  # a wrong ann_file or prefix: mmseg says which file is missing
        return problems + [f"mmseg cannot build `{loader}.dataset`: {type(exc).__name__}: "
                           f"{str(exc)[:200]}"]
    if not isinstance(dataset, PascalVOCDataset):
        problems.append(f"`{loader}.dataset` builds a {type(dataset).__name__}")
    ids = _split_ids(voc_root, split)
    if len(dataset) != len(ids):
        problems.append(f"`{loader}.dataset` has {len(dataset)} samples, not one per id of "
                        f"the {split} split file (check ann_file)")
    elif ids:
        info = dataset.get_data_info(0)
        img, seg = Path(info["img_path"]), Path(info["seg_map_path"])
        if img.parent.name != "JPEGImages" or seg.parent.name != "SegmentationClass":
            problems.append(f"`{loader}.dataset.data_prefix` does not point at the images in "
                            "JPEGImages and the masks in SegmentationClass")
        elif not (img.is_file() and seg.is_file()):
            problems.append(f"`{loader}.dataset` reads files that do not exist: {img.name}")
    return problems


def _batch_problems(cfg: Any) -> list[str]:
    """Two training samples through the train pipeline and the model's pre-processor."""
    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import DATASETS, MODELS

    np.random.seed(0)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = DATASETS.build(copy.deepcopy(dict(cfg.train_dataloader.dataset)))
        if len(train) < 2:
            return []
        samples = [train[0], train[1]]
        batch = MODELS.build(copy.deepcopy(dict(cfg.model.data_preprocessor)))(
            pseudo_collate(samples), training=True)
    problems = []
    if any(max(s["inputs"].shape[-2:]) > CROP[0] for s in samples):
        problems.append("training samples come out larger than the crop: look at RandomCrop")
    if tuple(batch["inputs"].shape[-2:]) != CROP:
        problems.append(f"a training batch comes out {tuple(batch['inputs'].shape[-2:])} from "
                        "the model's pre-processor: it pads to model.data_preprocessor.size")
    return problems


def verify_data_edits(cfg: Any, voc_root: str | os.PathLike) -> list[str]:
    """The VOC dataset on `voc_root` in all three loaders, the 256×256 crop everywhere, the
    homework's pipelines, batch 8; the datasets mmseg builds from the loaders match the splits."""
    from mmseg.utils import register_all_modules

    if _answered_config(cfg, "data") is None:
        return _not_config(cfg)
    cfg, voc_root, shipped = copy.deepcopy(cfg), Path(voc_root), base_config()
    problems = []
    if cfg.get("dataset_type") != "PascalVOCDataset":
        problems.append(f"`dataset_type` is {cfg.get('dataset_type')!r}, not mmseg's VOC "
                        "dataset")
    if not _same_path(cfg.get("data_root"), voc_root):
        problems.append(_path_note("data_root", cfg.get("data_root")))
    for key, value in (("crop_size", cfg.get("crop_size")),
                       ("data_preprocessor.size", cfg.get("data_preprocessor", {}).get("size")),
                       ("model.data_preprocessor.size",
                        cfg.model.get("data_preprocessor", {}).get("size"))):
        if _pair(value) != CROP:
            problems.append(f"`{key}` is {_plain(value)!r}, not the crop task 2 asks for")
    problems += _train_pipeline_problems(cfg.get("train_pipeline"), "train_pipeline",
                                         shipped.train_pipeline)
    problems += _test_pipeline_problems(cfg.get("test_pipeline"), "test_pipeline",
                                        shipped.test_pipeline)
    if cfg.train_dataloader.get("batch_size") != 8:
        problems.append(f"`train_dataloader.batch_size` is "
                        f"{cfg.train_dataloader.get('batch_size')!r}, not the homework's")
    for loader in ("val_dataloader", "test_dataloader"):
        got = cfg.get(loader, {}).get("batch_size")
        if got != shipped[loader].batch_size:
            problems.append(f"`{loader}.batch_size` is {got!r}: only the training batch "
                            "changes, keep the shipped one")
    register_all_modules()
    for loader, split, key in (("train_dataloader", "train", "train_pipeline"),
                               ("val_dataloader", "val", "test_pipeline"),
                               ("test_dataloader", "val", "test_pipeline")):
        problems += _dataset_problems(loader, cfg.get(loader, {}).get("dataset"), split,
                                      voc_root, key, cfg.get(key))
    if problems:
        return problems
    return _batch_problems(cfg)
