"""Checks of notebook 01's tasks: read a mask's class ids, a dataset class of one's own, count
pixels per class, pad the training crops.

Each ``verify_*`` (or the verify that a ``*_verifier`` returns) takes the student's answer and
returns the problems found (see `helpers.checks.check`); each ``*_reference`` is what the lesson
continues with when the answer is missing or wrong. The truths are made here in other ways than
the notebook's solutions: masks written from arrays held in memory, mmseg's own
`PascalVOCDataset`, a constant image whose padding can be told apart from its content.
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
from helpers.checks import answered

__all__ = [
    "read_class_ids_reference",
    "verify_read_class_ids",
    "dataset_cfg_reference",
    "dataset_cfg_verifier",
    "class_pixel_counts_reference",
    "verify_class_pixel_counts",
    "padded_pipeline_reference",
    "padded_pipeline_verifier",
]

VOID = 255
read_class_ids_reference = voc.read_mask
"""The course's mask reader (a palette PNG read with PIL), the lesson's fallback for task 1."""


def _voc_names() -> list[str]:
    from mmseg.datasets import PascalVOCDataset

    return [*PascalVOCDataset.METAINFO["classes"], "void"]


def _test_masks() -> dict[str, np.ndarray]:
    """Masks whose ids are known without reading any file: every id once, a cat alone, a mix."""
    rng = np.random.default_rng(2010)
    every = rng.permutation(np.repeat(np.r_[0:21, VOID].astype(np.uint8), 60)).reshape(33, 40)
    cat = np.zeros((48, 64), np.uint8)  # cat is id 8, displayed (64, 0, 0): no channel is 128
    cat[10:34, 16:50], cat[8:10, 14:52] = 8, VOID
    mix = rng.choice(np.array([0, 0, 0, 1, 5, 15, 15, 20, VOID], np.uint8), size=(70, 25))
    return {"a mask with every id": every, "a mask with only a cat": cat, "a third mask": mix}


def _write_masks(folder: str, masks: dict[str, np.ndarray]) -> list[Path]:
    paths = [Path(folder, f"mask_{k}.png") for k in range(len(masks))]
    for path, mask in zip(paths, masks.values(), strict=True):
        voc.save_mask(mask, path)  # a palette PNG, as VOC stores it
    return paths


def verify_read_class_ids(read_class_ids: Callable) -> list[str]:
    """`read_class_ids(path)` on palette PNGs written from known id arrays (str and Path)."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        masks = _test_masks()
        for k, (path, (what, want)) in enumerate(zip(_write_masks(tmp, masks), masks.items(),
                                                     strict=True)):
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


def dataset_cfg_reference(voc_root: str | os.PathLike, split: str = "train") -> dict:
    """The config dict of mmseg's own `PascalVOCDataset` for one split (the lesson's fallback)."""
    return voc.dataset_cfg(voc_root, split)


def _pascal_voc(voc_root: str | os.PathLike, split: str):
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
                        "order: set METAINFO = dict(classes=..., palette=...) on the class)")
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


def dataset_cfg_verifier(voc_root: str | os.PathLike, split: str = "train"
                         ) -> Callable[[dict], list[str]]:
    """Verify for a dataset config dict: a class of one's own in mmseg's DATASETS registry, built
    with `DATASETS.build`, equal to `PascalVOCDataset` on `split` and on another split."""

    def verify(cfg: dict) -> list[str]:
        from mmseg.datasets import BaseSegDataset, PascalVOCDataset
        from mmseg.registry import DATASETS

        answered(cfg, "dataset_cfg")
        if not isinstance(cfg, dict) or not isinstance(cfg.get("type"), str):
            return ["dataset_cfg must be a dict whose 'type' is your class's name (a str)"]
        cls = DATASETS.get(cfg["type"])
        if cls is None:
            return [f"no dataset named {cfg['type']!r} is in mmseg's DATASETS registry: "
                    "decorate your class with @DATASETS.register_module(force=True) and run "
                    "its cell"]
        if isinstance(cls, type) and issubclass(cls, PascalVOCDataset):
            return [f"{cfg['type']} is (or derives from) PascalVOCDataset: write your own class "
                    "on BaseSegDataset, it is the point of the task"]
        if not (isinstance(cls, type) and issubclass(cls, BaseSegDataset)):
            return [f"{cfg['type']} does not derive from mmseg's BaseSegDataset"]
        problems = []
        for name, want in ((split, split), ("another split", "val" if split != "val" else
                                            "train")):
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

    return verify


def class_pixel_counts_reference(paths: Sequence[str | os.PathLike]) -> dict[str, int]:
    """Pixels per class name (21 VOC classes, then "void") over the masks at `paths`."""
    total = np.zeros(256, np.int64)
    for path in paths:
        total += np.bincount(voc.read_mask(path).ravel(), minlength=256)
    return {name: int(total[i]) for name, i in zip(_voc_names(), [*range(21), VOID], strict=True)}


def _count_problems(got: object, masks: list[np.ndarray], where: str) -> list[str]:
    names = _voc_names()
    if not isinstance(got, dict):
        return [f"for {where} it returned {type(got).__name__}, not a dict of class name → count"]
    missing, extra = [n for n in names if n not in got], [k for k in got if k not in names]
    problems = [f"for {where} keys are missing: {missing}"] if missing else []
    problems += [f"for {where} unexpected keys: {extra[:5]}"] if extra else []
    if problems:
        return problems
    if not all(isinstance(v, int | np.integer) for v in got.values()):
        return [f"for {where} the counts are not integers"]
    ids = np.concatenate([m.ravel() for m in masks])
    values, freq = np.unique(ids, return_counts=True)
    truth = dict.fromkeys(names, 0)
    truth.update({names[21 if v == VOID else v]: int(f) for v, f in zip(values, freq, strict=True)})
    per_image = {n: sum(int((m == (VOID if n == "void" else names.index(n))).any()) for m in masks)
                 for n in names}
    if got == per_image:
        return [f"for {where} the numbers count images that contain each class, not pixels"]
    total = sum(int(v) for v in got.values())
    if total != ids.size:
        more = "more" if total > ids.size else "fewer"
        problems.append(f"for {where} the counts add up to {more} pixels than the masks hold")
    wrong = [n for n in names if int(got[n]) != truth[n]]
    if wrong:
        problems.append(f"for {where} the count is wrong for {wrong[:6]}"
                        + (f" and {len(wrong) - 6} more" if len(wrong) > 6 else ""))
    return problems


def verify_class_pixel_counts(class_pixel_counts: Callable) -> list[str]:
    """`class_pixel_counts(paths)` on three masks written from known arrays, then on one."""
    masks = list(_test_masks().values())
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_masks(tmp, dict(enumerate(masks)))
        problems = _count_problems(answered(class_pixel_counts(paths)), masks, "three masks")
        if not problems:
            problems = _count_problems(answered(class_pixel_counts([str(paths[1])])), masks[1:2],
                                       "a list of one mask path (str)")
    return problems


def _plain(value: object) -> object:
    """A config value with tuples as lists and ConfigDicts as dicts, for comparing steps."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def padded_pipeline_reference(base: Sequence[dict], crop: tuple[int, int]) -> list[dict]:
    """`base` with mmcv's `Pad` to `crop` (mask padded with 255) inserted before PackSegInputs."""
    steps = [copy.deepcopy(dict(t)) for t in base]
    at = next((k for k, t in enumerate(steps) if t["type"] == "PackSegInputs"), len(steps))
    steps.insert(at, dict(type="Pad", size=tuple(crop), pad_val=dict(img=0, seg=VOID)))
    return steps


def padded_pipeline_verifier(base: Sequence[dict], crop: tuple[int, int], dataset
                             ) -> Callable[[list], list[str]]:
    """Verify for a training pipeline (a list of transform dicts) that keeps `base`'s steps and
    gives every sample exactly `crop` (h, w), padding the mask with the ignore index 255."""
    crop = tuple(crop)

    def verify(pipeline: list) -> list[str]:
        from mmcv.transforms import Compose
        from mmseg.registry import TRANSFORMS
        from mmseg.utils import register_all_modules

        answered(pipeline, "padded_pipeline")
        if not isinstance(pipeline, list | tuple) or not all(
                isinstance(t, dict) and "type" in t for t in pipeline):
            return ["padded_pipeline must be a list of transform dicts, each with a 'type'"]
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
                from PIL import Image

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
                    if what == "a small image":
                        border = (img == 0).all(axis=2)
                        padded += int(border.any())
                        if (seg[border] != VOID).any():
                            problems.append("the padded border of the mask holds labels "
                                            f"{sorted(set(seg[border].tolist()) - {VOID})}, not "
                                            "the ignore index 255: the loss would learn them")
                            break
                        if (seg[~border] != 8).any():
                            problems.append("the mask no longer lines up with the image")
                            break
                if not problems and not padded:
                    problems.append("no sample was padded: is the small image made to the crop?")
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        return problems

    return verify
