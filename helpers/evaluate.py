"""Evaluate a segmentor on the validation split: metrics, confusion matrix, failure cases (nb 04).

`evaluate` runs the model ONCE over the config's `val_dataloader` (the same dataset, pipeline and
`IoUMetric` that training validated with) and keeps every prediction, so the per-class table,
the confusion matrix and the worst-image gallery (`helpers.plotting`) all describe the same
predictions. `evaluate_predictions` scores masks made elsewhere the same way, and
`compare_miou` puts PyTorch and ONNX Runtime graphs side by side (notebook 05).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from tqdm.auto import tqdm

from helpers.voc import CLASSES, IGNORE_INDEX, IMAGE_DIR, MASK_DIR, read_image, read_mask, split_ids

__all__ = [
    "Evaluation",
    "compare_miou",
    "confusion_matrix",
    "evaluate",
    "evaluate_predictions",
    "iou_from_confusion",
]


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int = len(CLASSES),
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """(C, C) pixel counts, rows = ground-truth class, columns = predicted class; void ignored."""
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    valid = gt != ignore_index
    g = gt[valid].astype(np.int64)
    p = pred[valid].astype(np.int64)
    if g.size and (g.max() >= num_classes or p.max() >= num_classes):
        raise ValueError(f"class ids must be < {num_classes} (or {ignore_index} in the ground "
                         f"truth); got gt max {g.max()}, prediction max {p.max()}")
    return np.bincount(num_classes * g + p, minlength=num_classes**2).reshape(
        num_classes, num_classes)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU in percent, TP / (TP + FP + FN); NaN for a class neither true nor predicted."""
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, 100 * tp / union, np.nan)


@dataclass
class Evaluation:
    """Everything `evaluate` measured. Metrics are plain Python floats in percent."""

    metrics: dict[str, float]
    per_class: pd.DataFrame
    confusion: np.ndarray
    image_ids: list[str]
    image_miou: np.ndarray
    predictions: dict[str, np.ndarray] = field(repr=False)
    img_paths: dict[str, str] = field(repr=False)
    seg_paths: dict[str, str] = field(repr=False)

    def sample(self, image_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image RGB, ground truth, prediction) of one validation image."""
        return (read_image(self.img_paths[image_id]), read_mask(self.seg_paths[image_id]),
                self.predictions[image_id])

    def worst(self, k: int = 5) -> list[str]:
        """Ids of the `k` images with the lowest per-image mIoU, worst first."""
        order = np.argsort(self.image_miou, kind="stable")
        return [self.image_ids[i] for i in order[:k]]

    def summary(self) -> dict:
        """JSON-ready summary (floats, None for classes without a value)."""
        def num(x) -> float | None:
            return None if pd.isna(x) else float(x)

        return {"metrics": {k: float(v) for k, v in self.metrics.items()},
                "num_images": len(self.image_ids),
                "per_class": {name: {"IoU": num(row["IoU"]), "Acc": num(row["Acc"]),
                                     "status": row["status"]}
                              for name, row in self.per_class.iterrows()}}


def _class_table(intersect, union, pred_area, label_area, classes) -> pd.DataFrame:
    per = IoUMetric.total_area_to_metrics(intersect, union, pred_area, label_area, ["mIoU"])
    table = pd.DataFrame({
        "IoU": 100 * per["IoU"].astype(float),
        "Acc": 100 * per["Acc"].astype(float),
        "GT pixels": label_area.numpy().astype(np.int64),
        "predicted pixels": pred_area.numpy().astype(np.int64),
    }, index=pd.Index(list(classes), name="class"))
    table["status"] = np.where(table["GT pixels"] > 0, "present", "absent")
    return table.sort_values(["IoU", "GT pixels"], ascending=False, na_position="last")


@contextmanager
def _quiet_logger(level: int = logging.ERROR) -> Iterator[None]:
    """Silence mmengine's logger for a moment (IoUMetric logs a PrettyTable and a prefix notice;
    the notebook shows the pandas table instead)."""
    logger = MMLogger.get_current_instance()
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


class _Scorer:
    """Feeds (prediction, ground truth) pairs to an IoUMetric and a confusion matrix at once."""

    def __init__(self, metric: IoUMetric, classes: Sequence[str]) -> None:
        self.metric, self.classes = metric, tuple(classes)
        self.metric.dataset_meta = dict(classes=self.classes)
        n = len(self.classes)
        self.cm = np.zeros((n, n), np.int64)
        self.predictions: dict[str, np.ndarray] = {}
        self.img_paths: dict[str, str] = {}
        self.seg_paths: dict[str, str] = {}

    def add(self, image_id: str, pred: np.ndarray, gt: np.ndarray, img_path: str,
            seg_path: str) -> None:
        if pred.shape != gt.shape:
            raise ValueError(f"{image_id}: prediction {pred.shape} and ground truth {gt.shape} "
                             "differ in size; predict at the image's original size")
        pred = pred.astype(np.uint8)
        self.cm += confusion_matrix(gt, pred, len(self.classes), self.metric.ignore_index)
        sample = dict(pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
                      gt_sem_seg=dict(data=torch.from_numpy(gt.astype(np.uint8))[None]))
        self.metric.process({}, [sample])
        self.predictions[image_id] = pred
        self.img_paths[image_id], self.seg_paths[image_id] = str(img_path), str(seg_path)

    def finish(self) -> Evaluation:
        per_image = list(self.metric.results)  # (intersect, union, pred, label) per image
        if not per_image:
            raise ValueError("nothing to evaluate: the split is empty")
        with _quiet_logger():
            computed = self.metric.compute_metrics(per_image)  # np.float32, rounded to 0.01
        metrics = {k: round(float(v), 2) for k, v in computed.items()}
        self.metric.results.clear()
        totals = [sum(r[i] for r in per_image) for i in range(4)]
        image_miou = np.array([100 * np.nanmean(
            IoUMetric.total_area_to_metrics(*r, ["mIoU"])["IoU"]) for r in per_image])
        return Evaluation(metrics=metrics, per_class=_class_table(*totals, self.classes),
                          confusion=self.cm, image_ids=list(self.predictions),
                          image_miou=image_miou, predictions=self.predictions,
                          img_paths=self.img_paths, seg_paths=self.seg_paths)


@torch.no_grad()
def evaluate(model: torch.nn.Module, num_workers: int = 0, progress: bool = True) -> Evaluation:
    """Run `model` once over its config's validation split and measure it with mmseg's IoUMetric.

    The loader, dataset and metric come from ``model.cfg.val_dataloader`` and
    ``model.cfg.val_evaluator``, so the numbers are those training logged for the same weights.
    `num_workers` overrides the config's loader processes (0 = in this process). Every
    prediction is kept (uint8, ~0.2 MB per VOC image: ~270 MB for the 1,449 of VOC val).
    """
    cfg = model.cfg
    init_default_scope(cfg.get("default_scope", "mmseg"))
    loader_cfg = copy.deepcopy(cfg.val_dataloader)
    loader_cfg.update(num_workers=num_workers, persistent_workers=num_workers > 0)
    loader = Runner.build_dataloader(loader_cfg)
    with _quiet_logger():  # IoUMetric logs a notice that it has no prefix
        metric = METRICS.build(copy.deepcopy(cfg.get("val_evaluator", dict(type="IoUMetric"))))
    if not isinstance(metric, IoUMetric):
        raise TypeError(f"val_evaluator must be an IoUMetric, got {type(metric).__name__}")
    scorer = _Scorer(metric, loader.dataset.metainfo["classes"])
    was_training = model.training
    model.eval()
    for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not progress):
        for out in model.test_step(batch):
            scorer.add(Path(out.img_path).stem, out.pred_sem_seg.data[0].cpu().numpy(),
                       out.gt_sem_seg.data[0].cpu().numpy(), out.img_path, out.seg_map_path)
    model.train(was_training)
    return scorer.finish()


def evaluate_predictions(predictions: Mapping[str, np.ndarray], voc_root: str | Path,
                         split: str = "val", progress: bool = True) -> Evaluation:
    """Score ready-made class-id masks (e.g. from ONNX Runtime) exactly as `evaluate` does.

    `predictions` maps each image id of the split to its (H, W) mask at the image's size; the
    ground truth is read from ``voc_root/SegmentationClass``.
    """
    root = Path(voc_root)
    ids = split_ids(root, split)
    missing = [i for i in ids if i not in predictions]
    if missing:
        raise KeyError(f"no prediction for {len(missing)} of the {len(ids)} ids in {split}.txt "
                       f"(first: {missing[0]}); predict every image of the split")
    with _quiet_logger():
        scorer = _Scorer(IoUMetric(ignore_index=IGNORE_INDEX), CLASSES)
    for image_id in tqdm(ids, desc="score", unit="img", disable=not progress):
        seg_path = root / MASK_DIR / f"{image_id}.png"
        scorer.add(image_id, np.asarray(predictions[image_id]), read_mask(seg_path),
                   str(root / IMAGE_DIR / f"{image_id}.jpg"), str(seg_path))
    return scorer.finish()


def compare_miou(segmentor: torch.nn.Module,
                 onnx_paths: dict[str, str | Path]) -> dict[str, dict[str, float]]:
    """Validation mIoU of PyTorch and of each ONNX graph, side by side.

    PyTorch is measured by :func:`helpers.evaluate.evaluate` (the model config's validation
    split, as in notebook 04); every graph then runs through :func:`helpers.deploy.segment` on
    the same images and is scored by the same ``IoUMetric`` on the same ground truth.
    """
    import cv2

    from helpers import deploy

    ev = evaluate(segmentor, progress=False)
    voc_root = segmentor.cfg.val_dataloader.dataset.data_root
    results = {"PyTorch": ev.metrics}
    for name, path in onnx_paths.items():
        session = deploy.make_session(path)
        masks = {i: deploy.segment(session, cv2.imread(ev.img_paths[i], cv2.IMREAD_COLOR))
                 for i in tqdm(ev.image_ids, desc=f"{name} on val", leave=False)}
        results[name] = evaluate_predictions(masks, voc_root, progress=False).metrics
    return results
