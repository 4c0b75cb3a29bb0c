"""Checks of notebook 01's tasks: read a mask's class ids, a dataset class of one's own, count
pixels and images per class, pad the training crops.

Each ``verify_*`` takes the student's answer (and the task's context) and returns the problems
found (see `helpers.checks.check`), registered in :data:`TASKS`. The truths are not computed the
way the tasks ask: three small masks are written from id arrays (`helpers.checks.masks`),
and what they hold (:data:`MASK_COUNTS`) is written there as data; a dataset is compared with
mmseg's own `PascalVOCDataset`; a padded pipeline runs on a constant image whose padding can be
told apart from its content.
"""

from __future__ import annotations

import copy
import os
import random
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from helpers import voc
from helpers.checks import Task, answered
from helpers.checks.masks import MASK_COUNTS, VOID, check_masks, other_pngs, write_masks

__all__ = [
    "MASK_COUNTS",
    "check_masks",
    "verify_read_class_ids",
    "verify_voc_dataset",
    "verify_class_counts",
    "verify_padded_pipeline",
    "TASKS",
]


def _voc_names() -> list[str]:
    from mmseg.datasets import PascalVOCDataset

    return [*PascalVOCDataset.METAINFO["classes"], "void"]


# ------------------------------------------------------------------------ Task 1: read_class_ids


def verify_read_class_ids(read_class_ids: Callable) -> list[str]:
    """`read_class_ids(path)` on palette PNGs written from known id arrays (str and Path): VOC's
    palette, then other sizes and palettes."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        masks = check_masks()
        cases = [(what, path, want) for path, (what, want)
                 in zip(write_masks(tmp, masks), masks.items(), strict=True)]
        for k, (what, path, want) in enumerate(cases + other_pngs(tmp)):
            got = answered(read_class_ids(str(path) if k % 2 else path))
            if not isinstance(got, np.ndarray):
                return [f"for {what} it returned {type(got).__name__}, not a numpy array"]
            if got.ndim == 3:
                return [f"for {what} it returned shape {got.shape}: three colour channels. That "
                        "is the palette's display colour (what cv2.imread or .convert('RGB') "
                        "give), not the class id a palette PNG stores per pixel"]
            if got.shape != want.shape:
                hint = " (width and height swapped?)" if got.shape == want.shape[::-1] else ""
                problems.append(f"for {what} the shape is {got.shape}, not the mask's "
                                f"height × width{hint}")
                continue
            if got.dtype != np.uint8:
                problems.append(f"for {what} the dtype is {got.dtype}, not uint8")
            wrong = int((got.astype(np.int64) != want).sum())
            if wrong:
                odd = sorted({int(v) for v in np.unique(got)} - {*range(21), VOID})
                problems.append(f"for {what} {wrong} of {want.size} pixels hold another value "
                                "than the stored class id"
                                + (f"; values {odd[:6]} are no VOC class id" if odd else ""))
    return problems


# ------------------------------------------------------------------------ Task 2: voc_dataset


def _pascal_voc(voc_root: str | os.PathLike, split: str):
    """mmseg's own dataset class on one split: what the student's class must equal."""
    from mmseg.datasets import PascalVOCDataset

    return PascalVOCDataset(data_root=str(voc_root), ann_file=f"ImageSets/Segmentation/{split}.txt",
                            data_prefix=dict(img_path="JPEGImages",
                                             seg_map_path="SegmentationClass"))


def _samples(dataset) -> list[tuple[str, str]]:
    infos = (dataset.get_data_info(i) for i in range(len(dataset)))
    return [(os.path.normpath(d["img_path"]), os.path.normpath(d["seg_map_path"])) for d in infos]


def _compare_datasets(ds, ref, split: str) -> list[str]:
    problems = []
    if tuple(ds.metainfo.get("classes") or ()) != tuple(ref.metainfo["classes"]):
        problems.append("its metainfo 'classes' are not PascalVOCDataset's (the names, in id "
                        "order, belong in the class's METAINFO)")
    if [list(c) for c in ds.metainfo.get("palette") or []] != \
            [list(c) for c in ref.metainfo["palette"]]:
        problems.append("its metainfo 'palette' is not PascalVOCDataset's (without one, mmseg "
                        "draws random colours)")
    if (ds.reduce_zero_label, ds.ignore_index) != (False, VOID):
        problems.append("keep reduce_zero_label=False and ignore_index=255: id 0 is VOC's "
                        "background class, a real class")
    got, want = _samples(ds), _samples(ref)
    if len(got) != len(want) or {Path(i).stem for i, _ in got} != {Path(i).stem for i, _ in want}:
        more = "more" if len(got) > len(want) else "fewer" if len(got) < len(want) else "other"
        problems.append(f"it holds {more} samples than ImageSets/Segmentation/{split}.txt lists: "
                        "read the split file through ann_file (relative to data_root), not the "
                        "image folder")
        return problems
    for kind, k, where in (("image", 0, "img_path / img_suffix"),
                           ("mask", 1, "seg_map_path / seg_map_suffix")):
        bad = [(g[k], w[k]) for g, w in zip(got, want, strict=True) if g[k] != w[k]]
        if bad:
            missing = "" if os.path.exists(bad[0][0]) else ", a file that does not exist"
            many = f"all {kind} paths differ" if len(bad) == len(got) else \
                f"{len(bad)} {kind} path(s) differ"
            problems.append(f"{many} from PascalVOCDataset's, e.g. {bad[0][0]}{missing} (check "
                            f"data_prefix's {where})")
    return problems


def verify_voc_dataset(cfg: dict, voc_root: str | os.PathLike, split: str = "train"
                       ) -> list[str]:
    """A dataset config dict: a class of one's own in mmseg's DATASETS registry, built with
    `DATASETS.build`, equal to `PascalVOCDataset` under `voc_root` on `split` and on another
    split."""
    from mmseg.datasets import BaseSegDataset, PascalVOCDataset
    from mmseg.registry import DATASETS

    answered(cfg, "dataset_cfg")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("type"), str):
        return ["dataset_cfg must be a dict whose 'type' is your class's name (a str)"]
    cls = DATASETS.get(cfg["type"])
    if cls is None:
        return [f"no dataset named {cfg['type']!r} is in mmseg's DATASETS registry: register "
                "your class there (in a way that survives running its cell twice) and run its "
                "cell"]
    if isinstance(cls, type) and issubclass(cls, PascalVOCDataset):
        return [f"{cfg['type']} is (or derives from) PascalVOCDataset: write your own class "
                "on BaseSegDataset, it is the point of the task"]
    if not (isinstance(cls, type) and issubclass(cls, BaseSegDataset)):
        return [f"{cfg['type']} does not derive from mmseg's BaseSegDataset"]
    problems = []
    for name, want in ((split, split), ("another split", "val" if split != "val" else "train")):
        other = dict(copy.deepcopy(cfg), ann_file=f"ImageSets/Segmentation/{want}.txt")
        try:
            ds = DATASETS.build(copy.deepcopy(cfg) if name == split else other)
        except Exception as exc:  # noqa: BLE001 - reported to the student
            problems.append(f"DATASETS.build(dataset_cfg) for {name} raised "
                            f"{type(exc).__name__}: {exc}")
            break
        found = _compare_datasets(ds, _pascal_voc(voc_root, want), want)
        if name != split and found:
            found = ["with ann_file set to another split, " + found[-1] + " (does your "
                     "class ignore the config's ann_file?)"]
        problems += found
        if found:
            break
    return problems


# ------------------------------------------------------------------------ Task 3: class counts

_KINDS = ("pixels", "images")


def _some(wrong: list[str]) -> str:
    """The first six names of `wrong`, and how many more."""
    return f"{wrong[:6]}" + (f" and {len(wrong) - 6} more" if len(wrong) > 6 else "")


def _count_problems(got: object, which: Sequence[int], where: str) -> list[str]:
    """`got` against :data:`MASK_COUNTS` of the masks `which` (indices, repeats allowed)."""
    names = _voc_names()
    if not isinstance(got, dict):
        return [f"for {where} it returned {type(got).__name__}, not a dict of class name → "
                "counts"]
    missing, extra = [n for n in names if n not in got], [k for k in got if k not in names]
    problems = [f"for {where} keys are missing: {missing}"] if missing else []
    problems += [f"for {where} unexpected keys: {extra[:5]}"] if extra else []
    if problems:
        return problems
    if not all(isinstance(v, dict) and set(v) == set(_KINDS) for v in got.values()):
        return [f"for {where} each class's value must be a dict with exactly the keys "
                "'pixels' and 'images'"]
    if not all(isinstance(v[k], int | np.integer) and not isinstance(v[k], bool)
               for v in got.values() for k in _KINDS):
        return [f"for {where} the counts are not integers"]
    ids = [*range(21), VOID]
    truth = {"pixels": {n: sum(MASK_COUNTS[m].get(i, 0) for m in which)
                        for n, i in zip(names, ids, strict=True)},
             "images": {n: sum(int(i in MASK_COUNTS[m]) for m in which)
                        for n, i in zip(names, ids, strict=True)}}
    got_ = {k: {n: int(got[n][k]) for n in names} for k in _KINDS}
    if got_["pixels"] == truth["images"] and got_["images"] == truth["pixels"] \
            and truth["pixels"] != truth["images"]:
        return [f"for {where} 'pixels' and 'images' are swapped"]
    total, size = sum(got_["pixels"].values()), sum(truth["pixels"].values())
    if total != size:
        more = "more" if total > size else "fewer"
        problems.append(f"for {where} the pixel counts add up to {more} pixels than the masks "
                        "hold")
    for kind in _KINDS:
        wrong = [n for n in names if got_[kind][n] != truth[kind][n]]
        if wrong:
            problems.append(f"for {where} the {kind} count is wrong for "
                            f"{_some(wrong)}")
    if got_["images"] != truth["images"] and max(got_["images"].values()) > len(which):
        problems.append(f"for {where} some class is in more images than there are masks: "
                        "count a mask once per class it holds, however many pixels")
    return problems


def verify_class_counts(class_counts: Callable) -> list[str]:
    """`class_counts(paths)` on three masks written from known arrays, then on one mask given
    twice (a str and a Path), then on no mask at all."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_masks(tmp, check_masks())
        problems = _count_problems(answered(class_counts(paths)), (0, 1, 2), "three masks")
        if not problems:
            problems = _count_problems(answered(class_counts([str(paths[1]), paths[1]])),
                                       (1, 1), "one mask listed twice (a str, then a Path)")
        if not problems:
            problems = _count_problems(answered(class_counts([])), (), "an empty list of paths")
    return problems


# ------------------------------------------------------------------------ Task 4: padded pipeline


def _plain(value: object) -> object:
    """A config value with tuples as lists and ConfigDicts as dicts, for comparing steps."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _seed_pipeline() -> list:
    """The training pipeline of mmseg's shipped VOC data config, as the notebook loads it."""
    from mmengine.config import Config

    from helpers.mmseg_configs import mmseg_config_dir

    return Config.fromfile(mmseg_config_dir() / "_base_" / "datasets" / "pascal_voc12.py"
                           ).train_pipeline


def verify_padded_pipeline(pipeline: list, base: Sequence[dict], crop: tuple[int, int],
                           dataset) -> list[str]:
    """A training pipeline (a list of transform dicts) that keeps `base`'s steps and gives every
    sample exactly `crop` (h, w), padding the mask with the ignore index 255; `dataset`'s first
    samples run through it too. The padding is found in the mask (the small image's mask is one
    class), so a colour transform after `Pad` (PhotoMetricDistortion) does not hide it."""
    from mmcv.transforms import Compose
    from mmseg.registry import TRANSFORMS
    from mmseg.utils import register_all_modules
    from PIL import Image

    crop = tuple(crop)
    answered(pipeline, "padded_pipeline")
    if not isinstance(pipeline, list | tuple) or not all(
            isinstance(t, dict) and "type" in t for t in pipeline):
        return ["padded_pipeline must be a list of transform dicts, each with a 'type'"]
    if _plain(list(base)) != _plain(list(_seed_pipeline())):
        return ["cfg.train_pipeline is no longer the one of mmseg's pascal_voc12.py: don't "
                "change cfg, make a new list (load cfg again to undo the change)"]
    rest = iter([_plain(t) for t in pipeline])  # base's steps, unchanged and in order
    lost = [t["type"] for t in base if not any(_plain(t) == s for s in rest)]
    if lost:
        return [f"the seed pipeline's step(s) {lost} are missing, changed or out of order: "
                "keep its steps as they are and add what is needed"]
    if pipeline[-1]["type"] != "PackSegInputs":
        return ["PackSegInputs must stay the last step (it turns the sample into tensors)"]
    register_all_modules(init_default_scope=False)
    try:
        compose = Compose([TRANSFORMS.build(copy.deepcopy(t)) for t in pipeline[:-1]])
    except Exception as exc:  # noqa: BLE001 - reported to the student
        return [f"TRANSFORMS.build failed on a step: {type(exc).__name__}: {exc}"]
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(2012)
    random.seed(2012)
    problems: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:  # a small constant image: its padding shows
            h, w = max(8, crop[0] // 6), max(8, crop[1] // 5)
            small = dict(img_path=f"{tmp}/small.png", seg_map_path=f"{tmp}/small_mask.png",
                         reduce_zero_label=False, seg_fields=[])
            Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(small["img_path"])
            voc.save_mask(np.full((h, w), 8, np.uint8), small["seg_map_path"])
            infos = [("a small image", small)] * 8 + [
                (f"sample {i}", dataset.get_data_info(i)) for i in range(min(3, len(dataset)))]
            padded = 0
            for what, info in infos:
                out = compose(copy.deepcopy(info))
                img, seg = out["img"], out["gt_seg_map"]
                if img.shape[:2] != crop or seg.shape != crop:
                    problems.append(f"for {what} the pipeline gives an image of "
                                    f"{img.shape[1]}×{img.shape[0]} and a mask of "
                                    f"{seg.shape[1]}×{seg.shape[0]} (w×h), not the crop")
                    break
                if what == "a small image":  # its mask is all cat (8): the rest is padding
                    border = seg != 8
                    padded += int(border.any())
                    if (seg[border] != VOID).any():
                        problems.append("the padded border of the mask holds labels "
                                        f"{sorted(set(seg[border].tolist()) - {VOID})}, not "
                                        "the ignore index 255: the loss would learn them")
                        break
            if not problems and not padded:
                problems.append("no sample was padded: is the small image made to the crop?")
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return problems


#: The tasks of notebook 01 and their hints (an API or a concept, never the code).
TASKS = {
    "read_class_ids": Task(
        verify_read_class_ids,
        hint="a palette ('P' mode) PNG: the pixel values are the class ids, the palette only "
             "colours them. See Pillow's Image module and numpy's array interface, or mmcv's "
             "image IO (its flag and backend arguments)"),
    "voc_dataset": Task(
        verify_voc_dataset,
        hint="mmengine's Registry.register_module (and its `force`); BaseSegDataset's "
             "arguments: METAINFO and the file suffixes belong to the class, data_prefix and "
             "ann_file (relative to data_root) to the config"),
    "class_counts": Task(
        verify_class_counts,
        hint="numpy's bincount (its minlength), or unique with return_counts; pixels add up "
             "over masks, images count the masks where a class's count is above zero; void is "
             "the id 255"),
    "padded_pipeline": Task(
        verify_padded_pipeline,
        hint="mmcv's Pad transform (its `size` and `pad_val`); a pipeline's transforms run in "
             "list order"),
}
