"""Notebook 01's tasks: their givens and hidden probes (run inside the sandbox by the harness).

A task module (see teacher/tasks/__init__.py) imports only libraries at its top: it is compiled
inside the grading sandbox, where the course's package does not exist.
"""

import copy
import hashlib
import os
import random
from pathlib import Path

import numpy as np

NOTEBOOK = "01_dataset"
PRELOAD = ("numpy", "PIL.Image", "mmcv", "mmcv.transforms", "mmengine.config", "mmseg.datasets",
           "mmseg.registry", "mmseg.utils")

_FOLDERS = dict(img_path="JPEGImages", seg_map_path="SegmentationClass")
_VOC_IDS = np.r_[0:21, 255].astype(np.uint8)


def _split(voc_root, split):
    return Path(voc_root, "ImageSets", "Segmentation", f"{split}.txt").read_text().split()


def _mask(voc_root, image_id):
    return Path(voc_root, "SegmentationClass", f"{image_id}.png")


def _voc_set(voc_root, split):
    from mmseg.datasets import PascalVOCDataset

    return PascalVOCDataset(data_root=voc_root, data_prefix=dict(_FOLDERS),
                            ann_file=f"ImageSets/Segmentation/{split}.txt")


def _png(path, ids, palette):
    """A palette ("P" mode) PNG of class ids `ids` with `palette`, as VOC stores masks."""
    from PIL import Image

    png = Image.fromarray(np.asarray(ids, np.uint8))
    png.putpalette(palette)
    png.save(path)
    return str(path)


def _voc_palette(voc_root):
    from PIL import Image

    with Image.open(_mask(voc_root, _split(voc_root, "val")[0])) as png:
        return png.getpalette()


def _basics(ns, ctx):
    """What every answer of this notebook is given: numpy, Path, os and the data's VOC_ROOT."""
    from mmseg.utils import register_all_modules

    register_all_modules()
    ns.update(np=np, Path=Path, os=os, VOC_ROOT=ctx.voc_root)


# ------------------------------------------------------------------------ Task 1: read_class_ids


def _reader_givens(ns, ctx):
    import mmcv
    from PIL import Image

    _basics(ns, ctx)
    ns.update(Image=Image, mmcv=mmcv)


def _read_class_ids(ns, ctx):
    read, root = ns["read_class_ids"], ctx.voc_root

    def ids_of(path):  # a numpy array, as the task asks (not a PIL image, not a list)
        ids = read(path)
        return dict(ctx.digest(ids), array=isinstance(ids, np.ndarray))

    def voc_masks():
        val = _split(root, "val")
        got = {i: ids_of(str(_mask(root, i))) for i in val[:2] + val[-1:]}
        return dict(got, as_path=ids_of(_mask(root, val[2])))

    def made():  # odd sizes, palettes other than VOC's, a 4-bit PNG
        made = {
            "one_row": (_VOC_IDS[np.arange(300) * 5 % 22][None, :], _voc_palette(root)),
            "grey_palette": (_VOC_IDS[(np.arange(37 * 23) // 3) % 22].reshape(37, 23),
                             [v for g in range(256) for v in (g, g, g)]),
            "random_palette": (_VOC_IDS[(np.arange(41 * 40) * 13 // 7) % 22].reshape(41, 40),
                               np.random.default_rng(2012).integers(0, 256, 768).tolist()),
            "four_bit": (((np.arange(29 * 31) * 3) % 16).astype(np.uint8).reshape(29, 31),
                         [v for g in range(16) for v in (17 * g, 255 - 17 * g, 40)]),
        }
        got = {}
        for k, (name, (ids, palette)) in enumerate(made.items()):
            path = _png(Path(ctx.scratch, f"{name}.png"), ids, palette)
            got[name] = ids_of(Path(path) if k % 2 else path)
        return got

    return {"the dataset's masks": voc_masks, "other palettes and sizes": made}


# ------------------------------------------------------------------------ Task 2: voc_dataset


def _dataset_givens(ns, ctx):
    from mmseg.datasets import BaseSegDataset
    from mmseg.registry import DATASETS

    _basics(ns, ctx)
    ns.update(DATASETS=DATASETS, BaseSegDataset=BaseSegDataset,
              train_set=_voc_set(ctx.voc_root, "train"))


def _voc_dataset(ns, ctx):
    from mmseg.datasets import BaseSegDataset, PascalVOCDataset
    from mmseg.registry import DATASETS

    cfg, root = ns["dataset_cfg"], ctx.voc_root

    def samples(cfg):
        ds = DATASETS.build(copy.deepcopy(cfg))
        n = len(ds)
        paths = [[os.path.relpath(ds.get_data_info(k)[key], root)
                  for key in ("img_path", "seg_map_path")] for k in range(n)]
        return {"len": n, "some": [paths[k] for k in sorted({0, 1, n // 2, n - 1}) if 0 <= k < n],
                "all": hashlib.sha256(repr(paths).encode()).hexdigest()}

    def the_class():
        cls = DATASETS.get(cfg["type"])
        ds = DATASETS.build(copy.deepcopy(cfg))
        return {"own class on BaseSegDataset": isinstance(cls, type)
                and issubclass(cls, BaseSegDataset) and not issubclass(cls, PascalVOCDataset),
                "classes": [str(c) for c in ds.metainfo["classes"]],
                "palette": [[int(v) for v in c] for c in ds.metainfo["palette"]],
                "reduce_zero_label": bool(ds.reduce_zero_label),
                "ignore_index": int(ds.ignore_index)}

    def other_splits():
        return {split: samples(dict(copy.deepcopy(cfg),
                                    ann_file=f"ImageSets/Segmentation/{split}.txt"))
                for split in ("val", "trainval")}

    return {"the class": the_class, "the train split": lambda: samples(cfg),
            "other splits": other_splits}


# ------------------------------------------------------------------------ Task 3: class_counts


def _counts_givens(ns, ctx):
    from mmseg.datasets import PascalVOCDataset
    from PIL import Image

    _basics(ns, ctx)
    ns.update(Image=Image, PascalVOCDataset=PascalVOCDataset,
              classes=PascalVOCDataset.METAINFO["classes"])


def _class_counts(ns, ctx):
    class_counts, root = ns["class_counts"], ctx.voc_root

    def counts(paths):
        return {str(k): {"pixels": int(v["pixels"]), "images": int(v["images"])}
                for k, v in dict(class_counts(paths)).items()}

    def voc_masks():
        paths = [str(_mask(root, i)) for i in _split(root, "val")]
        return {"first": counts(paths[:1]), "last_12": counts([Path(p) for p in paths[-12:]])}

    def made():
        palette = _voc_palette(root)
        void = _png(Path(ctx.scratch, "void.png"), np.full((13, 17), 255, np.uint8), palette)
        k = np.arange(19 * 23)
        every = _png(Path(ctx.scratch, "every.png"),
                     _VOC_IDS[(k * 7 + k // 5) % 22].reshape(19, 23), palette)
        return {"void_only": counts([void]),
                "every_twice_and_void": counts([every, Path(every), void])}

    return {"the dataset's masks": voc_masks, "void, and a mask listed twice": made,
            "no masks": lambda: counts([])}


# ------------------------------------------------------------------------ Task 4: padded_pipeline

_GIVEN: dict = {}
"""The objects the answer was given, as they were (a probe tells whether the answer changed
them)."""


def _seed_config():
    import mmseg
    from mmengine.config import Config

    return Config.fromfile(Path(mmseg.__file__).parent / ".mim" / "configs" / "_base_"
                           / "datasets" / "pascal_voc12.py")


def _pipeline_givens(ns, ctx):
    from mmseg.registry import TRANSFORMS

    _basics(ns, ctx)
    cfg = _seed_config()
    _GIVEN["cfg"] = cfg
    ns.update(cfg=cfg, train_set=_voc_set(ctx.voc_root, "train"), TRANSFORMS=TRANSFORMS)


def _padded_pipeline(ns, ctx):
    from mmcv.transforms import Compose
    from mmseg.registry import TRANSFORMS

    pipeline, root = ns["padded_pipeline"], ctx.voc_root

    def steps():
        kept = [ctx.plain(t) for t in pipeline if t["type"] != "Pad"]
        return {"kept": kept, "last": str(pipeline[-1]["type"]),
                "cfg unchanged": ctx.plain(_GIVEN["cfg"].train_pipeline)
                == ctx.plain(_seed_config().train_pipeline)}

    def samples():
        val = _voc_set(root, "val")
        full = Compose([TRANSFORMS.build(copy.deepcopy(t)) for t in pipeline])
        ids = np.zeros((40, 70), np.uint8)  # a wide sample: mostly padded in height
        ids[8:30, 10:45] = 15
        from PIL import Image

        small = dict(img_path=str(Path(ctx.scratch, "small.jpg")),
                     seg_map_path=_png(Path(ctx.scratch, "small.png"), ids, _voc_palette(root)),
                     reduce_zero_label=False, seg_fields=[])
        Image.fromarray(np.full((40, 70, 3), 90, np.uint8)).save(small["img_path"])
        np.random.seed(7)
        random.seed(7)
        got = []
        for info in [val.get_data_info(k) for k in range(min(4, len(val)))] * 2 + [small] * 3:
            out = full(copy.deepcopy(info))
            seg = out["data_samples"].gt_sem_seg.data.numpy()
            values, n = np.unique(seg, return_counts=True)
            got.append({"image": list(out["inputs"].shape), "mask": list(seg.shape),
                        "ids": {str(v): int(c) for v, c in zip(values, n, strict=True)}})
        return got

    return {"the seed's steps": steps, "the samples": samples}


TASKS = {
    "read_class_ids": dict(
        test="read_class_ids_test", givens=_reader_givens, probe=_read_class_ids,
        points={"the dataset's masks": 1, "other palettes and sizes": 1},
        say={"the dataset's masks": "wrong on masks of the dataset (paths as str or Path): "
                                    "not a numpy array of the ids, or its shape or dtype",
             "other palettes and sizes": "wrong on palette PNGs of other sizes and palettes "
                                         "(grey, random, 4-bit): the ids are the pixel values, "
                                         "whatever the palette"}),
    "voc_dataset": dict(
        test="voc_dataset_test", givens=_dataset_givens, probe=_voc_dataset,
        points={"the class": 1, "the train split": 1, "other splits": 1},
        say={"the class": "the registered class is not your own on BaseSegDataset, or its "
                          "classes, palette, reduce_zero_label or ignore_index differ from "
                          "PascalVOCDataset's",
             "the train split": "DATASETS.build(dataset_cfg) holds other samples than "
                                "PascalVOCDataset on the train split (ann_file, data_prefix, "
                                "suffixes?)",
             "other splits": "with ann_file set to another split, the samples differ from "
                             "PascalVOCDataset's"}),
    "class_counts": dict(
        test="class_counts_test", givens=_counts_givens, probe=_class_counts,
        points={"the dataset's masks": 1, "void, and a mask listed twice": 1, "no masks": 1},
        say={"the dataset's masks": "wrong on masks of the dataset (paths as str or Path)",
             "void, and a mask listed twice": "wrong on a mask of void only, or a mask listed "
                                              "twice",
             "no masks": "wrong for an empty list of paths (every class a key, both counts 0)"}),
    "padded_pipeline": dict(
        test="padded_pipeline_test", givens=_pipeline_givens, probe=_padded_pipeline,
        points={"the seed's steps": 0.5, "the samples": 0.5},
        say={"the seed's steps": "the steps of cfg.train_pipeline are not all kept in order "
                                 "with PackSegInputs last, or cfg itself was changed",
             "the samples": "the samples' image and mask sizes or the mask's padded labels "
                            "are wrong"}),
}
