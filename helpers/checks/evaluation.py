"""Checks of notebook 04's tasks: IoU from a confusion matrix, the most-confused pair, an overlay.

Each ``verify_*`` takes the student's function and returns the problems found (see
`helpers.checks.check`); each ``*_reference`` is what the lesson continues with when the answer
is missing or wrong. The truths come from elsewhere than the solutions: mmseg's ``IoUMetric``
on the masks the matrices are counted from, a plain loop over matrix entries, and the course's
overlay rule (``helpers.palette.overlay``, held against mmseg's ``SegLocalVisualizer`` by
tests/test_palette.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from helpers.checks import answered

__all__ = [
    "BLEND_TOLERANCE",
    "blend_reference",
    "confusion_cases",
    "iou_reference",
    "mmseg_iou",
    "most_confused_reference",
    "verify_blend",
    "verify_iou_per_class",
    "verify_most_confused",
]

BLEND_TOLERANCE = 1
"""Largest accepted difference per uint8 channel from mmseg's blend (rounding instead of
truncating is fine)."""


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
    """(name, confusion matrix, ground truth, prediction) for 21 and for 5 classes."""
    cases = []
    for name, n, seed in (("a 21-class matrix", 21, 0), ("a 5-class matrix", 5, 1)):
        gt, pred = _masks(n, seed)
        cases.append((name, _count(gt, pred, n), gt, pred))
    return cases


def mmseg_iou(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class IoU in percent as mmseg's ``IoUMetric`` computes it (NaN: class nowhere)."""
    import torch
    from mmseg.evaluation import IoUMetric

    areas = IoUMetric.intersect_and_union(torch.from_numpy(pred.astype(np.int64)),
                                          torch.from_numpy(gt.astype(np.int64)), num_classes, 255)
    return 100 * IoUMetric.total_area_to_metrics(*areas, ["mIoU"])["IoU"].astype(float)


def iou_reference(cm: np.ndarray) -> np.ndarray:
    """The course's IoU from a confusion matrix (``helpers.evaluate.iou_from_confusion``)."""
    from helpers.evaluate import iou_from_confusion

    return iou_from_confusion(cm)


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


def most_confused_reference(cm: np.ndarray) -> tuple[int, int]:
    """(true class, predicted class) of the largest off-diagonal count (the first in row order
    on a tie)."""
    off = np.asarray(cm, dtype=float).copy()
    np.fill_diagonal(off, -np.inf)
    i, j = np.unravel_index(int(np.argmax(off)), off.shape)
    return int(i), int(j)


def _brute_force_pair(cm: np.ndarray) -> tuple[int, int]:
    best, pair = -1, (0, 0)
    for i in range(len(cm)):
        for j in range(len(cm)):
            if i != j and cm[i, j] > best:
                best, pair = cm[i, j], (i, j)
    return pair


def _confusion_tricks() -> list[tuple[str, np.ndarray]]:
    """Matrices where a diagonal entry is the largest, the transpose's answer differs, and the
    largest row or column sum is elsewhere."""
    rng = np.random.default_rng(4)
    a = rng.integers(0, 50, (6, 6))
    np.fill_diagonal(a, 500)
    a[1, 4], a[4, 1] = 90, 60  # (1, 4), not its transpose
    a[5, :] += 40  # class 5 has the largest row sum of errors, but no single largest cell
    a[5, 0] = 80
    b = rng.integers(0, 9, (3, 3))
    np.fill_diagonal(b, 0)
    b[2, 0] = 30
    b[1, 1] = 100
    return [("a 6-class matrix", a), ("a 3-class matrix", b)]


def verify_most_confused(most_confused: Callable) -> list[str]:
    """``most_confused(cm)`` -> (true class, predicted class) of the largest off-diagonal count."""
    for name, cm in [(n, c) for n, c, _, _ in confusion_cases()] + _confusion_tricks():
        before = cm.copy()
        got = answered(most_confused(cm))
        if not np.array_equal(cm, before):
            return [f"for {name} your function changed the matrix it was given (e.g. its "
                    "diagonal): work on a copy"]
        try:
            i, j = (int(v) for v in got)
        except (TypeError, ValueError):
            return [f"for {name} it returned {got!r}, not a pair (true class, predicted class)"]
        want = _brute_force_pair(cm)
        if (i, j) == want:
            continue
        if i == j:
            return [f"for {name} it returned ({i}, {j}), a diagonal entry: those pixels are "
                    "right, not confused; leave the diagonal out"]
        if (j, i) == want:
            return [f"for {name} the pair is reversed: rows are the true class, columns the "
                    "predicted class"]
        return [f"for {name} it returned ({i}, {j}), which holds {cm[i, j]} pixels; another "
                "off-diagonal entry holds more"]
    return []


def blend_reference(image: np.ndarray, mask: np.ndarray, palette: Sequence, opacity: float
                    ) -> np.ndarray:
    """The course's overlay rule (``helpers.palette.overlay``), mmseg's blend."""
    from helpers.palette import overlay

    return overlay(image, mask, opacity, palette)


def _blend_inputs(seed: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
    rng = np.random.default_rng(seed)
    palette = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(21)]
    image = rng.integers(0, 256, (31, 47, 3), dtype=np.uint8)
    mask = rng.integers(0, 21, (31, 47)).astype(np.uint8)
    return image, mask, palette


def verify_blend(blend: Callable) -> list[str]:
    """``blend(image, mask, palette, opacity)`` against mmseg's rule at several opacities."""
    for seed, opacity in ((0, 0.3), (1, 0.8), (2, 1.0), (3, 0.5)):
        image, mask, palette = _blend_inputs(seed)
        got = answered(blend(image.copy(), mask, palette, opacity))
        got = np.asarray(got)
        where = f"at opacity {opacity}"
        if got.shape != image.shape:
            return [f"{where} it returned shape {got.shape}, not the image's {image.shape}"]
        if got.dtype != np.uint8:
            return [f"{where} it returned {got.dtype}: an image here is uint8 (convert after "
                    "blending, not before: uint8 sums overflow)"]
        want = blend_reference(image, mask, palette, opacity).astype(int)
        err = np.abs(got.astype(int) - want)
        if err.max() > BLEND_TOLERANCE:
            swapped = blend_reference(image, mask, palette, 1 - opacity).astype(int)
            if np.abs(got.astype(int) - swapped).max() <= BLEND_TOLERANCE:
                return [f"{where} the image and the colours have each other's weights: opacity "
                        "is the weight of the mask's colour"]
            return [f"{where} {int((err.max(axis=2) > BLEND_TOLERANCE).sum())} of {mask.size} "
                    f"pixels are off by more than {BLEND_TOLERANCE} (up to {int(err.max())})"]
    return []
