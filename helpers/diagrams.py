"""Diagrams of the model, drawn from its config (notebook 02).

`pspnet_diagram(cfg.model)` draws PSPNet as a config describes it: the dilated ResNet and its
output stride, the pyramid pooling module with its bins, the auxiliary FCN head with its loss
weight, and the cross-entropy loss with its ignored label. Every number in the figure is read
from the config (or from mmseg's defaults), so the figure changes when the config does.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

__all__ = ["pspnet_facts", "pspnet_diagram"]

_COLORS = {"data": "#e8e8e8", "backbone": "#cfe2f3", "ppm": "#fce5cd", "head": "#d9ead3",
           "aux": "#ead1dc", "loss": "#fff2cc"}


def _default(cls_name: str, arg: str) -> Any:
    """The default of `arg` in the constructor of mmseg's model class `cls_name`."""
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    for klass in MODELS.get(cls_name).__mro__:  # PSPHead(**kwargs) -> BaseDecodeHead(...)
        params = inspect.signature(klass.__init__).parameters
        if arg in params:
            return params[arg].default
    raise KeyError(f"{cls_name} takes no argument {arg!r}")


def _loss(head: Mapping) -> tuple[str, float]:
    loss = head.get("loss_decode", {})
    loss = loss[0] if isinstance(loss, list | tuple) else loss
    return loss.get("type", "CrossEntropyLoss"), float(loss.get("loss_weight", 1.0))


def pspnet_facts(model: Mapping) -> dict[str, Any]:
    """What the diagram shows, read from a PSPNet model config (``cfg.model``)."""
    backbone, head = model["backbone"], model["decode_head"]
    aux = model.get("auxiliary_head")
    depth = backbone.get("depth", 50)
    width = backbone.get("base_channels", 64) * (4 if depth >= 50 else 1)  # bottleneck x4
    strides = backbone.get("strides", (1, 2, 2, 2))
    dilations = backbone.get("dilations", (1, 1, 1, 1))
    scale, stages = 4, []  # the stem (stride-2 conv + max pool) divides by 4
    for i, (stride, dilation) in enumerate(zip(strides, dilations, strict=True)):
        scale *= stride
        stages.append(dict(channels=width * 2**i, scale=scale, dilation=dilation))
    ignore = head.get("ignore_index", _default(head["type"], "ignore_index"))
    facts = dict(depth=depth, stages=stages, output_stride=scale,
                 pool_scales=tuple(head.get("pool_scales", ())), head_channels=head["channels"],
                 num_classes=head["num_classes"], head_in=head.get("in_index", -1),
                 loss=_loss(head), ignore_index=ignore, aux=None)
    if aux:
        facts["aux"] = dict(type=aux["type"], in_index=aux.get("in_index", -1),
                            channels=aux["channels"], loss=_loss(aux))
    return facts


def _box(ax, x: float, y: float, w: float, h: float, text: str, kind: str,
         size: float = 8.5) -> tuple[float, float, float, float]:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=_COLORS[kind], ec="#555555", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)
    return x, y, w, h


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], text: str = "") -> None:
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="-|>", color="#444444", lw=1.2,
                                shrinkA=0, shrinkB=0))
    if text:
        ax.text((start[0] + end[0]) / 2 + 0.05, (start[1] + end[1]) / 2, text, fontsize=7.5,
                ha="left", va="center", color="#444444")


def _bins(ax, x: float, y: float, side: float, scales: tuple[int, ...]) -> None:
    """One small square per pyramid level, divided into its b x b pooling bins."""
    gap = (1.5 - side * len(scales)) / max(len(scales) - 1, 1)
    for k, b in enumerate(scales):
        x0 = x + k * (side + gap)
        ax.add_patch(Rectangle((x0, y), side, side, fc="white", ec="#b45f06", lw=1))
        for i in range(1, b):
            ax.plot([x0 + side * i / b] * 2, [y, y + side], color="#b45f06", lw=0.6)
            ax.plot([x0, x0 + side], [y + side * i / b] * 2, color="#b45f06", lw=0.6)
        ax.text(x0 + side / 2, y - 0.12, f"{b}×{b}", ha="center", va="top", fontsize=7.5)


def pspnet_diagram(model: Mapping, title: str | None = None) -> Figure:
    """PSPNet as `model` (a config's ``model`` dict) builds it: backbone, PPM, heads, losses."""
    f = pspnet_facts(model)
    fig, ax = plt.subplots(figsize=(13, 5.6))
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 5.6)
    ax.axis("off")
    _box(ax, 0.1, 3.3, 1.0, 1.0, "image\nH × W × 3", "data")
    x, boxes = 1.35, []
    for i, stage in enumerate([dict(channels=None, scale=4, dilation=1)] + f["stages"]):
        label = ("stem\n3 convs + pool" if i == 0 else
                 f"stage {i}\n{stage['channels']} ch" +
                 (f"\ndilation {stage['dilation']}" if stage["dilation"] > 1 else ""))
        boxes.append(_box(ax, x, 3.3, 1.0, 1.0, f"{label}\n1/{stage['scale']}", "backbone", 8))
        x += 1.2
    for (x0, y0, w0, h0), (x1, *_rest) in zip(boxes[:-1], boxes[1:], strict=True):
        _arrow(ax, (x0 + w0, y0 + h0 / 2), (x1, y0 + h0 / 2))
    _arrow(ax, (1.1, 3.8), (1.35, 3.8))
    ax.text(1.35 + 2.9, 4.55, f"dilated ResNet-{f['depth']}: output stride "
            f"{f['output_stride']} (1/{f['output_stride']} of the image)", ha="center",
            fontsize=9, color="#0b5394")
    last = boxes[-1]
    ppm_x = last[0] + last[2] + 0.3
    _box(ax, ppm_x, 2.75, 1.9, 2.1, "", "ppm")
    ax.text(ppm_x + 0.95, 4.6, "pyramid pooling", ha="center", fontsize=8.5)
    _bins(ax, ppm_x + 0.2, 3.9, 0.3, f["pool_scales"])
    ax.text(ppm_x + 0.95, 3.15, "average-pool to each grid,\n1×1 conv, upsample,\n"
            "concatenate with the input", ha="center", va="center", fontsize=7.5)
    _arrow(ax, (last[0] + last[2], 3.8), (ppm_x, 3.8))
    head_x = ppm_x + 2.2
    _box(ax, head_x, 3.3, 1.35, 1.0, f"3×3 conv {f['head_channels']}\n1×1 conv_seg\n"
         f"→ {f['num_classes']} maps", "head", 8)
    _arrow(ax, (ppm_x + 1.9, 3.8), (head_x, 3.8))
    up_x = head_x + 1.65
    _box(ax, up_x, 3.3, 1.15, 1.0, f"upsample ×{f['output_stride']}\nH × W × "
         f"{f['num_classes']}", "data", 8)
    _arrow(ax, (head_x + 1.35, 3.8), (up_x, 3.8))
    loss_name, weight = f["loss"]
    _box(ax, up_x - 0.1, 1.75, 1.35, 1.0, f"{loss_name}\nweight {weight:g}\nignore label "
         f"{f['ignore_index']}", "loss", 7.5)
    _arrow(ax, (up_x + 0.57, 3.3), (up_x + 0.57, 2.75))
    if f["aux"]:
        aux, src = f["aux"], boxes[1:][f["aux"]["in_index"]]
        ax_x = src[0] - 0.15
        _box(ax, ax_x, 0.35, 1.3, 1.0, f"auxiliary {aux['type']}\n3×3 conv {aux['channels']}"
             f"\n→ {f['num_classes']} maps", "aux", 7.5)
        _arrow(ax, (src[0] + src[2] / 2, src[1]), (src[0] + src[2] / 2, 1.35),
               "training only")
        aux_name, aux_weight = aux["loss"]
        _box(ax, ax_x + 1.6, 0.35, 1.6, 1.0, f"{aux_name}\nweight {aux_weight:g}\n"
             f"(same ignore label)", "loss", 7.5)
        _arrow(ax, (ax_x + 1.3, 0.85), (ax_x + 1.6, 0.85))
    ax.text(0.1, 0.15, f"Pixels labelled {f['ignore_index']} (VOC's object borders) count in "
            "neither loss nor metric. Total loss = decode loss + weighted auxiliary loss.",
            fontsize=8, color="#444444")
    ax.set_title(title or "PSPNet as the config builds it", fontsize=11)
    fig.tight_layout()
    return fig
