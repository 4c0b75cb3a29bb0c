"""Every figure of the course: data (notebook 01), training curves (03), predictions and
evaluation (04). Each function returns its matplotlib Figure (save it with `S.save(fig, name)`,
which writes into ``build/images/``).

The committed figures in ``images/`` (the README's among them) change only on purpose: run the
notebooks at full size (``make run``, SMOKE unset), then copy their figures over with::

    python -m helpers.plotting --readme-figures     # publish_figures(): build/images -> images

Masks are coloured and blended by `helpers.palette` (mmseg's colours and its visualizer's blend
rule), so a figure, a saved overlay PNG and the ONNX Runtime demo draw the same pixels.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from helpers import voc
from helpers.env import FIGURE_DIR, figure_origin, repo_root
from helpers.outputs import atomic_path
from helpers.palette import IGNORE_INDEX, colorize, lut, overlay

__all__ = [
    "FigureError",
    "augmentation_preview",
    "legend_handles",
    "overlay_grid",
    "plot_class_statistics",
    "plot_confusion",
    "plot_curves",
    "plot_image_sizes",
    "prediction_grid",
    "publish_figures",
    "show_image_and_mask",
]


def legend_handles(
    class_ids: Iterable[int],
    classes: Sequence[str] | None = None,
    palette: Sequence[Sequence[int]] | None = None,
) -> list[Patch]:
    """Legend patches for the given class ids only (e.g. `np.unique(mask)`); 255 -> "void"."""
    classes = voc.CLASSES if classes is None else classes
    table = lut(palette)
    handles = []
    for i in sorted({int(c) for c in class_ids}):
        name = "void (255)" if i == IGNORE_INDEX else f"{i} {classes[i]}"
        handles.append(Patch(facecolor=table[i] / 255, edgecolor="0.3", label=name))
    return handles


def _add_legend(fig: Figure, class_ids: Iterable[int], ncol: int = 6) -> None:
    handles = legend_handles(class_ids)
    fig.legend(handles=handles, loc="lower center", ncol=min(ncol, len(handles)), frameon=False)


def show_image_and_mask(
    image: np.ndarray, mask: np.ndarray, opacity: float = 0.5, title: str | None = None
) -> Figure:
    """Image | mask in the palette | overlay, with a legend of the classes present."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    panels = [image, colorize(mask), overlay(image, mask, opacity)]
    names = ["image", "mask (class ids in the VOC palette)", f"overlay, opacity {opacity}"]
    for ax, panel, name in zip(axes, panels, names, strict=True):
        ax.imshow(panel)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    _add_legend(fig, np.unique(mask))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def overlay_grid(
    samples: Sequence[tuple[np.ndarray, np.ndarray]],
    ncols: int,
    opacity: float = 0.5,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
) -> Figure:
    """A grid of overlays (rows filled left to right) with one legend of every class shown."""
    nrows = max(1, -(-len(samples) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.8 * ncols, 1.6 * nrows + 0.8), squeeze=False)
    present: set[int] = set()
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(samples):
            image, mask = samples[k]
            ax.imshow(overlay(image, mask, opacity))
            present.update(np.unique(mask).tolist())
            if titles:
                ax.set_title(titles[k], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    _add_legend(fig, present)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))
    return fig


def plot_class_statistics(stats: Any, title: str | None = None) -> Figure:
    """Bar charts of `voc_stats.class_statistics`: share of pixels (%) and images per class,
    each bar labelled with its value (small classes stay readable next to background)."""
    import seaborn as sns

    data = stats.reset_index()
    table = lut()
    colours = [
        table[IGNORE_INDEX if name == "void" else voc.CLASSES.index(name)] / 255
        for name in data["class"]
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.5), sharey=True)
    for ax, column, label, fmt in (
        (axes[0], "pixel_share_%", "share of all pixels (%)", "%.2g"),
        (axes[1], "images", "images containing the class", "%d"),
    ):
        sns.barplot(data=data, x=column, y="class", hue="class", palette=colours, legend=False,
                    ax=ax, edgecolor="0.3")
        for bars in ax.containers:
            ax.bar_label(bars, fmt=fmt, padding=2, fontsize=8)
        ax.set_xlim(0, data[column].max() * 1.15)
        ax.set_xlabel(label)
        ax.set_ylabel("")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_image_sizes(scan: Any, title: str | None = None) -> Figure:
    """Joint distribution of image width and height (one point per image), from
    `voc_stats.scan_masks`."""
    import seaborn as sns

    grid = sns.jointplot(data=scan, x="width", y="height", alpha=0.4, height=5, marginal_ticks=True)
    if title:
        grid.figure.suptitle(title)
        grid.figure.tight_layout()
    return grid.figure


def augmentation_preview(
    dataset: Any, index: int, pipeline: Sequence[dict], n: int = 4, opacity: float = 0.5
) -> Figure:
    """Run a training pipeline (a list of mmseg transform dicts) `n` times on one sample.

    The transforms are built from mmseg's TRANSFORMS registry and chained with mmcv's
    `Compose`; `PackSegInputs` is dropped so the result stays a displayable image + mask.
    `dataset` is a `PascalVOCDataset` (see `voc.voc_dataset`) that supplies the sample's
    paths. Top row: the original and `n` augmented images; bottom row: their masks over them.
    """
    from mmcv.transforms import Compose
    from mmseg.registry import TRANSFORMS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    steps = [copy.deepcopy(t) for t in pipeline if t["type"] != "PackSegInputs"]
    compose = Compose([TRANSFORMS.build(t) for t in steps])
    info = dataset.get_data_info(index)
    fig, axes = plt.subplots(2, n + 1, figsize=(2.6 * (n + 1), 5.8), squeeze=False)
    original = voc.read_image(info["img_path"]), voc.read_mask(info["seg_map_path"])
    present: set[int] = set()
    for k in range(n + 1):
        if k == 0:
            (image, mask), title = original, "original"
        else:
            out = compose(copy.deepcopy(info))
            image, mask = np.ascontiguousarray(out["img"][..., ::-1]), out["gt_seg_map"]  # BGR
            title = f"draw {k}"
        axes[0, k].imshow(image)
        axes[1, k].imshow(overlay(image, mask, opacity))
        axes[0, k].set_title(f"{title}: {image.shape[1]}x{image.shape[0]}", fontsize=9)
        present.update(np.unique(mask).tolist())
        for ax in axes[:, k]:
            ax.axis("off")
    fig.suptitle(" → ".join(t["type"] for t in steps), fontsize=9)
    _add_legend(fig, present)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_curves(work_dir: str | Path) -> Figure:
    """Training loss and validation mIoU/aAcc/mAcc against iterations, from ``scalars.json``."""
    from helpers.train import read_scalars

    train_log, val_log = read_scalars(work_dir)
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 3.8))
    losses = [c for c in train_log.columns if c == "loss" or c.endswith("loss_ce")]
    train_log[losses].plot(ax=ax_loss, marker=".")
    ax_loss.set(title="training loss", xlabel="iteration", ylabel="cross-entropy")
    metrics = [c for c in ("mIoU", "aAcc", "mAcc") if c in val_log]
    if metrics:
        val_log[metrics].plot(ax=ax_val, marker="o")
    ax_val.set(title="validation", xlabel="iteration", ylabel="%", ylim=(0, 100))
    fig.tight_layout()
    return fig


def prediction_grid(rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                    titles: Sequence[str] | None = None, opacity: float = 0.5,
                    suptitle: str | None = None, cell_size: float = 3.0) -> Figure:
    """One row per image: image | ground truth | prediction, and one legend for the whole grid.

    `rows` holds (image RGB, ground-truth ids, predicted ids), both drawn with
    `helpers.palette.overlay` (void pixels 255 of the ground truth in cream); the legend lists
    the classes present in any panel (and void when the ground truth has some).
    """
    if not rows:
        raise ValueError("prediction_grid needs at least one (image, gt, pred) row")
    fig, axes = plt.subplots(len(rows), 3, figsize=(3 * cell_size, len(rows) * cell_size),
                             squeeze=False)
    present: set[int] = set()
    for i, (image, gt, pred) in enumerate(rows):
        panels = (image, overlay(image, gt, opacity), overlay(image, pred, opacity))
        for j, (ax, panel) in enumerate(zip(axes[i], panels, strict=True)):
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(("image", "ground truth", "prediction")[j])
        if titles is not None:
            axes[i, 0].set_ylabel(titles[i], fontsize="small")
        present |= {int(c) for c in np.unique(gt)} | {int(c) for c in np.unique(pred)}
    if suptitle:
        fig.suptitle(suptitle)
    fig.legend(handles=legend_handles(sorted(present)), loc="lower center",
               ncol=min(len(present), 6), frameon=False, bbox_to_anchor=(0.5, 0.0))
    legend_inches = 0.15 + 0.3 * -(-len(present) // 6)  # 0.3 in per legend row
    fig.tight_layout(rect=(0, legend_inches / fig.get_figheight(), 1, 1))
    return fig


def plot_confusion(cm: np.ndarray, classes: Sequence[str] | None = None,
                   only_present: bool = True, annot: bool | None = None) -> Figure:
    """Row-normalised confusion matrix as a seaborn heatmap (row = true class, sums to 1).

    `only_present` keeps the classes that occur in the ground truth or the predictions (the
    demo data use a few of VOC's 20); `annot` writes the fractions (default: when ≤ 12 classes).
    """
    import seaborn as sns

    classes = voc.CLASSES if classes is None else classes
    keep = np.arange(len(classes))
    if only_present:
        keep = np.flatnonzero((cm.sum(0) + cm.sum(1)) > 0)
    sub = cm[np.ix_(keep, keep)].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = sub / sub.sum(1, keepdims=True)
    names = [classes[i] for i in keep]
    annot = len(keep) <= 12 if annot is None else annot
    side = 3 + 0.5 * len(keep)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    sns.heatmap(norm, ax=ax, vmin=0, vmax=1, cmap="Blues", square=True, annot=annot,
                fmt=".2f", annot_kws={"fontsize": "x-small"}, xticklabels=names,
                yticklabels=names, cbar_kws={"label": "share of the true class's pixels"})
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (row-normalised, void ignored)")
    fig.tight_layout()
    return fig


class FigureError(ValueError):
    """The figures in the build folder cannot be published; the message says why and what to do."""


def publish_figures(src: str | Path | None = None, dest: str | Path | None = None) -> list[Path]:
    """Copy the figures of a full-size notebook run from ``build/images/`` into ``images/``.

    The one deliberate way the committed figures change: notebooks save into ``build/images/``
    only (``helpers.env.setup_notebook``). Every PNG under ``src`` must be one that ``Setup.save``
    drew outside SMOKE (it marks each PNG, ``helpers.env.figure_origin``): a figure drawn under
    SMOKE=1, or by anything else, stops the publication before a single file is copied. Files
    are replaced one by one atomically; figures in ``dest`` with no new version are kept.

    Args:
        src: the notebooks' figure folder (default ``<repo>/build/images``).
        dest: the committed figure folder (default ``<repo>/images``).

    Returns the paths written, in ``dest``.
    """
    src = Path(src) if src is not None else repo_root() / FIGURE_DIR
    dest = Path(dest) if dest is not None else repo_root() / "images"
    figures = sorted(p for p in src.rglob("*.png") if not p.name.startswith(".")) \
        if src.is_dir() else []
    if not figures:
        raise FigureError(f"no figures in {src}: run the notebooks at full size first "
                          "(make run, without SMOKE=1).")
    refused = []
    for path in figures:
        origin = figure_origin(path)
        if origin is None or origin[1]:
            why = "drawn under SMOKE=1" if origin else "not drawn by a notebook's S.save"
            refused.append(f"{path.relative_to(src)} ({why})")
    if refused:
        raise FigureError(
            f"{src} holds figures that are not a full-size notebook run's: {', '.join(refused)}. "
            "Nothing was copied. Run the notebooks again without SMOKE=1 (make run), or delete "
            "those files, then publish again.")
    written = []
    for path in figures:
        target = dest / path.relative_to(src)
        with atomic_path(target) as partial:
            shutil.copyfile(path, partial)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.plotting --readme-figures [--src DIR] [--dest DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.plotting",
        description="Publish the figures of a full-size notebook run (make run, without SMOKE=1) "
        "from build/images/ into the committed images/ folder that the README shows.")
    parser.add_argument("--readme-figures", action="store_true", required=True,
                        help="copy every figure of build/images/ into images/ (refused, with "
                        "nothing copied, when one was drawn under SMOKE=1)")
    parser.add_argument("--src", type=Path, help=f"figure folder (default: <repo>/{FIGURE_DIR})")
    parser.add_argument("--dest", type=Path, help="committed folder (default: <repo>/images)")
    args = parser.parse_args(argv)
    try:
        written = publish_figures(args.src, args.dest)
    except FigureError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    print(f"{len(written)} figures published; review them with git diff --stat before committing.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
