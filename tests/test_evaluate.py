"""helpers.evaluate: IoUMetric over the val split, confusion matrix, per-class table, worst-5."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mmseg.apis import inference_model

from helpers.checkpoint import init_model, load_checkpoint
from helpers.evaluate import (
    confusion_matrix,
    evaluate,
    evaluate_predictions,
    iou_from_confusion,
)
from helpers.plotting import plot_confusion
from helpers.predict import pred_mask
from helpers.train import read_scalars
from helpers.voc import CLASSES, read_mask, split_ids


@pytest.fixture(scope="module")
def model(trained_smoke):
    return init_model(trained_smoke.config_path, trained_smoke.checkpoint, device="cpu")


@pytest.fixture(scope="module")
def ev(model):
    return evaluate(model, progress=False)


@pytest.fixture(scope="module")
def val_gt(trained_smoke):
    """Ground truth of every validation image, read independently of mmseg."""
    root = trained_smoke.voc_root
    return {i: read_mask(root / "SegmentationClass" / f"{i}.png") for i in split_ids(root, "val")}


def test_every_val_image_is_evaluated_once(ev, val_gt):
    assert ev.image_ids == list(val_gt)
    assert len(ev.image_miou) == len(val_gt)
    for image_id, gt in val_gt.items():
        assert ev.predictions[image_id].shape == gt.shape


def test_confusion_counts_every_labelled_pixel(ev, val_gt):
    assert ev.confusion.sum() == sum(int((gt != 255).sum()) for gt in val_gt.values())
    gt_per_class = np.bincount(np.concatenate([gt[gt != 255] for gt in val_gt.values()]),
                               minlength=21)
    np.testing.assert_array_equal(ev.confusion.sum(1), gt_per_class)


def test_iou_from_confusion_matches_iou_metric(ev):
    """The confusion matrix and mmseg's IoUMetric describe the same predictions."""
    iou = iou_from_confusion(ev.confusion)
    table = ev.per_class.loc[list(CLASSES), "IoU"].to_numpy()
    np.testing.assert_array_equal(np.isnan(iou), np.isnan(table))
    ok = ~np.isnan(iou)
    assert np.abs(iou[ok] - table[ok]).max() <= 0.01
    assert abs(np.nanmean(iou) - ev.metrics["mIoU"]) <= 0.01
    acc = 100 * np.trace(ev.confusion) / ev.confusion.sum()
    assert abs(acc - ev.metrics["aAcc"]) <= 0.01


def test_metrics_equal_what_training_recorded(ev, trained_smoke):
    """Same dataset, pipeline and metric as the Runner's validation: the same mIoU."""
    saved_at = load_checkpoint(trained_smoke.checkpoint)["meta"]["iter"]
    _, val_log = read_scalars(trained_smoke.work_dir)
    assert abs(ev.metrics["mIoU"] - val_log.loc[saved_at, "mIoU"]) <= 0.01
    assert abs(ev.metrics["aAcc"] - val_log.loc[saved_at, "aAcc"]) <= 0.01
    assert ev.metrics["mIoU"] >= 50  # the smoke preset's promise on the demo data


def test_predictions_equal_inference_model(ev, model, trained_smoke):
    image_id = ev.image_ids[-1]
    path = trained_smoke.voc_root / "JPEGImages" / f"{image_id}.jpg"
    np.testing.assert_array_equal(pred_mask(inference_model(model, str(path))),
                                  ev.predictions[image_id])


def test_absent_classes_are_marked_not_zero(ev, val_gt):
    present = set(np.unique(np.concatenate([np.unique(g) for g in val_gt.values()]))) - {255}
    table = ev.per_class
    absent = set(table.index[table["status"] == "absent"])
    assert absent == {CLASSES[c] for c in range(21) if c not in present}
    assert absent, "the demo data use a few of VOC's classes: some must be absent"
    never_predicted = table.loc[list(absent)]["predicted pixels"] == 0
    assert table.loc[never_predicted[never_predicted].index, "IoU"].isna().all()
    assert (table["status"].iloc[: len(present)] == "present").all()  # present ones sort first


def test_per_image_miou_and_worst(ev, val_gt):
    worst = ev.worst(5)
    scores = dict(zip(ev.image_ids, ev.image_miou, strict=True))
    assert [scores[i] for i in worst] == sorted(scores.values())[:5]
    image_id = worst[0]
    gt, pred = val_gt[image_id], ev.predictions[image_id]
    ious = [((gt == c) & (pred == c)).sum() / ((gt == c) | ((pred == c) & (gt != 255))).sum()
            for c in range(21) if ((gt == c) | ((pred == c) & (gt != 255))).any()]
    assert abs(100 * np.mean(ious) - scores[image_id]) < 1e-3


def test_ready_made_masks_score_the_same(ev, trained_smoke):
    """evaluate_predictions (the route for ONNX Runtime masks) reproduces evaluate exactly."""
    again = evaluate_predictions(ev.predictions, trained_smoke.voc_root, progress=False)
    assert again.metrics == ev.metrics
    np.testing.assert_array_equal(again.confusion, ev.confusion)
    np.testing.assert_array_equal(again.image_miou, ev.image_miou)
    # a model that is wrong everywhere except on the background scores far lower
    flat = {i: np.zeros_like(p) for i, p in ev.predictions.items()}
    assert evaluate_predictions(flat, trained_smoke.voc_root, progress=False).metrics["mIoU"] < 20
    some = dict(list(ev.predictions.items())[1:])
    with pytest.raises(KeyError, match=ev.image_ids[0]):
        evaluate_predictions(some, trained_smoke.voc_root, progress=False)
    shrunk = {i: p[:-1] for i, p in ev.predictions.items()}
    with pytest.raises(ValueError, match="original size"):
        evaluate_predictions(shrunk, trained_smoke.voc_root, progress=False)


def test_summary_is_json(ev):
    data = json.loads(json.dumps(ev.summary()))
    assert data["metrics"]["mIoU"] == ev.metrics["mIoU"]
    assert isinstance(ev.metrics["mIoU"], float) and set(ev.metrics) >= {"mIoU", "aAcc", "mAcc"}


def test_confusion_matrix_ignores_void_and_checks_input():
    gt = np.array([[0, 1, 255], [1, 1, 2]], np.uint8)
    pred = np.array([[0, 2, 1], [1, 1, 2]], np.uint8)
    cm = confusion_matrix(gt, pred, num_classes=3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 2, 1], [0, 0, 1]])
    np.testing.assert_allclose(iou_from_confusion(cm), [100, 200 / 3, 50])
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(gt, pred[:1])
    with pytest.raises(ValueError, match="< 3"):
        confusion_matrix(gt, pred + 1, num_classes=3)


def test_confusion_plot_is_row_normalised(ev):
    cm = ev.confusion
    ax = plot_confusion(cm).axes[0]
    shown = [CLASSES.index(t.get_text()) for t in ax.get_yticklabels()]
    assert shown == [c for c in range(21) if cm[c].sum() + cm[:, c].sum() > 0]
    data = np.ma.filled(ax.collections[0].get_array().astype(float), np.nan)
    with np.errstate(invalid="ignore"):
        expected = cm[np.ix_(shown, shown)] / cm[shown].sum(1, keepdims=True)
    np.testing.assert_allclose(data.reshape(expected.shape), expected)
