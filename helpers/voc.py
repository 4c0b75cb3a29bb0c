"""PASCAL VOC2012 on disk: class names and colours, reading masks, checking and scanning a dataset.

Introduced in notebook 01. The class names and palette are MMSegmentation's own
(`mmseg.datasets.PascalVOCDataset.METAINFO`); they are read from mmseg the first time they are
used, so `import helpers.voc` stays light (no torch) for code that only reads masks. Their
colours and the overlay rule live in `helpers.palette`, class statistics in `helpers.voc_stats`,
the download in `helpers.downloads`.

Nothing in this module writes under a dataset root: `check_dataset` only reads, and
`convert_rgb_masks` writes to a new folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from helpers.palette import IGNORE_INDEX, VOID_COLOR, lut
from helpers.voc_classes import voc_metainfo

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CLASSES",
    "IGNORE_INDEX",
    "IMAGE_DIR",
    "IMAGE_SUFFIXES",
    "MASK_DIR",
    "NUM_CLASSES",
    "PALETTE",
    "SPLIT_DIR",
    "VOID_COLOR",
    "DatasetError",
    "DatasetSummary",
    "check_dataset",
    "convert_rgb_masks",
    "dataset_cfg",
    "load_sample",
    "progress_map",
    "read_image",
    "read_mask",
    "save_mask",
    "split_file",
    "split_ids",
    "voc_dataset",
]

NUM_CLASSES = 21

IMAGE_DIR = "JPEGImages"
MASK_DIR = "SegmentationClass"
SPLIT_DIR = "ImageSets/Segmentation"

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""File endings read as images (prediction inputs, INT8 calibration folders)."""

# Read from mmseg (helpers.voc_classes) on first access through the module-level __getattr__.
CLASSES: tuple[str, ...]
PALETTE: list[list[int]]


def __getattr__(name: str) -> Any:
    """Read CLASSES / PALETTE from `PascalVOCDataset.METAINFO` on first use (PEP 562)."""
    if name == "CLASSES":
        return voc_metainfo()[0]
    if name == "PALETTE":
        return voc_metainfo()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class DatasetError(ValueError):
    """A dataset on disk is not usable; the message names the file and says how to fix it."""


def save_mask(mask: np.ndarray, path: str | Path) -> Path:
    """Write class ids as a palette ("P" mode) PNG with the VOC palette, as VOC stores masks."""
    img = Image.fromarray(np.asarray(mask, np.uint8))  # "L"; putpalette makes it "P"
    img.putpalette(lut().ravel().tolist())
    img.save(path)
    return Path(path)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a VOC mask as an (H, W) uint8 array of class ids (0-20, 255 = void).

    VOC masks are palette PNGs: each pixel stores a class id, and the file's palette says which
    colour to *display* for it. PIL returns the ids; `cv2.imread` would return the display
    colours (BGR), which are not labels.
    """
    path = Path(path)
    with Image.open(path) as img:
        if img.mode in ("RGB", "RGBA"):
            raise DatasetError(
                f"{path}: mask is an {img.mode}-mode colour image, not a palette PNG of class "
                "ids. Convert the folder through the VOC palette into a NEW folder with "
                "helpers.voc.convert_rgb_masks(src_dir, out_dir) and point the dataset at it."
            )
        if img.mode not in ("P", "L"):
            raise DatasetError(
                f"{path}: mask has PIL mode {img.mode}; VOC masks are 8-bit palette PNGs of "
                "class ids (0-20, 255). Re-save it as an 8-bit palette PNG (helpers.voc.save_mask)."
            )
        mask = np.array(img, dtype=np.uint8)
        counts = np.bincount(mask.ravel(), minlength=256)
    if img.mode == "L" and counts[IGNORE_INDEX] and not counts[1:IGNORE_INDEX].any():
        raise DatasetError(
            f"{path}: a black-and-white (L-mode) mask holding only 0 and 255. Here 255 means "
            "void (ignored), so every object pixel would be ignored. Write class ids instead, "
            "e.g. save_mask(np.where(m == 255, class_id, 0), path) (helpers.voc.save_mask)."
        )
    return mask


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as an (H, W, 3) uint8 RGB array, upright: its EXIF orientation (a phone
    photo's) applied, as OpenCV's ``imread`` and so mmseg's own image loading apply it."""
    with Image.open(path) as img:
        return np.array(ImageOps.exif_transpose(img).convert("RGB"))


def load_sample(root: str | Path, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The RGB image and class-id mask of one id under a VOC root."""
    root = Path(root)
    return (
        read_image(root / IMAGE_DIR / f"{image_id}.jpg"),
        read_mask(root / MASK_DIR / f"{image_id}.png"),
    )


def split_file(root: str | Path, split: str) -> Path:
    """Path of `ImageSets/Segmentation/<split>.txt`."""
    return Path(root) / SPLIT_DIR / f"{split}.txt"


def split_ids(root: str | Path, split: str) -> list[str]:
    """The image ids listed in a split file, in file order."""
    path = split_file(root, split)
    if not path.is_file():
        raise DatasetError(
            f"{path}: split file not found. A VOC root holds ImageSets/Segmentation/{split}.txt "
            "(one image id per line); check VOC_ROOT points at .../VOCdevkit/VOC2012."
        )
    ids = [line.strip() for line in path.read_text().splitlines()]
    if "" in ids and any(ids):  # mmseg would look for JPEGImages/.jpg
        raise DatasetError(
            f"{path}, line {ids.index('') + 1}: blank line. A split file lists one image id per "
            "line, with no blank lines (mmseg would read one as the image '.jpg'); delete it."
        )
    return [i for i in ids if i]


def dataset_cfg(root: str | Path, split: str, pipeline: list | tuple = ()) -> dict:
    """The config dict of mmseg's `PascalVOCDataset` for one split of a VOC root."""
    return dict(
        type="PascalVOCDataset",
        data_root=str(root),
        data_prefix=dict(img_path=IMAGE_DIR, seg_map_path=MASK_DIR),
        ann_file=f"{SPLIT_DIR}/{split}.txt",
        pipeline=list(pipeline),
    )


def voc_dataset(root: str | Path, split: str, pipeline: list | tuple = ()) -> Any:
    """mmseg's `PascalVOCDataset` for one split, built through the DATASETS registry."""
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    return DATASETS.build(dataset_cfg(root, split, pipeline))


# --------------------------------------------------------------------------------------------
# Checking a dataset


@dataclass
class DatasetSummary:
    """What `check_dataset` found: file counts and the number of ids per split."""

    root: Path
    n_images: int
    n_masks: int
    splits: dict[str, int] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """The counts as a small pandas table (one row per quantity)."""
        import pandas as pd

        rows = {f"{IMAGE_DIR}/*.jpg": self.n_images, f"{MASK_DIR}/*.png": self.n_masks}
        rows.update({f"ids in {s}.txt": n for s, n in self.splits.items()})
        return pd.DataFrame({"count": rows})


def _check_pair(pair: tuple[str, str]) -> list[str]:
    """Check one (image, mask) pair; return the problems found (empty when it is fine)."""
    img_path, mask_path = map(Path, pair)
    problems: list[str] = []
    if not img_path.is_file():
        problems.append(f"{img_path}: image listed in the split but missing; add it or drop the id")
    if not Path(mask_path).is_file():
        problems.append(f"{mask_path}: mask listed in the split but missing; add it or drop the id")
    if problems:
        return problems
    try:
        with Image.open(img_path) as img:
            img_size = img.size
            img.draft("RGB", (img_size[0] // 8, img_size[1] // 8))  # DCT-scaled decode: faster
            img.load()
    except OSError as err:
        return [f"{img_path}: cannot decode the JPEG ({err}); re-download or re-extract it"]
    try:
        mask = read_mask(mask_path)
    except DatasetError as err:
        return [str(err)]
    except OSError as err:
        return [f"{mask_path}: cannot decode the PNG ({err}); re-download or re-extract it"]
    if mask.shape[::-1] != img_size:
        problems.append(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{img_size[0]}x{img_size[1]} (WxH); a mask must match its image pixel for pixel"
        )
    labels = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
    bad = [int(v) for v in labels if v >= NUM_CLASSES and v != IGNORE_INDEX]
    if bad:
        problems.append(
            f"{mask_path}: label values {bad[:10]} are outside 0-{NUM_CLASSES - 1} and "
            f"{IGNORE_INDEX}; VOC masks hold class ids (0-20) and {IGNORE_INDEX} for void. "
            "Fix the mask or the tool that wrote it."
        )
    return problems


def progress_map(fn: Callable, items: list, desc: str, workers: int | None) -> list:
    """`fn` over `items` with a tqdm bar; in `workers` processes for long lists."""
    if workers is None:
        workers = 2 if len(items) >= 256 else 1
    if workers > 1:
        from tqdm.contrib.concurrent import process_map

        return process_map(fn, items, max_workers=workers, chunksize=64, desc=desc)
    return [fn(item) for item in tqdm(items, desc=desc)]


def _count(folder: Path, suffix: str) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for e in os.scandir(folder) if e.name.endswith(suffix))


def check_dataset(
    root: str | Path, splits: tuple[str, ...] = ("train", "val"), workers: int | None = None
) -> DatasetSummary:
    """Check a VOC root before using it; raise `DatasetError` naming the file and the fix.

    Checks: the root and its folders exist; each split file exists and is non-empty; every id in
    a split has an image and a mask; each JPEG decodes to the end; each mask is a palette PNG
    (not RGB colours) with labels in 0-20 and 255 only, and has its image's size. Reads only.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: dataset root not found. Download VOC2012 (helpers.downloads.download_voc) or "
            "create the synthetic demo set (helpers.demo_data.ensure_dataset), or fix VOC_ROOT."
        )
    for sub in (IMAGE_DIR, MASK_DIR):
        if not (root / sub).is_dir():
            raise DatasetError(
                f"{root / sub}: folder not found; a VOC root holds {IMAGE_DIR}/, {MASK_DIR}/ and "
                f"{SPLIT_DIR}/. Check VOC_ROOT points at .../VOCdevkit/VOC2012."
            )
    ids = {split: split_ids(root, split) for split in splits}
    for split, split_list in ids.items():
        if not split_list:
            raise DatasetError(
                f"{split_file(root, split)}: split is empty; it must list one image id per line."
            )
    datasets = {split: voc_dataset(root, split) for split in splits}  # mmseg resolves the paths
    pairs = sorted(
        {
            (info["img_path"], info["seg_map_path"])
            for ds in datasets.values()
            for info in (ds.get_data_info(i) for i in range(len(ds)))
        }
    )
    results = progress_map(_check_pair, pairs, f"checking {root.name}", workers)
    problems = [p for found in results for p in found]
    if problems:
        more = f"\n... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DatasetError(
            f"{len(problems)} problem(s) in {root}:\n" + "\n".join(problems[:10]) + more
        )
    return DatasetSummary(
        root=root,
        n_images=_count(root / IMAGE_DIR, ".jpg"),
        n_masks=_count(root / MASK_DIR, ".png"),
        splits={split: len(ds) for split, ds in datasets.items()},
    )


def convert_rgb_masks(src_dir: str | Path, out_dir: str | Path) -> Path:
    """Convert colour (RGB) masks to palette PNGs of class ids, written into a NEW folder.

    Each colour is mapped back through the VOC palette (VOID_COLOR -> 255). The source folder is
    never modified; `out_dir` must not exist yet or be empty. A colour that is not in the
    palette raises `DatasetError` naming the file.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if out_dir.resolve() == src_dir.resolve():
        raise DatasetError(
            f"{out_dir}: write the converted masks to a new folder, not over {src_dir}"
        )
    if out_dir.exists() and any(out_dir.iterdir()):
        raise DatasetError(f"{out_dir}: folder is not empty; choose a new folder for the output")
    out_dir.mkdir(parents=True, exist_ok=True)
    table = lut().astype(np.int64)
    code_to_id = {int(c): i for i, c in enumerate(table @ [65536, 256, 1]) if i < NUM_CLASSES}
    code_to_id[int(np.dot(VOID_COLOR, [65536, 256, 1]))] = IGNORE_INDEX
    for path in tqdm(sorted(src_dir.glob("*.png")), desc="converting masks"):
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"), np.int64)
        codes = rgb @ [65536, 256, 1]
        uniq, inverse = np.unique(codes, return_inverse=True)
        unknown = [int(c) for c in uniq if int(c) not in code_to_id]
        if unknown:
            colours = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in unknown[:5]]
            raise DatasetError(
                f"{path}: colours {colours} are not in the VOC palette; this is not a VOC "
                "colour mask (or it was resized with interpolation). Re-export it unscaled."
            )
        ids = np.array([code_to_id[int(c)] for c in uniq], np.uint8)[inverse]
        save_mask(ids.reshape(codes.shape), out_dir / path.name)
    return out_dir
