"""Checks of notebook 04's tasks: a blend drawn over an image, IoU from a confusion matrix, the
most-confused pair, and (from :mod:`helpers.checks.own_image`) a model run on an image file of
the student's own.

Each ``verify_*`` takes the student's function and returns the problems found (see
`helpers.checks.check`), registered in :data:`TASKS`. The truths come from elsewhere than the
solutions: mmseg's ``SegLocalVisualizer`` draws the blends, mmseg's ``IoUMetric`` scores the masks
each confusion matrix counts, the most-confused pairs of a few small matrices are written here
as data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.checks import Task, answered
from helpers.checks.own_image import (
    BLEND_TOLERANCE,
    SEGMENT_OPACITIES,
    image_variants,
    kept_cfg,
    mmseg_blend,
    probe_model,
    verify_segment_my_image,
)

__all__ = [
    "BLEND_TOLERANCE",
    "CONFUSED_PAIRS",
    "SEGMENT_OPACITIES",
    "TASKS",
    "confusion_cases",
    "image_variants",
    "kept_cfg",
    "mmseg_iou",
    "probe_model",
    "verify_blend",
    "verify_iou_per_class",
    "verify_most_confused",
    "verify_segment_my_image",
]

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
        drawn = {alpha: mmseg_blend(image, mask, palette, alpha, f"check_blend_{seed}_{alpha}")
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
