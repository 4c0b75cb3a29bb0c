"""Notebook 04's visible checks (helpers.checks.evaluation): blank, right and plausible wrong
answers.

The truths are mmseg's own (SegLocalVisualizer's blend, IoUMetric on the masks a confusion matrix
counts, inference_model on the files segment_my_image reads) or written as data (the
most-confused pairs of small matrices, held here against a plain loop). The solutions below live
in the tests only: the checks module ships no answer key.
"""

from __future__ import annotations

import copy

import mmcv
import numpy as np
import pytest
import torch
from mmseg.apis import inference_model
from PIL import Image

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
    assert set(tasks.TASKS) == {"blend", "iou_per_class", "most_confused", "segment_my_image"}
    for task in tasks.TASKS.values():  # a hint names an API or a concept, never the call
        assert task.hint and "(cm" not in task.hint and "fill_diagonal(" not in task.hint
        assert "unravel_index" not in task.hint and "(model" not in task.hint


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


# --- Task 4: segment_my_image ---------------------------------------------------------------

def _shares(model, mask):
    ids, counts = np.unique(mask, return_counts=True)
    return {model.dataset_meta["classes"][i]: 100 * c / mask.size
            for i, c in zip(ids, counts, strict=True)}


def _overlay(model, image, mask, opacity):
    palette = np.asarray(model.dataset_meta["palette"], float)
    return (image * (1 - opacity) + palette[mask] * opacity).astype(np.uint8)


def segment_right(model, path, opacity=0.5):
    """mmseg reads the file; mmcv reads it again in RGB for the overlay."""
    mask = inference_model(model, path).pred_sem_seg.data[0].cpu().numpy()
    image = mmcv.imread(path, channel_order="rgb")
    return mask, _overlay(model, image, mask, opacity), _shares(model, mask)


def segment_with_pil(model, path, opacity=0.5):
    """Another right way: PIL converts any mode to RGB, the model gets a BGR copy."""
    image = np.asarray(Image.open(path).convert("RGB"))
    mask = inference_model(model, np.ascontiguousarray(image[..., ::-1])).pred_sem_seg.data[0]
    mask = mask.cpu().numpy().astype(np.uint8)
    shares = {k: round(v, 2) for k, v in _shares(model, mask).items()}  # rounded: fine
    return mask, _overlay(model, image, mask, opacity), shares


def segment_rgb_array(model, path, opacity=0.5):
    image = np.asarray(Image.open(path).convert("RGB"))  # RGB where mmseg expects BGR
    mask = inference_model(model, image).pred_sem_seg.data[0].cpu().numpy()
    return mask, _overlay(model, image, mask, opacity), _shares(model, mask)


def segment_raw_pil(model, path, opacity=0.5):
    image = np.asarray(Image.open(path))  # greyscale stays 2-D, RGBA keeps 4 channels
    mask = inference_model(model, np.ascontiguousarray(image[..., ::-1])).pred_sem_seg.data[0]
    return mask.cpu().numpy(), image, {}


def segment_fractions(model, path, opacity=0.5):
    mask, overlay, shares = segment_right(model, path, opacity)
    return mask, overlay, {k: v / 100 for k, v in shares.items()}


def segment_ids_as_keys(model, path, opacity=0.5):
    mask, overlay, _ = segment_right(model, path, opacity)
    ids, counts = np.unique(mask, return_counts=True)
    return mask, overlay, {int(i): 100 * c / mask.size for i, c in zip(ids, counts, strict=True)}


def segment_bgr_overlay(model, path, opacity=0.5):
    mask = inference_model(model, path).pred_sem_seg.data[0].cpu().numpy()
    return mask, _overlay(model, mmcv.imread(path), mask, opacity), _shares(model, mask)


def segment_small_mask(model, path, opacity=0.5):
    mask, overlay, shares = segment_right(model, path, opacity)
    return mask[::2, ::2], overlay, shares  # not at the file's own size


def segment_fixed_opacity(model, path, opacity=0.5):
    return segment_right(model, path)  # opacity ignored: always the default


def segment_without_rarest(model, path, opacity=0.5):
    mask, overlay, shares = segment_right(model, path, opacity)
    rarest = min(shares, key=shares.get)  # e.g. a cut-off for "too small to matter"
    return mask, overlay, {k: v for k, v in shares.items() if k != rarest}


@pytest.fixture(scope="module")
def probe(demo_root):
    return tasks.probe_model(demo_root)


@pytest.fixture(scope="module")
def example(demo_root):
    return str(sorted((demo_root / "JPEGImages").glob("*.jpg"))[0])


def test_probe_model_is_the_same_each_time_and_keeps_the_random_state(demo_root, probe):
    before = torch.random.get_rng_state()
    again = tasks.probe_model(demo_root)
    assert torch.equal(before, torch.random.get_rng_state())
    for (k, a), b in zip(probe.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert len(probe.dataset_meta["classes"]) == 21 == len(probe.dataset_meta["palette"])


def test_image_variants_are_the_kinds_of_file_a_photo_comes_as(example, tmp_path):
    files = tasks.image_variants(example, tmp_path, (31, 17))
    modes = {name: Image.open(path).mode for name, path in files.items()}
    assert modes == {"a greyscale PNG": "L", "an RGBA PNG": "RGBA", "a JPEG": "RGB",
                     "a palette PNG": "P"}
    assert {Image.open(p).size for p in files.values()} == {(31, 17)}


def test_kept_cfg_undoes_what_inference_model_does_to_the_config(probe, example):
    before = copy.deepcopy(probe.cfg.test_pipeline)
    with tasks.kept_cfg(probe):
        inference_model(probe, mmcv.imread(example))
        assert probe.cfg.test_pipeline[0]["type"] == "LoadImageFromNDArray"
    assert probe.cfg.test_pipeline == before


def test_segment_unanswered(probe, example, capsys, monkeypatch):
    monkeypatch.delenv("COURSE_CHECKS", raising=False)
    verify = tasks.verify_segment_my_image
    assert evaluate(None, verify, model=probe, example=example) == ("unanswered", [])
    assert evaluate(lambda *args: None, verify, model=probe, example=example) == (
        "unanswered", [])
    assert check("segment_my_image", lambda *args: None, model=probe, example=example) is None
    assert "not answered yet" in capsys.readouterr().out


@pytest.mark.parametrize(("right", "array"), [(segment_right, False), (segment_with_pil, True)])
def test_segment_right_answers_are_correct(right, array, probe, example, capsys):
    before = copy.deepcopy(probe.cfg.test_pipeline)
    assert evaluate(right, tasks.verify_segment_my_image, model=probe, example=example) == (
        "correct", [])
    assert probe.cfg.test_pipeline == before  # the check gave the answer a copy of the config
    out = capsys.readouterr().out  # an array given to inference_model: right, but told the trap
    assert ("your function changed model.cfg" in out) == array, out
    assert out.count("Note:") == int(array) and ("LoadImageFromNDArray" in out) == array


@pytest.mark.parametrize(("wrong", "says"), [
    (segment_rgb_array, "wrong order"),
    (segment_raw_pil, "another class"),  # a 2-D grey array: [..., ::-1] mirrors it
    (segment_fractions, "fractions"),
    (segment_ids_as_keys, "class ids"),
    (segment_bgr_overlay, "BGR order"),
    (segment_small_mask, "own height and width"),
    (segment_without_rarest, "exactly the classes"),
    (segment_fixed_opacity, "not at the opacity given"),
    (lambda model, path, opacity=0.5: segment_right(model, path, opacity)[:2], "not (mask"),
])
def test_segment_mistakes_are_named(wrong, says, probe, example):
    status, problems = evaluate(wrong, tasks.verify_segment_my_image, model=probe,
                                example=example)
    assert status == "wrong" and says in problems[0], problems
