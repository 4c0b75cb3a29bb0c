"""Notebook 04's task checks (helpers.checks.evaluation): blank, right and plausible wrong answers.

The truths are mmseg's own: IoUMetric on the masks a confusion matrix counts, and the blend of
SegLocalVisualizer (through helpers.palette.overlay, held against it by test_palette.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.checks import evaluate
from helpers.checks import evaluation as tasks


def iou_right(cm):
    tp = np.diag(cm).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100 * tp / (cm.sum(0) + cm.sum(1) - tp)


def most_confused_right(cm):
    off = cm.astype(float)
    np.fill_diagonal(off, -1)
    return tuple(int(v) for v in np.unravel_index(np.argmax(off), off.shape))


def blend_right(image, mask, palette, opacity):
    return (image * (1 - opacity) + np.asarray(palette, float)[mask] * opacity).astype(np.uint8)


def no_expected_values(problems: list[str], values) -> None:
    """No problem message shows a true value (to 2 decimals)."""
    text = " ".join(problems)
    for value in values:
        if np.isfinite(value) and value not in (0, 100):
            assert f"{value:.2f}" not in text, (value, text)


@pytest.mark.parametrize("verify", [tasks.verify_iou_per_class, tasks.verify_most_confused,
                                    tasks.verify_blend])
def test_a_blank_answer_is_unanswered(verify):
    assert evaluate(None, verify) == ("unanswered", [])
    assert evaluate(lambda *args: None, verify) == ("unanswered", [])  # the release's stub


def test_the_cases_have_absent_and_never_predicted_classes():
    for _, cm, gt, pred in tasks.confusion_cases():
        iou = tasks.mmseg_iou(gt, pred, len(cm))
        # one class nowhere; one only predicted and one never predicted: IoU 0
        assert np.isnan(iou).sum() == 1 and (iou == 0).sum() >= 2
        assert np.array_equal(cm.sum(), (gt != 255).sum())


def test_iou_right_and_reference_are_correct():
    assert evaluate(iou_right, tasks.verify_iou_per_class) == ("correct", [])
    assert evaluate(tasks.iou_reference, tasks.verify_iou_per_class) == ("correct", [])


@pytest.mark.parametrize(("wrong", "says"), [
    (lambda cm: 100 * np.diag(cm) / (cm.sum(0) + cm.sum(1)), "wrong IoU"),  # TP counted twice
    (lambda cm: iou_right(cm) / 100, "fractions"),
    (lambda cm: np.nan_to_num(iou_right(cm)), "undefined (NaN), not 0"),
    (lambda cm: np.where(np.diag(cm) > 0, iou_right(cm), np.nan), "a number, not NaN"),
    (lambda cm: iou_right(cm)[:-1], "not one IoU per class"),
])
def test_iou_mistakes_are_named(wrong, says):
    with np.errstate(all="ignore"):
        status, problems = evaluate(wrong, tasks.verify_iou_per_class)
    assert status == "wrong" and says in " ".join(problems), problems
    truth = [v for _, cm, gt, pred in tasks.confusion_cases()
             for v in tasks.mmseg_iou(gt, pred, len(cm))]
    no_expected_values(problems, truth)


def test_iou_that_overwrites_the_matrix_is_wrong():
    def in_place(cm):
        iou = iou_right(cm)
        cm //= 2  # right values, but the caller's matrix is halved
        return iou

    status, problems = evaluate(in_place, tasks.verify_iou_per_class)
    assert status == "wrong" and "changed the matrix" in problems[0]


def test_most_confused_right_and_reference_are_correct():
    assert evaluate(most_confused_right, tasks.verify_most_confused) == ("correct", [])
    assert evaluate(tasks.most_confused_reference, tasks.verify_most_confused) == ("correct", [])


def _overwrites(cm):
    np.fill_diagonal(cm, 0)
    return np.unravel_index(np.argmax(cm), cm.shape)


@pytest.mark.parametrize(("wrong", "says"), [
    (lambda cm: np.unravel_index(np.argmax(cm), cm.shape), "diagonal entry"),
    (lambda cm: most_confused_right(cm)[::-1], "reversed"),
    (_overwrites, "changed the matrix"),
    (lambda cm: most_confused_right(cm)[0], "not a pair"),
    (lambda cm: (int(np.argmax(cm.sum(1) - np.diag(cm))), 0), "another off-diagonal entry"),
])
def test_most_confused_mistakes_are_named(wrong, says):
    status, problems = evaluate(wrong, tasks.verify_most_confused)
    assert status == "wrong" and says in problems[0], problems


def test_blend_right_rounded_and_reference_are_correct():
    assert evaluate(blend_right, tasks.verify_blend) == ("correct", [])
    assert evaluate(tasks.blend_reference, tasks.verify_blend) == ("correct", [])

    def rounded(image, mask, palette, opacity):  # rounding instead of truncating: within 1
        return np.round(image * (1 - opacity) + np.asarray(palette)[mask] * opacity).astype(
            np.uint8)

    assert evaluate(rounded, tasks.verify_blend) == ("correct", [])


@pytest.mark.parametrize(("wrong", "says"), [
    (lambda im, m, p, o: blend_right(im, m, p, 1 - o), "each other's weights"),
    (lambda im, m, p, o: im * (1 - o) + np.asarray(p)[m] * o, "float64"),
    (lambda im, m, p, o: blend_right(im, m, p, o)[..., ::-1], "pixels are off"),  # BGR
    (lambda im, m, p, o: im // 2 + np.asarray(p, np.uint8)[m] // 2, "pixels are off"),
    (lambda im, m, p, o: blend_right(im, m, p, o)[:, :, 0], "shape"),
])
def test_blend_mistakes_are_named(wrong, says):
    status, problems = evaluate(wrong, tasks.verify_blend)
    assert status == "wrong" and says in problems[0], problems
