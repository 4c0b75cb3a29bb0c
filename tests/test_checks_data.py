"""The checks of notebook 01's tasks (helpers.checks.data) on the demo dataset and mmseg itself:
blank is unanswered, the solution is correct, plausible mistakes are wrong with a message that
names the problem and does not give the expected value away. The solutions live in the tests
only: the checks module ships no answer key."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from mmseg.datasets import BaseSegDataset, PascalVOCDataset
from mmseg.registry import DATASETS
from PIL import Image

from helpers import voc
from helpers.checks import Task, check, data, evaluate
from helpers.mmseg_configs import mmseg_config_dir

META = dict(classes=PascalVOCDataset.METAINFO["classes"],
            palette=PascalVOCDataset.METAINFO["palette"])
PREFIX = dict(img_path="JPEGImages", seg_map_path="SegmentationClass")


def _wrong(answer, verify, *expected: str, **context) -> list[str]:
    status, problems = evaluate(answer, verify, **context)
    assert status == "wrong", (status, problems)
    text = " ".join(problems)
    assert all(e in text for e in expected), problems
    return problems


# ---------------------------------------------------------------- Task 1: read_class_ids


def read_class_ids(path):
    with Image.open(path) as img:
        return np.array(img)


def test_read_class_ids_blank_and_right():
    assert evaluate(lambda path: None, data.verify_read_class_ids) == ("unanswered", [])
    assert evaluate(read_class_ids, data.verify_read_class_ids) == ("correct", [])
    assert evaluate(voc.read_mask, data.verify_read_class_ids) == ("correct", [])


def test_the_masks_hold_what_their_data_says(tmp_path):
    """MASK_COUNTS, written as data, is what the masks hold, also once written and read back."""
    masks = list(data.check_masks().values())
    for mask, counts in zip(masks, data.MASK_COUNTS, strict=True):
        ids, n = np.unique(mask, return_counts=True)
        assert dict(zip(ids.tolist(), n.tolist(), strict=True)) == counts
        voc.save_mask(mask, tmp_path / "m.png")
        assert np.array_equal(read_class_ids(tmp_path / "m.png"), mask)
    assert set(data.MASK_COUNTS[0]) == {*range(21), 255}


def test_read_class_ids_catches_colour_reads():
    _wrong(lambda p: cv2.imread(str(p)), data.verify_read_class_ids, "three colour channels",
           "cv2.imread")
    problems = _wrong(lambda p: np.array(Image.open(p).convert("L")), data.verify_read_class_ids,
                      "pixels hold another value", "no VOC class id")
    assert len(problems) == 5  # every mask but the one whose palette is grey


def test_read_class_ids_catches_readers_of_voc_colours_only():
    """A reader that maps VOC's display colours back to ids is right on VOC's masks only."""
    from helpers.palette import lut

    colours: dict[tuple, int] = {}
    for i, c in enumerate(lut().tolist()):
        colours.setdefault(tuple(c), i)  # the lowest id of a colour

    def from_colours(path):
        with Image.open(path) as png:
            rgb = np.array(png.convert("RGB"))
        return np.array([colours.get(tuple(c), 0) for c in rgb.reshape(-1, 3).tolist()],
                        np.uint8).reshape(rgb.shape[:2])

    problems = _wrong(from_colours, data.verify_read_class_ids, "a mask with a grey palette",
                      "a 4-bit palette PNG")
    assert not [p for p in problems if "a mask with" in p and "grey" not in p], problems


def test_read_class_ids_names_shape_and_dtype():
    _wrong(lambda p: read_class_ids(p).T, data.verify_read_class_ids, "width and height swapped")
    _wrong(lambda p: read_class_ids(p).astype(np.int64), data.verify_read_class_ids,
           "dtype is int64, not uint8")
    _wrong(lambda p: read_class_ids(p).tolist(), data.verify_read_class_ids, "not a numpy array")


# ---------------------------------------------------------------- Task 2: the dataset class


@DATASETS.register_module(force=True)
class CourseDataset(BaseSegDataset):
    METAINFO = META

    def __init__(self, **kwargs):
        super().__init__(img_suffix=".jpg", seg_map_suffix=".png", **kwargs)


@DATASETS.register_module(force=True)
class MaskSuffixDataset(BaseSegDataset):
    METAINFO = META

    def __init__(self, **kwargs):  # copies the image suffix for the masks
        super().__init__(img_suffix=".jpg", seg_map_suffix=".jpg", **kwargs)


@DATASETS.register_module(force=True)
class NoMetaDataset(BaseSegDataset):
    pass


@DATASETS.register_module(force=True)
class FixedSplitDataset(BaseSegDataset):
    METAINFO = META

    def __init__(self, **kwargs):  # always the train split, whatever the config says
        super().__init__(**{**kwargs, "ann_file": "ImageSets/Segmentation/train.txt"})


def _cfg(root, **changes) -> dict:
    cfg = dict(type="CourseDataset", data_root=str(root), data_prefix=dict(PREFIX),
               ann_file="ImageSets/Segmentation/train.txt", pipeline=[])
    return {k: v for k, v in {**cfg, **changes}.items() if v is not None}


def test_dataset_blank_right_and_registered_twice(demo_root):
    verify = data.verify_voc_dataset
    assert evaluate(None, verify, voc_root=demo_root) == ("unanswered", [])
    assert evaluate(_cfg(demo_root), verify, voc_root=demo_root) == ("correct", [])
    # the notebook's cell runs again: force=True replaces the class under the same name
    DATASETS.register_module(name="CourseDataset", force=True,
                             module=type("CourseDataset", (CourseDataset,), {}))
    assert evaluate(_cfg(demo_root), verify, voc_root=demo_root) == ("correct", [])
    with pytest.raises(KeyError, match="already registered"):
        DATASETS.register_module(name="CourseDataset", module=CourseDataset)


def test_dataset_mistakes_are_named_without_the_answer(demo_root):
    def verify(cfg):
        return data.verify_voc_dataset(cfg, voc_root=demo_root)

    n_train = str(len(voc.split_ids(demo_root, "train")))
    for problems in (
        _wrong(_cfg(demo_root, ann_file=None), verify, "more samples", "ann_file"),
        _wrong(_cfg(demo_root, ann_file="ImageSets/Segmentation/val.txt"), verify,
               "fewer samples", "train.txt"),
        _wrong(_cfg(demo_root, type="MaskSuffixDataset"), verify, "all mask paths differ",
               "does not exist", "seg_map_suffix"),
        _wrong(_cfg(demo_root, data_prefix=dict(img_path="JPEGImages", seg_map_path="")),
               verify, "all mask paths differ", "seg_map_path"),
        _wrong(_cfg(demo_root, type="NoMetaDataset"), verify, "'classes'", "'palette'"),
        _wrong(_cfg(demo_root, type="FixedSplitDataset"), verify, "another split",
               "ignore the config's ann_file"),
    ):
        assert n_train not in " ".join(problems).replace("demo_0000", "")
    _wrong(_cfg(demo_root, type="NotRegisteredDataset"), verify, "no dataset named",
           "DATASETS registry", "running its cell twice")
    _wrong(_cfg(demo_root, type="PascalVOCDataset"), verify, "write your own class")
    _wrong(_cfg(demo_root, reduce_zero_label=True), verify, "reduce_zero_label=False")
    _wrong([_cfg(demo_root)], verify, "must be a dict")


def test_dataset_check_takes_its_split_from_the_context(demo_root):
    cfg = _cfg(demo_root, ann_file="ImageSets/Segmentation/val.txt")
    assert evaluate(cfg, data.verify_voc_dataset, voc_root=demo_root, split="val") == \
        ("correct", [])


# ---------------------------------------------------------------- Task 3: class counts


def class_counts(paths):
    names = [*PascalVOCDataset.METAINFO["classes"], "void"]
    counts = {name: {"pixels": 0, "images": 0} for name in names}
    for path in paths:
        ids, n = np.unique(read_class_ids(path), return_counts=True)
        for i, k in zip(ids, n, strict=True):
            name = names[-1] if i == 255 else names[i]
            counts[name]["pixels"] += int(k)
            counts[name]["images"] += 1
    return counts


def test_class_counts_blank_and_right(demo_root):
    from collections import Counter

    verify = data.verify_class_counts
    assert evaluate(lambda paths: None, verify) == ("unanswered", [])
    assert evaluate(class_counts, verify) == ("correct", [])
    assert evaluate(lambda paths: Counter(class_counts(paths)), verify) == ("correct", [])
    numpy_ints = {n: {k: np.int64(v) for k, v in c.items()} for n, c in class_counts([]).items()}
    assert evaluate(lambda paths: {n: {k: numpy_ints[n][k] + v for k, v in c.items()}
                                   for n, c in class_counts(paths).items()}, verify) == \
        ("correct", [])
    paths = [demo_root / voc.MASK_DIR / f"{i}.png" for i in voc.split_ids(demo_root, "val")]
    counts = class_counts(paths)
    assert list(counts)[-1] == "void"
    assert sum(c["pixels"] for c in counts.values()) == sum(voc.read_mask(p).size for p in paths)
    assert counts["background"]["images"] == len(paths)


def test_class_count_mistakes():
    verify = data.verify_class_counts

    def without_void(paths):
        counts = class_counts(paths)
        counts.pop("void")
        return counts

    def void_as_background(paths):
        counts = class_counts(paths)
        void = counts.pop("void")
        counts["background"] = {k: counts["background"][k] + void[k] for k in void}
        return {**counts, "void": {"pixels": 0, "images": 0}}

    def swapped(paths):
        return {n: {"pixels": c["images"], "images": c["pixels"]}
                for n, c in class_counts(paths).items()}

    def images_as_pixel_sums(paths):  # images += the counts, not whether a class is there
        return {n: {"pixels": c["pixels"], "images": c["pixels"]}
                for n, c in class_counts(paths).items()}

    def every_mask_for_every_class(paths):
        return {n: {"pixels": c["pixels"], "images": len(paths)}
                for n, c in class_counts(paths).items()}

    def set_of_paths(paths):  # a path listed twice counted once
        return class_counts(list(dict.fromkeys(str(p) for p in paths)))

    _wrong(without_void, verify, "keys are missing: ['void']")
    problems = _wrong(void_as_background, verify, "pixels count is wrong for ['background', "
                      "'void']", "images count is wrong for ['background', 'void']")
    _wrong(swapped, verify, "'pixels' and 'images' are swapped")
    problems += _wrong(images_as_pixel_sums, verify, "images count is wrong",
                       "more images than there are masks")
    problems += _wrong(every_mask_for_every_class, verify, "images count is wrong for")
    problems += _wrong(set_of_paths, verify, "listed twice", "add up to fewer pixels")
    _wrong(lambda paths: class_counts(paths[:1]), verify, "add up to fewer pixels")
    _wrong(lambda paths: class_counts(paths) if paths else {}, verify,
           "for an empty list of paths keys are missing")
    _wrong(lambda paths: {n: c["pixels"] for n, c in class_counts(paths).items()}, verify,
           "exactly the keys 'pixels' and 'images'")
    _wrong(lambda paths: {n: {k: float(v) for k, v in c.items()}
                          for n, c in class_counts(paths).items()}, verify, "not integers")
    _wrong(lambda paths: list(class_counts(paths).values()), verify, "not a dict")
    masks = data.check_masks().values()  # the verify's own masks
    _, true_counts = np.unique(np.concatenate([m.ravel() for m in masks]), return_counts=True)
    numbers = set(re.findall(r"\d+", " ".join(problems)))
    assert numbers.isdisjoint(str(n) for n in true_counts), numbers  # no true count given away


# ---------------------------------------------------------------- Task 4: the padded pipeline


@pytest.fixture(scope="module")
def seed(demo_root):
    """mmseg's VOC data config, as notebook 01 loads it (512×512 crops, PhotoMetricDistortion)."""
    from mmengine.config import Config

    cfg = Config.fromfile(mmseg_config_dir() / "_base_" / "datasets" / "pascal_voc12.py")
    dataset = PascalVOCDataset(data_root=str(demo_root), data_prefix=dict(PREFIX),
                               ann_file="ImageSets/Segmentation/train.txt")
    context = dict(base=cfg.train_pipeline, crop=cfg.crop_size, dataset=dataset)

    def verify(pipeline):
        return data.verify_padded_pipeline(pipeline, **context)

    return cfg, verify


def test_padded_pipeline_blank_and_right(seed):
    cfg, verify = seed
    *augment, pack = cfg.train_pipeline
    assert evaluate(None, verify) == ("unanswered", [])
    assert evaluate([*augment, dict(type="Pad", size=cfg.crop_size), pack], verify) == \
        ("correct", [])
    explicit = dict(type="Pad", size=tuple(cfg.crop_size), pad_val=dict(img=0, seg=255))
    assert evaluate([*augment, explicit, pack], verify) == ("correct", [])
    # Pad before the colour distortion: the padding is found in the mask, not in the image
    assert evaluate([*augment[:-1], explicit, augment[-1], pack], verify) == ("correct", [])
    assert augment[-1]["type"] == "PhotoMetricDistortion"
    assert [t["type"] for t in cfg.train_pipeline] == [t["type"] for t in augment + [pack]]


def test_padded_pipeline_mistakes(seed):
    cfg, verify = seed
    *augment, pack = cfg.train_pipeline
    pad = dict(type="Pad", size=cfg.crop_size)
    _wrong(list(cfg.train_pipeline), verify, "not the crop")
    _wrong([*augment, dict(pad, pad_val=dict(img=0, seg=0)), pack], verify,
           "padded border of the mask holds labels [0]", "ignore index 255")
    _wrong([*augment, dict(pad, size=(64, 64)), pack], verify, "not the crop")
    _wrong([*augment, pack, pad], verify, "PackSegInputs must stay the last step")
    _wrong([*augment[:2], dict(type="Resize", scale=cfg.crop_size, keep_ratio=False), pack],
           verify, "missing, changed or out of order", "RandomResize")
    _wrong([*augment, dict(type="NoSuchPad"), pack], verify, "TRANSFORMS.build failed")
    # the seed changed in place (cfg.train_pipeline.insert(-1, pad)), then handed in
    changed = [*augment, pad, pack]
    assert data.verify_padded_pipeline(changed, base=changed, crop=cfg.crop_size,
                                       dataset=None) == \
        ["cfg.train_pipeline is no longer the one of mmseg's pascal_voc12.py: don't change cfg, "
         "make a new list (load cfg again to undo the change)"]


# ---------------------------------------------------------------- the notebook's calls


def test_every_task_is_registered_with_a_hint_that_names_no_code():
    assert set(data.TASKS) == {"read_class_ids", "voc_dataset", "class_counts",
                               "padded_pipeline"}
    for task_id, task in data.TASKS.items():
        assert isinstance(task, Task)
        assert task.hint and not re.search(r"\w\(", task.hint), (task_id, task.hint)


def test_the_checks_ship_no_answer_key():
    """Nothing in the module returns a task's answer: no reference functions, no fallbacks."""
    assert not [n for n in vars(data) if "reference" in n or n.endswith("_verifier")]


def test_check_finds_each_task_by_its_id(demo_root, capsys, monkeypatch):
    monkeypatch.delenv("COURSE_CHECKS", raising=False)
    assert check("read_class_ids", read_class_ids) is read_class_ids
    assert check("read_class_ids", lambda p: None) is None
    assert "not answered yet" in capsys.readouterr().out
    assert check("class_counts", lambda paths: {}) is None
    out = capsys.readouterr().out
    assert "✗" in out and "Hint: numpy's bincount" in out
    cfg = _cfg(demo_root)
    assert check("voc_dataset", cfg, voc_root=demo_root) is cfg
