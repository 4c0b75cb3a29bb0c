"""Checks of notebook 04's tasks: a blend drawn over an image, IoU from a confusion matrix, the
most-confused pair, and a model run on an image file of the student's own.

Each ``verify_*`` takes the student's function and returns the problems found (see
`helpers.checks.check`), registered in :data:`TASKS`. The truths come from elsewhere than the
solutions: mmseg's ``SegLocalVisualizer`` draws the blends, mmseg's ``IoUMetric`` scores the masks
each confusion matrix counts, the most-confused pairs of a few small matrices are written here
as data, and mmseg's ``inference_model`` segments the images a student's ``segment_my_image``
gets (:func:`image_variants` writes them in the formats a photo may come in).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from helpers.checks import Task, answered

__all__ = [
    "BLEND_TOLERANCE",
    "CONFUSED_PAIRS",
    "SEGMENT_OPACITIES",
    "TASKS",
    "confusion_cases",
    "image_variants",
    "mmseg_iou",
    "probe_model",
    "verify_blend",
    "verify_iou_per_class",
    "verify_most_confused",
    "verify_segment_my_image",
]

BLEND_TOLERANCE = 1
"""Largest accepted difference per uint8 channel from mmseg's blend (rounding instead of
truncating is fine)."""


# --- Task 1: blend --------------------------------------------------------------------------

#: (classes, mask dtype) of each seed's blend inputs: VOC's 21 classes in a uint8 mask, and
#: fewer classes in other integer masks, as the grader also tries.
_BLEND_MASKS = {0: (21, np.uint8), 1: (6, np.int64), 2: (3, np.int32), 3: (21, np.uint8)}


def _blend_inputs(seed: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
    rng = np.random.default_rng(seed)
    n, dtype = _BLEND_MASKS[seed]
    palette = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(n)]
    image = rng.integers(0, 256, (31, 47, 3), dtype=np.uint8)
    mask = rng.integers(0, n, (31, 47)).astype(dtype)
    return image, mask, palette


def _mmseg_blend(image: np.ndarray, mask: np.ndarray, palette: Any, alpha: float,
                 name: str) -> np.ndarray:
    """What mmseg's ``SegLocalVisualizer`` draws for `mask` over `image` (no labels), as int."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.visualization import SegLocalVisualizer

    sample = SegDataSample(pred_sem_seg=PixelData(data=torch.from_numpy(
        np.asarray(mask)[None].astype(np.int64))))
    vis = SegLocalVisualizer(name=name, alpha=alpha)
    vis.dataset_meta = dict(classes=[f"class {c}" for c in range(len(palette))],
                            palette=[tuple(int(v) for v in c) for c in palette])
    vis.add_datasample("check", image, sample, draw_gt=False, with_labels=False)
    return vis.get_image().astype(int)


def verify_blend(blend: Callable) -> list[str]:
    """``blend(image, mask, palette, opacity)`` against what mmseg's ``SegLocalVisualizer`` draws
    for the same prediction (without labels), at several opacities."""
    for seed, opacity in ((0, 0.3), (1, 0.8), (2, 1.0), (3, 0.5)):
        image, mask, palette = _blend_inputs(seed)
        given = image.copy()
        got = np.asarray(answered(blend(given, mask, palette, opacity)))
        where = f"at opacity {opacity}"
        if not np.array_equal(given, image):
            return [f"{where} your function changed the image it was given: return a new array"]
        if got.shape != image.shape:
            return [f"{where} it returned shape {got.shape}, not the image's {image.shape}"]
        if got.dtype != np.uint8:
            return [f"{where} it returned {got.dtype}: an image here is uint8 (convert after "
                    "blending, not before: uint8 sums overflow)"]
        drawn = {alpha: _mmseg_blend(image, mask, palette, alpha, f"check_blend_{seed}_{alpha}")
                 for alpha in (opacity, 1 - opacity)}  # mmseg's, and with the weights swapped
        err = np.abs(got.astype(int) - drawn[opacity])
        if err.max() > BLEND_TOLERANCE:
            if np.abs(got.astype(int) - drawn[1 - opacity]).max() <= BLEND_TOLERANCE:
                return [f"{where} the image and the colours have each other's weights: opacity "
                        "is the weight of the mask's colour"]
            return [f"{where} {int((err.max(axis=2) > BLEND_TOLERANCE).sum())} of {mask.size} "
                    f"pixels are off by more than {BLEND_TOLERANCE} (up to {int(err.max())})"]
    return []


# --- Task 2: iou_per_class ------------------------------------------------------------------

def _masks(num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, prediction) of 40x50 pixels with void (255), one class only predicted,
    one class only in the ground truth and one class in neither."""
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, num_classes - 2, (40, 50))  # the last two never in the ground truth
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, num_classes - 2, gt.shape))
    pred[pred == 255] = 0
    pred[:5, :5] = num_classes - 2  # predicted, never true: IoU 0
    pred[pred == 1] = 2  # class 1: true, never predicted: IoU 0
    return gt.astype(np.uint8), pred.astype(np.uint8)


def _count(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), np.int64)
    valid = gt != 255
    np.add.at(cm, (gt[valid].astype(int), pred[valid].astype(int)), 1)
    return cm


def confusion_cases() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, confusion matrix, ground truth, prediction) for 21 classes (int64) and for 5
    (int32)."""
    cases = []
    for name, n, seed in (("a 21-class matrix", 21, 0), ("a 5-class matrix", 5, 1)):
        gt, pred = _masks(n, seed)
        cm = _count(gt, pred, n)
        cases.append((name, cm if n == 21 else cm.astype(np.int32), gt, pred))  # int32 too
    return cases


def mmseg_iou(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class IoU in percent that mmseg's ``IoUMetric`` computes from a ground-truth mask and a
    predicted mask (void 255 ignored; NaN: a class neither true nor predicted)."""
    import torch
    from mmseg.evaluation import IoUMetric

    areas = IoUMetric.intersect_and_union(torch.from_numpy(pred.astype(np.int64)),
                                          torch.from_numpy(gt.astype(np.int64)), num_classes, 255)
    return 100 * IoUMetric.total_area_to_metrics(*areas, ["mIoU"])["IoU"].astype(float)


def verify_iou_per_class(iou_per_class: Callable) -> list[str]:
    """``iou_per_class(cm)`` against mmseg's IoUMetric on the masks each matrix counts."""
    problems = []
    for name, cm, gt, pred in confusion_cases():
        before = cm.copy()
        got = answered(iou_per_class(cm))
        if not np.array_equal(cm, before):
            return [f"for {name} your function changed the matrix it was given: work on a copy"]
        got = np.asarray(got, dtype=float)
        want = mmseg_iou(gt, pred, len(cm))
        if got.shape != want.shape:
            return [f"for {name} ({len(cm)} classes) it returned shape {got.shape}, not one IoU "
                    "per class"]
        where = f"for {name}"
        nan_got, nan_want = np.isnan(got), np.isnan(want)
        for c in np.flatnonzero(nan_want & ~nan_got):
            problems.append(f"{where}, class {c} is neither true nor predicted anywhere: its IoU "
                            f"is undefined (NaN), not {got[c]:g}")
        for c in np.flatnonzero(nan_got & ~nan_want):
            what = "never in the ground truth but predicted" if cm[c].sum() == 0 else "present"
            problems.append(f"{where}, class {c} is {what}: its IoU is a number, not NaN")
        both = ~nan_got & ~nan_want
        if both.any() and want[both].any() and np.allclose(got[both] * 100, want[both], rtol=1e-5,
                                                         atol=1e-4):
            problems.append(f"{where} the IoUs are fractions: give them in percent, as IoUMetric "
                            "and ev.per_class do")
        else:
            bad = np.flatnonzero(both & ~np.isclose(got, want, rtol=1e-5, atol=1e-4))
            if len(bad):
                problems.append(f"{where}, {len(bad)} class(es) have a wrong IoU (e.g. class "
                                f"{bad[0]}: {got[bad[0]]:.4g} %)")
        if problems:
            break
    return problems


# --- Task 3: most_confused ------------------------------------------------------------------

#: Small confusion matrices (rows: true class, columns: predicted class) and their most-confused
#: pair, worked out by hand: in each a diagonal entry is the largest, the transposed pair holds
#: less, and the row with the most errors is not the answer's row; the last one has a four-way
#: tie, where the first entry in row order counts.
CONFUSED_PAIRS: tuple[tuple[str, tuple[tuple[int, ...], ...], tuple[int, int]], ...] = (
    ("a 4-class matrix", ((500, 12, 3, 40),
                          (7, 420, 31, 2),
                          (30, 25, 380, 9),
                          (55, 1, 0, 610)), (3, 0)),
    ("a 6-class matrix", ((900, 20, 20, 20, 20, 20),
                          (3, 700, 4, 90, 0, 1),
                          (5, 8, 650, 2, 60, 11),
                          (0, 70, 6, 820, 5, 9),
                          (44, 2, 1, 3, 300, 0),
                          (12, 9, 85, 7, 4, 510)), (1, 3)),
    ("a 3-class matrix", ((0, 4, 30),
                          (9, 100, 6),
                          (12, 25, 0)), (0, 2)),
    ("a 5-class matrix with a tie", ((200, 8, 0, 17, 3),
                                     (1, 150, 17, 0, 2),
                                     (17, 4, 90, 6, 0),
                                     (5, 0, 9, 300, 16),
                                     (2, 17, 0, 4, 80)), (0, 3)),
)


def verify_most_confused(most_confused: Callable) -> list[str]:
    """``most_confused(cm)`` -> (true class, predicted class) of the largest off-diagonal count,
    on the matrices of :data:`CONFUSED_PAIRS`."""
    for k, (name, rows, want) in enumerate(CONFUSED_PAIRS):
        cm = np.array(rows, dtype=np.int32 if k % 2 else np.int64)  # any integer matrix
        before = cm.copy()
        got = answered(most_confused(cm))
        if not np.array_equal(cm, before):
            return [f"for {name} your function changed the matrix it was given (e.g. its "
                    "diagonal): work on a copy"]
        try:
            i, j = (int(v) for v in got)
        except (TypeError, ValueError):
            return [f"for {name} it returned {got!r}, not a pair (true class, predicted class)"]
        if (i, j) == want:
            continue
        if i == j:
            return [f"for {name} it returned ({i}, {j}), a diagonal entry: those pixels are "
                    "right, not confused; leave the diagonal out"]
        if (j, i) == want:
            return [f"for {name} the pair is reversed: rows are the true class, columns the "
                    "predicted class"]
        if not 0 <= i < len(cm) or not 0 <= j < len(cm):
            return [f"for {name} it returned ({i}, {j}), which is not an entry of a "
                    f"{len(cm)}x{len(cm)} matrix"]
        if cm[i, j] == cm[want]:
            return [f"for {name} several entries tie with ({i}, {j}): return the first in row "
                    "order, as np.argmax does"]
        return [f"for {name} it returned ({i}, {j}), which holds {cm[i, j]} pixels; another "
                "off-diagonal entry holds more"]
    return []


# --- Task 4: segment_my_image ---------------------------------------------------------------

def image_variants(source: str | Path, out_dir: str | Path, size: tuple[int, int]
                   ) -> dict[str, Path]:
    """One photo written as the files a student's own image may be: greyscale PNG, RGBA PNG
    (opaque, so that dropping or compositing the alpha agree), JPEG and palette PNG, each at
    ``size`` (width, height; odd sizes test "at the image's own size"). Returns name → path."""
    from PIL import Image

    out_dir = Path(out_dir)
    with Image.open(source) as img:
        rgb = img.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    variants = {
        "a greyscale PNG": (rgb.convert("L"), "grey.png", {}),
        "an RGBA PNG": (rgb.convert("RGBA"), "rgba.png", {}),
        "a JPEG": (rgb, "photo.jpg", {"quality": 90}),
        "a palette PNG": (rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
                        "palette.png", {}),
    }
    paths = {}
    for name, (img, filename, options) in variants.items():
        paths[name] = out_dir / filename
        img.save(paths[name], **options)
    return paths


@contextmanager
def kept_cfg(model: Any) -> Iterator[None]:
    """Give `model` a copy of its config for a moment: mmseg 1.2's ``inference_model`` rewrites
    the first step of ``model.cfg.test_pipeline`` when it is given an array, for good."""
    cfg = model.cfg
    model.cfg = copy.deepcopy(cfg)
    try:
        yield
    finally:
        model.cfg = cfg


def probe_model(voc_root: str | Path, seed: int = 404) -> Any:
    """A segmentor whose predictions are the same in every run: the ``smoke`` preset's slim
    PSPNet with random weights drawn from `seed` (the global random state is left as it was),
    on the CPU, with VOC's classes and palette. The grader's fixtures for notebook 04
    (teacher/tasks/n04_predict_evaluate.py) save it as a config and a checkpoint."""
    import torch
    from mmseg.apis import init_model

    from helpers.config import build_config
    from helpers.voc_classes import voc_metainfo

    cfg = build_config("smoke", voc_root, Path(tempfile.gettempdir()) / "probe_model")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = init_model(cfg, None, device="cpu")
    classes, palette = voc_metainfo()
    model.dataset_meta = {"classes": list(classes), "palette": [list(c) for c in palette]}
    return model


def _segmentation(model: Any, image: np.ndarray) -> np.ndarray:
    from mmseg.apis import inference_model

    with kept_cfg(model):
        return inference_model(model, image).pred_sem_seg.data[0].cpu().numpy()


def _check_segmentation(got: Any, model: Any, path: Path, opacity: float, where: str
                        ) -> list[str]:
    import mmcv

    bgr = mmcv.imread(str(path))  # as mmseg's LoadImageFromFile reads any file: 3 channels, BGR
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    classes = list(model.dataset_meta["classes"])
    try:
        mask, overlay, shares = got
    except (TypeError, ValueError):
        return [f"{where} it returned {type(got).__name__}, not (mask, overlay, shares)"]
    mask, want = np.asarray(mask), _segmentation(model, bgr)
    if mask.shape != want.shape:
        return [f"{where} the mask has shape {mask.shape}, not the image's own height and width "
                f"{want.shape}: one class id per pixel of the file"]
    if not np.array_equal(mask, want):
        if np.array_equal(mask, _segmentation(model, rgb)):
            return [f"{where} the colour channels reached the model in the wrong order: an array "
                    "given to inference_model must be BGR, as cv2 and mmcv read images"]
        wrong = int((mask != want).sum())
        return [f"{where} {wrong} of {mask.size} pixels have another class than the model "
                "predicts for this file"]
    overlay = np.asarray(overlay)
    if overlay.shape != rgb.shape:
        return [f"{where} the overlay has shape {overlay.shape}, not (height, width, 3) of the "
                "image in RGB"]
    if overlay.dtype != np.uint8:
        return [f"{where} the overlay is {overlay.dtype}, not uint8"]
    palette = model.dataset_meta["palette"]
    err = np.abs(overlay.astype(int)
                 - _mmseg_blend(rgb, want, palette, opacity, f"check_own_rgb_{opacity}"))
    if err.max() > BLEND_TOLERANCE:
        bgr_drawn = _mmseg_blend(bgr, want, palette, opacity, f"check_own_bgr_{opacity}")
        if np.abs(overlay.astype(int) - bgr_drawn).max() <= BLEND_TOLERANCE:
            return [f"{where} the overlay is drawn over the image in BGR order: show it in RGB"]
        if opacity != 0.5 and np.abs(overlay.astype(int) - _mmseg_blend(
                rgb, want, palette, 0.5, "check_own_rgb_0.5")).max() <= BLEND_TOLERANCE:
            return [f"{where} the overlay is blended at opacity 0.5, not at the opacity given"]
        return [f"{where} {int((err.max(axis=2) > BLEND_TOLERANCE).sum())} overlay pixels differ "
                "by more than 1 from the palette colours blended over the image at opacity "
                f"{opacity}"]
    if not isinstance(shares, dict):
        return [f"{where} shares is a {type(shares).__name__}, not a dict {{class name: percent}}"]
    ids, counts = np.unique(want, return_counts=True)
    if set(shares) != {classes[i] for i in ids}:
        if all(isinstance(k, (int, np.integer)) for k in shares):
            return [f"{where} the keys of shares are class ids: use the class names of "
                    "model.dataset_meta"]
        return [f"{where} shares names {sorted(map(str, shares))}: it should name exactly the "
                "classes that the mask holds"]
    got_pct = np.array([float(shares[classes[i]]) for i in ids])
    want_pct = 100 * counts / want.size
    if not np.allclose(got_pct, want_pct, atol=0.01):
        if np.allclose(got_pct * 100, want_pct, atol=0.01):
            return [f"{where} the shares are fractions: give them in percent"]
        return [f"{where} the shares are not each class's percent of the image's pixels (they "
                f"add up to {got_pct.sum():.2f})"]
    return []


#: The opacity each kind of file is tried at (None: the default, 0.5), as the grader varies it.
SEGMENT_OPACITIES = (None, 0.3, 0.8, None)


def verify_segment_my_image(segment_my_image: Callable, model: Any, example: str | Path
                            ) -> list[str]:
    """``segment_my_image(model, path[, opacity])`` -> (mask, overlay, shares) on `example`
    written as four kinds of file at an odd size, two of them at opacities other than the
    default, against mmseg's ``inference_model`` on the decoded image and
    ``SegLocalVisualizer``'s blend."""
    with tempfile.TemporaryDirectory() as tmp:
        files = image_variants(example, tmp, (131, 97))
        for (name, path), opacity in zip(files.items(), SEGMENT_OPACITIES, strict=True):
            args = (model, str(path)) if opacity is None else (model, str(path), opacity)
            with kept_cfg(model):
                got = answered(segment_my_image(*args))
            where = f"for {name} of 131x97 pixels" + ("" if opacity is None
                                                      else f" at opacity {opacity}")
            problems = _check_segmentation(got, model, path, opacity or 0.5, where)
            if problems:
                return problems
    return []


#: The tasks of notebook 04 and their hints (an API or a concept, never the code).
TASKS = {
    "blend": Task(verify_blend, hint="numpy fancy indexing: an array indexed with an integer "
                                     "array; blend in floating point and convert to uint8 at "
                                     "the end (astype truncates)"),
    "iou_per_class": Task(verify_iou_per_class,
                          hint="a class's TP is its diagonal entry, TP + FN its row, TP + FP its "
                               "column; numpy's sums along an axis; 0 / 0 is NaN "
                               "(np.errstate silences the warning)"),
    "most_confused": Task(verify_most_confused,
                          hint="the diagonal holds right answers and must not count; numpy's "
                               "arg-max over a 2-D array gives a flat index: see 'Indexing on "
                               "ndarrays' in numpy's user guide"),
    "segment_my_image": Task(verify_segment_my_image,
                             hint="mmcv.imread's flag and channel_order (or PIL's Image.convert); "
                                  "give mmseg's inference_model the file's path; "
                                  "SegDataSample.pred_sem_seg; use opacity; numpy.unique"),
}
