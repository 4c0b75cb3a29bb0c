"""Notebook 04's visible checks (helpers.checks.evaluation): blank, right and plausible wrong
answers.

The truths are mmseg's own (SegLocalVisualizer's blend, IoUMetric on the masks a confusion matrix
counts) or written as data (the most-confused pairs of small matrices, held here against a plain
loop). The solutions below live in the tests only: the checks module ships no answer key.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers.checks import check, evaluate
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


def test_the_module_ships_no_answer_key():
    """No function of the checks module returns a task's answer for a task's input."""
    public = {n for n in dir(tasks) if not n.startswith("__")}
    assert not {n for n in public if n.endswith("_reference")}
    assert "_brute_force_pair" not in public and "blend_reference" not in public
    assert set(tasks.TASKS) == {"blend", "iou_per_class", "most_confused"}
    for task in tasks.TASKS.values():  # a hint names an API or a concept, never the call
        assert task.hint and "(cm" not in task.hint and "fill_diagonal(" not in task.hint


@pytest.mark.parametrize("task_id", ["blend", "iou_per_class", "most_confused"])
def test_a_blank_answer_is_unanswered(task_id, capsys, monkeypatch):
    monkeypatch.delenv("COURSE_CHECKS", raising=False)
    verify = tasks.TASKS[task_id].verify
    assert evaluate(None, verify) == ("unanswered", [])
    assert evaluate(lambda *args: None, verify) == ("unanswered", [])  # the release's stub
    assert check(task_id, lambda *args: None) is None
    assert "not answered yet" in capsys.readouterr().out


def test_the_cases_have_absent_and_never_predicted_classes():
    for _, cm, gt, pred in tasks.confusion_cases():
        iou = tasks.mmseg_iou(gt, pred, len(cm))
        # one class nowhere; one only predicted and one never predicted: IoU 0
        assert np.isnan(iou).sum() == 1 and (iou == 0).sum() >= 2
        assert np.array_equal(cm.sum(), (gt != 255).sum())


def test_iou_right_is_correct(capsys):
    assert evaluate(iou_right, tasks.verify_iou_per_class) == ("correct", [])
    assert check("iou_per_class", iou_right) is iou_right
    assert "✓" in capsys.readouterr().out

    def masked(cm):  # NaN written explicitly where the union is 0: the same answer
        tp = np.diag(cm).astype(float)
        union = cm.sum(0) + cm.sum(1) - tp
        return np.where(union > 0, 100 * tp / np.maximum(union, 1), np.nan)

    assert evaluate(masked, tasks.verify_iou_per_class) == ("correct", [])


@pytest.mark.parametrize(("wrong", "says"), [
    (lambda cm: 100 * np.diag(cm) / (cm.sum(0) + cm.sum(1)), "wrong IoU"),  # TP counted twice
    (lambda cm: iou_right(cm) / 100, "fractions"),
    (lambda cm: np.nan_to_num(iou_right(cm)), "undefined (NaN), not 0"),
    (lambda cm: np.where(np.diag(cm) > 0, iou_right(cm), np.nan), "a number, not NaN"),
    (lambda cm: iou_right(cm)[:-1], "not one IoU per class"),
    (lambda cm: 100 * np.diag(cm) / cm.sum(1), "wrong IoU"),  # a class's accuracy, not IoU
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


def test_the_written_pairs_are_the_largest_off_diagonal_entries():
    """CONFUSED_PAIRS against a plain loop (first in row order on a tie), and each matrix is a
    trap: the largest entry is diagonal, the transpose holds less."""
    for _, rows, want in tasks.CONFUSED_PAIRS:
        cm = np.array(rows)
        best, pair = -1, None
        for i in range(len(cm)):
            for j in range(len(cm)):
                if i != j and cm[i, j] > best:
                    best, pair = cm[i, j], (i, j)
        assert pair == want
        assert cm.max() > best and cm[want[::-1]] < best
        assert int(np.argmax(cm.sum(1) - np.diag(cm))) != want[0]
    assert sum(1 for _, rows, want in tasks.CONFUSED_PAIRS
               if (np.array(rows) == np.array(rows)[want]).sum() > 1) == 1  # one tie


def test_most_confused_right_is_correct(capsys):
    assert evaluate(most_confused_right, tasks.verify_most_confused) == ("correct", [])

    def with_where(cm):  # another right way: the first off-diagonal maximum in row order
        off = ~np.eye(len(cm), dtype=bool)
        rows, cols = np.nonzero(off & (cm == cm[off].max()))
        return rows[0], cols[0]

    assert evaluate(with_where, tasks.verify_most_confused) == ("correct", [])
    assert check("most_confused", with_where) is with_where
    assert "✓" in capsys.readouterr().out


def _overwrites(cm):
    np.fill_diagonal(cm, 0)
    return np.unravel_index(np.argmax(cm), cm.shape)


def _last_of_ties(cm):
    off = cm.astype(float)
    np.fill_diagonal(off, -1)
    flat = off.size - 1 - np.argmax(off.ravel()[::-1])
    return np.unravel_index(flat, off.shape)


@pytest.mark.parametrize(("wrong", "says"), [
    (lambda cm: np.unravel_index(np.argmax(cm), cm.shape), "diagonal entry"),
    (lambda cm: most_confused_right(cm)[::-1], "reversed"),
    (_overwrites, "changed the matrix"),
    (lambda cm: most_confused_right(cm)[0], "not a pair"),
    (lambda cm: (int(np.argmax(cm.sum(1) - np.diag(cm))), 0), "another off-diagonal entry"),
    (_last_of_ties, "tie"),
])
def test_most_confused_mistakes_are_named(wrong, says, capsys, monkeypatch):
    status, problems = evaluate(wrong, tasks.verify_most_confused)
    assert status == "wrong" and says in problems[0], problems
    monkeypatch.delenv("COURSE_CHECKS", raising=False)
    assert check("most_confused", wrong) is None
    assert "Hint:" in capsys.readouterr().out


def test_blend_right_and_rounded_are_correct():
    assert evaluate(blend_right, tasks.verify_blend) == ("correct", [])

    def rounded(image, mask, palette, opacity):  # rounding instead of truncating: within 1
        return np.round(image * (1 - opacity) + np.asarray(palette)[mask] * opacity).astype(
            np.uint8)

    assert evaluate(rounded, tasks.verify_blend) == ("correct", [])


@pytest.mark.parametrize(("wrong", "says"), [
    (lambda im, m, p, o: blend_right(im, m, p, 1 - o), "each other's weights"),
    (lambda im, m, p, o: im * (1 - o) + np.asarray(p)[m] * o, "float64"),
    (lambda im, m, p, o: blend_right(im, m, p, o)[..., ::-1], "pixels are off"),  # BGR
    (lambda im, m, p, o: im // 2 + np.asarray(p, np.uint8)[m] // 2, "pixels are off"),
    (lambda im, m, p, o: (im + (np.asarray(p, np.uint8)[m] - im) * o).astype(np.uint8),
     "pixels are off"),  # a uint8 difference wraps around
    (lambda im, m, p, o: blend_right(im, m, p, o)[:, :, 0], "shape"),
])
def test_blend_mistakes_are_named(wrong, says):
    status, problems = evaluate(wrong, tasks.verify_blend)
    assert status == "wrong" and says in problems[0], problems


def test_a_blend_that_changes_the_image_in_place_is_wrong():
    def in_place(image, mask, palette, opacity):
        image[:] = blend_right(image, mask, palette, opacity)
        return image

    status, problems = evaluate(in_place, tasks.verify_blend)
    assert status == "wrong" and "changed the image" in problems[0], problems
