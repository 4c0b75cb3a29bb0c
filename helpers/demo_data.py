"""A synthetic dataset in the exact VOC2012 layout, so the course runs without downloading VOC.

Introduced in notebook 01. Each image shows 1-3 objects of six VOC classes on a muted
background. Every class has its own colour, texture and shape, so that a small network trained
from scratch on a CPU learns it in minutes; objects overlap and leave the frame (occlusion), and
the masks carry VOC's 255 "void" band along object borders. Output is deterministic for a seed.

    python -m helpers.demo_data --root data/VOCdevkit/VOC2012 --train 1464 --val 1449
"""

from __future__ import annotations

import argparse
import colorsys
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from helpers import voc

DEMO_CLASSES = ("aeroplane", "bus", "car", "cat", "person", "pottedplant")
"""The VOC classes drawn in the demo images (the other 14 never appear)."""

VOID_BAND_PX = 5
"""Width of the 255 band along object borders (VOC's is about 5 px)."""

DEMO_MARKER = "SYNTHETIC_DEMO_DATASET.json"
"""At each demo root: ``"complete": false`` while generating, ``true`` once every file exists."""

Shape = Callable[[int, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _stripes(h: int, w: int, period: float, angle: float, low: float) -> np.ndarray:
    """Brightness factor: hard stripes of `period` px at `angle` radians, `low` in the dark ones."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (x * np.cos(angle) + y * np.sin(angle)) / period
    return np.where(np.sin(2 * np.pi * phase) > 0, 1.0, low).astype(np.float32)


def _aeroplane(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (w // 2, h // 2), (int(0.48 * w), max(2, int(0.13 * h))), 0, 0, 360, 1, -1)
    for sign in (-1, 1):  # swept wings, then the tail fin
        y_tip = h // 2 + sign * int(0.47 * h)
        wing = [(0.36, h // 2), (0.62, h // 2), (0.42, y_tip), (0.30, y_tip)]
        cv2.fillPoly(m, [np.array([(int(fx * w), y) for fx, y in wing], np.int32)], 1)
    tail = [(0.04, 0.5), (0.17, 0.5), (0.10, 0.12), (0.02, 0.12)]
    cv2.fillPoly(m, [np.array([(int(fx * w), int(fy * h)) for fx, fy in tail], np.int32)], 1)
    tex = _stripes(h, w, period=max(4.0, h / 10), angle=np.pi / 2, low=0.72)
    return m.astype(bool), tex


def _bus(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = np.zeros((h, w), np.uint8)
    r = max(2, int(0.12 * h))
    cv2.rectangle(m, (0, r), (w - 1, int(0.88 * h)), 1, -1)
    cv2.rectangle(m, (r, 0), (w - 1 - r, int(0.88 * h)), 1, -1)
    for cx in (r, w - 1 - r):
        cv2.circle(m, (cx, r), r, 1, -1)
    tex = np.ones((h, w), np.float32)
    n_win = int(rng.integers(4, 7))
    step = w / n_win
    for k in range(n_win):  # a row of dark windows
        x0, x1 = int(k * step + 0.15 * step), int((k + 1) * step - 0.15 * step)
        tex[int(0.15 * h) : int(0.45 * h), x0:x1] = 0.38
    for cx in (0.22, 0.78):  # wheels
        c = (int(cx * w), int(0.86 * h))
        cv2.circle(m, c, int(0.13 * h), 1, -1)
        cv2.circle(tex, c, int(0.13 * h), 0.3, -1)
    return m.astype(bool), tex


def _car(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = np.zeros((h, w), np.uint8)
    cv2.rectangle(m, (0, int(0.45 * h)), (w - 1, int(0.82 * h)), 1, -1)
    cabin = [(0.28, 0.45), (0.72, 0.45), (0.62, 0.08), (0.36, 0.08)]
    cv2.fillPoly(m, [np.array([(int(fx * w), int(fy * h)) for fx, fy in cabin], np.int32)], 1)
    y = np.linspace(1.0, 0.7, h, dtype=np.float32)[:, None]
    tex = np.repeat(y, w, axis=1)  # shaded body, lighter windows, black wheels
    tex[int(0.15 * h) : int(0.42 * h), int(0.38 * w) : int(0.62 * w)] = 1.25
    for cx in (0.22, 0.78):
        c, rad = (int(cx * w), int(0.8 * h)), int(0.18 * h)
        cv2.circle(m, c, rad, 1, -1)
        cv2.circle(tex, c, rad, 0.22, -1)
    return m.astype(bool), tex


def _cat(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (int(0.45 * w), int(0.62 * h)), (int(0.33 * w), int(0.3 * h)), 0, 0, 360, 1, -1)
    head, rad = (int(0.78 * w), int(0.38 * h)), int(min(0.2 * w, 0.26 * h))
    cv2.circle(m, head, rad, 1, -1)
    for dx in (-0.7, 0.3):  # ears
        x = head[0] + int(dx * rad)
        ear = [(x, head[1] - int(0.5 * rad)), (x + int(0.6 * rad), head[1] - int(0.5 * rad)),
               (x + int(0.2 * rad), max(0, head[1] - int(1.5 * rad)))]
        cv2.fillPoly(m, [np.array(ear, np.int32)], 1)
    cv2.ellipse(m, (int(0.12 * w), int(0.45 * h)), (int(0.1 * w), int(0.3 * h)), 0, 90, 270, 1,
                max(2, int(0.05 * h)))  # tail
    return m.astype(bool), _stripes(h, w, period=max(5.0, w / 9), angle=np.pi / 3, low=0.45)


def _person(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = np.zeros((h, w), np.uint8)
    tex = np.ones((h, w), np.float32)
    rad = int(min(0.1 * h, 0.24 * w))
    cv2.circle(m, (w // 2, rad + 1), rad, 1, -1)
    torso = [(0.2, 0.24), (0.8, 0.24), (0.7, 0.6), (0.3, 0.6)]
    cv2.fillPoly(m, [np.array([(int(fx * w), int(fy * h)) for fx, fy in torso], np.int32)], 1)
    for fx in (0.32, 0.54):  # legs
        cv2.rectangle(m, (int(fx * w), int(0.58 * h)), (int((fx + 0.14) * w), h - 1), 1, -1)
    for x0, x1 in ((0.22, 0.04), (0.78, 0.96)):  # arms
        cv2.line(m, (int(x0 * w), int(0.27 * h)), (int(x1 * w), int(0.55 * h)), 1,
                 max(2, int(0.09 * w)))
    tex[int(0.24 * h) : int(0.6 * h)] = 0.82  # shirt
    tex[int(0.6 * h) :] = 0.58  # trousers
    return m.astype(bool), tex


def _pottedplant(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = np.zeros((h, w), np.uint8)
    pot = [(0.25, 0.66), (0.75, 0.66), (0.66, 0.99), (0.34, 0.99)]
    cv2.fillPoly(m, [np.array([(int(fx * w), int(fy * h)) for fx, fy in pot], np.int32)], 1)
    for _ in range(int(rng.integers(8, 12))):  # leaves
        c = (int(rng.uniform(0.22, 0.78) * w), int(rng.uniform(0.18, 0.55) * h))
        axes = (int(rng.uniform(0.14, 0.24) * w), int(rng.uniform(0.1, 0.2) * h))
        cv2.ellipse(m, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    speckle = rng.uniform(0.55, 1.15, (max(1, h // 6), max(1, w // 6))).astype(np.float32)
    tex = cv2.resize(speckle, (w, h), interpolation=cv2.INTER_NEAREST)
    tex[int(0.66 * h) :] = 0.42  # dark pot
    return m.astype(bool), tex


# name -> (hue in [0, 1), saturation, width/height aspect, shape)
LOOKS: dict[str, tuple[float, float, float, Shape]] = {
    "aeroplane": (0.58, 0.80, 1.7, _aeroplane),
    "bus": (0.15, 0.95, 2.0, _bus),
    "car": (0.00, 0.90, 1.8, _car),
    "cat": (0.075, 0.95, 1.5, _cat),
    "person": (0.83, 0.65, 0.45, _person),
    "pottedplant": (0.33, 0.80, 0.8, _pottedplant),
}


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A muted (low-saturation) scene: gradient or horizon, smooth blotches, sometimes tiles."""

    def muted() -> np.ndarray:
        rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, 0.15), rng.uniform(0.25, 0.9))
        return np.array(rgb, np.float32)

    top, bottom = muted(), muted()
    if rng.random() < 0.5:
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    else:  # a horizon
        horizon = rng.uniform(0.3, 0.7) * h
        t = (np.arange(h, dtype=np.float32) > horizon)[:, None, None].astype(np.float32)
    img = top * (1 - t) + bottom * t
    blotch = rng.normal(0, 0.07, (max(2, h // 40), max(2, w // 40))).astype(np.float32)
    img = img + cv2.resize(blotch, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    if rng.random() < 0.3:  # floor tiles / brick lines
        step = int(rng.integers(16, 48))
        img[::step] *= 0.8
        img[:, ::step] *= 0.8
    return img


def _object_colour(name: str, rng: np.random.Generator) -> np.ndarray:
    hue, sat, _, _ = LOOKS[name]
    rgb = colorsys.hsv_to_rgb(
        (hue + rng.uniform(-0.015, 0.015)) % 1, sat * rng.uniform(0.85, 1.0), rng.uniform(0.75, 1)
    )
    return np.array(rgb, np.float32)


def make_sample(
    rng: np.random.Generator, first_class: str | None = None, empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic (RGB uint8 image, class-id mask) pair; `first_class` is drawn first."""
    w, h = (500, int(rng.integers(280, 500))) if rng.random() < 0.75 else (0, 500)
    if w == 0:  # portrait
        w = int(rng.integers(300, 500))
    if rng.random() < 0.2:
        w, h = int(w * rng.uniform(0.65, 1)), int(h * rng.uniform(0.65, 1))
    img = _background(h, w, rng)
    label = np.zeros((h, w), np.uint8)
    n_obj = 0 if empty else int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))
    names = [first_class or str(rng.choice(DEMO_CLASSES))]
    names += [str(rng.choice(DEMO_CLASSES)) for _ in range(n_obj - 1)]
    for k, name in enumerate(names[:n_obj]):
        _, _, aspect, shape = LOOKS[name]
        size = rng.uniform(0.6, 0.9) if k == 0 else rng.uniform(0.35, 0.65)
        size *= min(h, w) * aspect ** (0.5 if aspect > 1 else -0.5)
        bw, bh = int(min(0.95 * w, size * aspect**0.5)), int(min(0.95 * h, size / aspect**0.5))
        bw, bh = max(bw, 24), max(bh, 24)
        m, tex = shape(bh, bw, rng)
        if rng.random() < 0.5:
            m, tex = m[:, ::-1], tex[:, ::-1]
        x0 = int(rng.uniform(-0.15 * bw, w - 0.85 * bw))
        y0 = int(rng.uniform(-0.15 * bh, h - 0.85 * bh))
        ys, xs = slice(max(y0, 0), min(y0 + bh, h)), slice(max(x0, 0), min(x0 + bw, w))
        local = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
        m, tex = m[local], tex[local]
        colour = _object_colour(name, rng)
        img[ys, xs][m] = np.clip(colour * tex[m][:, None], 0, 1)
        label[ys, xs][m] = voc.CLASSES.index(name)
    kernel = np.ones((VOID_BAND_PX, VOID_BAND_PX), np.uint8)
    label[cv2.dilate(label, kernel) != cv2.erode(label, kernel)] = voc.IGNORE_INDEX
    img = img * 255 + rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), label


def make_demo_dataset(
    root: str | Path, n_train: int = 60, n_val: int = 20, seed: int = 0, n_unlabelled: int = 20
) -> Path:
    """Write a synthetic dataset in the VOC2012 layout under `root` and return `root`.

    Layout: JPEGImages/*.jpg, SegmentationClass/*.png (palette PNGs, VOC palette, 255 void
    band) and ImageSets/Segmentation/{train,val,trainval}.txt. Like VOC, `n_unlabelled` extra
    JPEGs have no mask and are in no split. Every class of DEMO_CLASSES appears in both splits
    once each split has at least 6 images. Refuses a folder that already holds a dataset, except
    an unfinished demo dataset (see ``DEMO_MARKER``), which is deleted and made again.
    """
    root = Path(root)
    if is_demo_dataset(root) and not demo_dataset_complete(root):  # ours, interrupted: redo it
        for d in (voc.IMAGE_DIR, voc.MASK_DIR, "ImageSets"):
            shutil.rmtree(root / d, ignore_errors=True)
    existing = [d for d in (voc.IMAGE_DIR, voc.MASK_DIR, "ImageSets") if (root / d).exists()]
    if existing:
        raise FileExistsError(
            f"{root} already holds a dataset ({', '.join(existing)}); the generator never writes "
            "into one. Choose a new folder, or delete this one yourself if it is a demo set."
        )
    for d in (voc.IMAGE_DIR, voc.MASK_DIR, voc.SPLIT_DIR):
        (root / d).mkdir(parents=True, exist_ok=True)
    recipe = {"generator": "helpers.demo_data", "n_train": n_train, "n_val": n_val,
              "n_unlabelled": n_unlabelled, "seed": seed}
    (root / DEMO_MARKER).write_text(json.dumps({**recipe, "complete": False}) + "\n")
    splits: dict[str, list[str]] = {"train": [], "val": [], "unlabelled": []}
    jobs = [("train", k) for k in range(n_train)] + [("val", k) for k in range(n_val)]
    jobs += [("unlabelled", k) for k in range(n_unlabelled)]
    for index, (split, k) in enumerate(tqdm(jobs, desc=f"demo data -> {root}")):
        rng = np.random.default_rng([seed, index])
        first = DEMO_CLASSES[k % len(DEMO_CLASSES)]
        empty = k >= len(DEMO_CLASSES) and rng.random() < 0.05  # a few background-only images
        image, mask = make_sample(rng, first_class=first, empty=empty)
        image_id = f"demo_{index + 1:06d}"
        Image.fromarray(image).save(root / voc.IMAGE_DIR / f"{image_id}.jpg", quality=90)
        if split != "unlabelled":
            voc.save_mask(mask, root / voc.MASK_DIR / f"{image_id}.png")
        splits[split].append(image_id)
    splits["trainval"] = splits["train"] + splits["val"]
    for split in ("train", "val", "trainval"):
        voc.split_file(root, split).write_text("".join(f"{i}\n" for i in splits[split]))
    (root / DEMO_MARKER).write_text(json.dumps({**recipe, "complete": True}) + "\n")
    return root


def is_demo_dataset(root: str | Path) -> bool:
    """Whether ``root`` holds a demo dataset (complete or not): it has a ``DEMO_MARKER``."""
    return (Path(root) / DEMO_MARKER).is_file()


def _recipe(root: Path) -> dict:
    try:
        return dict(json.loads((root / DEMO_MARKER).read_text()))
    except (OSError, ValueError, TypeError):  # no marker, or not one this module wrote
        return {}


def demo_dataset_complete(root: str | Path) -> bool:
    """Whether the demo dataset at ``root`` was generated to the end and still has every file."""
    root, recipe = Path(root), _recipe(Path(root))
    try:
        labelled = recipe["n_train"] + recipe["n_val"]
        return recipe["complete"] is True and [labelled + recipe["n_unlabelled"], labelled] == [
            sum(1 for e in (root / d).iterdir() if e.suffix == end)
            for d, end in ((voc.IMAGE_DIR, ".jpg"), (voc.MASK_DIR, ".png"))
        ] and all(voc.split_file(root, s).is_file() for s in ("train", "val", "trainval"))
    except (OSError, KeyError, TypeError):
        return False


def ensure_dataset(voc_root: str | Path) -> Path:
    """Return `voc_root`; when it does not exist (or is empty), first create the demo dataset
    there, loudly. An unfinished demo dataset (an interrupted run) is made again, never used."""
    voc_root = Path(voc_root)
    unfinished = is_demo_dataset(voc_root) and not demo_dataset_complete(voc_root)
    if unfinished or not voc_root.exists() or not any(voc_root.iterdir()):
        if unfinished:
            print(f"{voc_root}: an unfinished demo dataset (interrupted?); generating it again.")
        recipe = _recipe(voc_root)
        make_demo_dataset(voc_root, **{k: recipe[k] for k in ("n_train", "n_val", "seed",
                                                             "n_unlabelled") if k in recipe})
        print(f"{'=' * 78}\nNOTE: a SYNTHETIC demo dataset was created at {voc_root}\n("
              f"{', '.join(DEMO_CLASSES)} on plain backgrounds). It is NOT PASCAL VOC: numbers "
              "and\nfigures below describe the demo data. For real VOC2012 see notebook 01 "
              f"(download_voc).\n{'=' * 78}")
    return voc_root


def dataset_banner(voc_root: str | Path) -> str:
    """A banner saying which data a notebook runs on: the synthetic demo set, VOC2012, or none.

    Notebooks print it near the top, so that no number or figure drawn from the demo set is
    taken for PASCAL VOC. The demo set is told by its ``DEMO_MARKER``, VOC by its ids
    (``YYYY_NNNNNN``); reads only.
    """
    root, bar = Path(voc_root), "=" * 78
    ids = {s: voc.split_ids(root, s) for s in ("train", "val") if voc.split_file(root, s).is_file()}
    if not ids:
        return (f"{bar}\nNO DATASET at {root} (no {voc.SPLIT_DIR}/train.txt).\n  Create the "
                "demo set (helpers.demo_data.ensure_dataset) or download VOC2012 (notebook 01)."
                f"\n{bar}")
    sizes = " / ".join(f"{len(v)} {s}" for s, v in ids.items()) + " images"
    every = [i for v in ids.values() for i in v]
    if is_demo_dataset(root):
        return (f"{bar}\nDEMO DATA: synthetic images at {root}\n  {sizes}, classes "
                f"{', '.join(DEMO_CLASSES)} only.\n  This is NOT PASCAL VOC2012: every number "
                "and figure below describes the demo set.\n  For the real dataset set "
                f"DOWNLOAD_VOC = True in notebook 01.\n{bar}")
    kind = "PASCAL VOC2012" if every and all(i[:4].isdigit() for i in every) else \
        "a dataset in the VOC layout (not the demo set)"
    return f"{bar}\nDATA: {kind} at {root}\n  {sizes}.\n{bar}"


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m helpers.demo_data --root DIR [--train N] [--val N] [--seed S]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="VOC root to create (must not hold data)")
    parser.add_argument("--train", type=int, default=60, help="images in train.txt")
    parser.add_argument("--val", type=int, default=20, help="images in val.txt")
    parser.add_argument("--unlabelled", type=int, default=20, help="JPEGs without a mask")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        root = make_demo_dataset(args.root, args.train, args.val, args.seed, args.unlabelled)
    except FileExistsError as err:
        parser.error(str(err))
    print(f"wrote {args.train} train + {args.val} val images to {root}")


if __name__ == "__main__":
    main()
