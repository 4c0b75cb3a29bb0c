"""Pictures of segmentation data: colour masks, overlays, legends, grids, statistics, augmentations.

Introduced in notebook 01; notebooks 04 and 05 reuse `overlay` and `legend_handles`. Every
plotting function returns its matplotlib Figure (save it with `S.save(fig, name)`).

`overlay` is a plain numpy blend rather than mmseg's `SegLocalVisualizer`: the visualizer needs
torch data samples, draws void (255) pixels as darkened image and background as black paint,
while here void is shown in VOC's own cream colour and the function also serves the torch-free
ONNX Runtime demo (pass `palette=` there to avoid importing mmseg for the colours).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from helpers import voc


def _lut(palette: Sequence[Sequence[int]] | None) -> np.ndarray:
    if palette is None:
        return voc.palette_lut()
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    lut[voc.IGNORE_INDEX] = voc.VOID_COLOR
    return lut


def colorize(mask: np.ndarray, palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Class-id mask (H, W) -> RGB image (H, W, 3) in the VOC palette (255 in VOID_COLOR)."""
    return _lut(palette)[np.asarray(mask, np.uint8)]


def overlay(
    image_rgb: np.ndarray,
    mask: np.ndarray,
    opacity: float = 0.5,
    palette: Sequence[Sequence[int]] | None = None,
) -> np.ndarray:
    """Blend a class-id mask over an RGB image: `(1 - opacity) * image + opacity * colour`.

    Every pixel is blended with its class colour (background's is black, which darkens it);
    void (255) pixels are drawn in VOC's near-white VOID_COLOR. Returns uint8 RGB.
    """
    if image_rgb.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image_rgb.shape[:2]} and mask {mask.shape[:2]} differ in size")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    colours = colorize(mask, palette).astype(np.float32)
    blended = (1 - opacity) * image_rgb.astype(np.float32) + opacity * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def legend_handles(
    class_ids: Iterable[int],
    classes: Sequence[str] | None = None,
    palette: Sequence[Sequence[int]] | None = None,
) -> list[Patch]:
    """Legend patches for the given class ids only (e.g. `np.unique(mask)`); 255 -> "void"."""
    classes = voc.CLASSES if classes is None else classes
    lut = _lut(palette)
    handles = []
    for i in sorted({int(c) for c in class_ids}):
        name = "void (255)" if i == voc.IGNORE_INDEX else f"{i} {classes[i]}"
        handles.append(Patch(facecolor=lut[i] / 255, edgecolor="0.3", label=name))
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
    """Bar charts of `voc.class_statistics`: share of pixels (%) and images per class, each bar
    labelled with its value (small classes stay readable next to background)."""
    import seaborn as sns

    data = stats.reset_index()
    lut = voc.palette_lut()
    colours = [
        lut[voc.IGNORE_INDEX if name == "void" else voc.CLASSES.index(name)] / 255
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
    """Joint distribution of image width and height (one point per image) from `voc.scan_masks`."""
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
