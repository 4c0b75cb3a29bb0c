"""The graph that is exported: mmseg's whole-image inference as a plain tensor function (nb 05).

:class:`SegmentorGraph` wraps an mmseg ``EncoderDecoder`` and can carry mmseg's pre- and
post-processing inside the graph; :func:`graph_metadata` is what deployment needs to know about
it (classes, palette, mean/std, test-time Resize), stored in the ``.onnx`` file for
:mod:`helpers.deploy`.

A leaf module: it imports only libraries at its top (the grader gives :class:`SegmentorGraph` to
notebook 05's answers inside its sandbox, where the course's package does not exist).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import torch
from torch import nn

__all__ = [
    "shifted_model",
    "halved_model",
    "conv_graph",
    "deployment_size",
    "ABSOLUTE_MIN_SIDE",
    "ExportError",
    "SegmentorGraph",
    "check_exportable",
    "graph_metadata",
    "min_input_side",
    "output_stride",
]

#: Smallest side any export accepts, whatever the network.
ABSOLUTE_MIN_SIDE = 32


class ExportError(RuntimeError):
    """Raised when a model cannot be exported or its export fails verification."""


class SegmentorGraph(nn.Module):
    """Tensor-in, tensor-out view of an mmseg ``EncoderDecoder`` for export.

    ``segmentor(x)`` on a tensor returns the decode head's raw logits at 1/8 resolution without
    the data preprocessor. This wrapper runs ``segmentor.encode_decode`` instead (backbone,
    decode head, bilinear resize to the input size: mmseg's whole-image inference) and can put
    the rest of ``inference_model`` inside the graph too:

    * ``preprocess=False``: input ``float32 (N, 3, H, W)``, already RGB and normalised.
    * ``preprocess=True``: input ``uint8 (N, H, W, 3)`` in BGR order as ``cv2.imread`` gives
      it; BGR to RGB and mean/std come from ``cfg.model.data_preprocessor``.
    * ``postprocess=True``: a second input ``out_size`` (int64 ``[height, width]``, usually the
      original image size before the test-time Resize); logits are resized to it like mmseg's
      ``postprocess_result`` and the outputs are ``(mask uint8 (N, h, w), logits)``.
    """

    def __init__(self, segmentor: nn.Module, preprocess: bool = False,
                 postprocess: bool = False) -> None:
        super().__init__()
        check_exportable(segmentor)
        self.segmentor = segmentor
        self.preprocess = preprocess
        self.postprocess = postprocess
        dp = segmentor.data_preprocessor
        self.bgr_to_rgb = bool(dp.channel_conversion)
        ones, zeros = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
        self.register_buffer("mean", dp.mean.view(1, 3, 1, 1).float() if dp._enable_normalize
                             else zeros, persistent=False)
        self.register_buffer("std", dp.std.view(1, 3, 1, 1).float() if dp._enable_normalize
                             else ones, persistent=False)
        self.align_corners = bool(segmentor.decode_head.align_corners)

    def forward(self, x: torch.Tensor, out_size: torch.Tensor | None = None):
        from mmseg.models.utils import resize

        if self.preprocess:
            x = x.permute(0, 3, 1, 2)
            if self.bgr_to_rgb:
                x = x[:, [2, 1, 0]]
            x = (x.float() - self.mean) / self.std
        logits = self.segmentor.encode_decode(x, [dict(img_shape=x.shape[2:])])
        if not self.postprocess:
            return logits
        if out_size is None:
            raise ExportError("postprocess=True needs out_size = [height, width]")
        height, width = out_size.tolist()
        torch._check(height > 0)
        torch._check(width > 0)
        logits = resize(logits, size=(height, width), mode="bilinear",
                        align_corners=self.align_corners, warning=False)
        return logits.argmax(dim=1).to(torch.uint8), logits


def check_exportable(segmentor: nn.Module) -> None:
    """Refuse models whose mmseg inference the exported graph would not reproduce."""
    if not hasattr(segmentor, "encode_decode") or not hasattr(segmentor, "decode_head"):
        raise ExportError(f"{type(segmentor).__name__} is not an mmseg EncoderDecoder; "
                          "build the model with mmseg (helpers.checkpoint.init_model).")
    mode = (segmentor.test_cfg or {}).get("mode", "whole")
    if mode != "whole":
        raise ExportError(f"model.test_cfg.mode={mode!r}: only whole-image inference is "
                          "exported; set model.test_cfg=dict(mode='whole') in the config.")
    if getattr(segmentor.data_preprocessor, "test_cfg", None):
        raise ExportError("data_preprocessor.test_cfg pads test images, which the exported "
                          "graph does not do; remove it from the config.")


def output_stride(segmentor: nn.Module, probe: int = 64) -> int:
    """Input pixels per decode-head feature pixel, measured with a dry run of the backbone."""
    head = segmentor.decode_head
    with torch.no_grad():
        feats = segmentor.extract_feat(torch.zeros(1, 3, probe, probe))
    feat = head._transform_inputs(feats)
    return max(1, round(probe / feat.shape[-1]))


def min_input_side(segmentor: nn.Module) -> int:
    """Smallest image side the network can take meaningfully.

    Each of the PPM's largest bins (6x6 for PSPNet) must see at least one feature pixel: with
    output stride ``s`` the feature side is ``ceil(n / s)``, so ``n >= s * (max_bins - 1) + 1``
    (41 px for PSPNet at stride 8). Never below :data:`ABSOLUTE_MIN_SIDE`.
    """
    scales = getattr(segmentor.decode_head, "pool_scales", (1,))
    return max(ABSOLUTE_MIN_SIDE, output_stride(segmentor) * (max(scales) - 1) + 1)


def graph_metadata(graph: SegmentorGraph, min_side: int) -> dict[str, str]:
    """Everything deployment needs, stored inside the .onnx file (read by helpers.deploy)."""
    segmentor = graph.segmentor
    from helpers import voc  # here, not at the top: this module stays a leaf (see above)

    meta: dict[str, Any] = getattr(segmentor, "dataset_meta", None) or {}
    if not meta and segmentor.decode_head.num_classes == len(voc.CLASSES):
        meta = dict(classes=voc.CLASSES, palette=voc.PALETTE)  # untrained model: VOC's names
    cfg = getattr(segmentor, "cfg", None)
    resize = None
    if cfg is not None:
        for step in cfg.get("test_pipeline", []):
            if step.get("type") == "Resize":
                resize = dict(scale=list(step["scale"]), keep_ratio=bool(step.get("keep_ratio")))
    return {
        "classes": json.dumps(list(meta.get("classes", []))),
        "palette": json.dumps([list(map(int, c)) for c in meta.get("palette", [])]),
        "input_format": "nhwc_bgr_uint8" if graph.preprocess else "nchw_float_normalized",
        "mean": json.dumps(graph.mean.flatten().tolist()),
        "std": json.dumps(graph.std.flatten().tolist()),
        "bgr_to_rgb": json.dumps(graph.bgr_to_rgb),
        "postprocess": json.dumps(graph.postprocess),
        "test_resize": json.dumps(resize),
        "min_side": str(min_side),
    }


def shifted_model(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """A copy of ``model`` that disagrees with it on about half the pixels of ``x`` (a checking
    aid: notebook 05 compares a graph with it): the score of the class it predicts most is
    lowered (classifier bias) by that class's median margin."""
    with torch.no_grad():
        logits = SegmentorGraph(model).eval()(x)
    top = logits.argmax(1)
    cls = int(top.flatten().mode().values)
    best2 = logits.topk(2, dim=1).values
    margin = float((best2[:, 0] - best2[:, 1])[top == cls].median())
    other = copy.deepcopy(model).eval()
    with torch.no_grad():
        other.decode_head.conv_seg.bias[cls] -= margin
    return other


def halved_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose classifier's weights are halved: every logit changes, the
    arg-max of only some pixels."""
    other = copy.deepcopy(model).eval()
    with torch.no_grad():
        other.decode_head.conv_seg.weight.mul_(0.5)
    return other


def conv_graph(path: Any, classes: int = 5, seed: int = 0,
               input_name: str = "pixels") -> Any:
    """Write a tiny ONNX graph: a 1 x 1 convolution from 3 channels to ``classes`` logits, float
    ``N x 3 x H x W`` in, logits at the same size out. Its arg-max changes with every pixel's
    colour, so each step of a deployment (resize, channel order, mean/std, the resize of the
    logits) shows in the mask."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(classes, 3, 1, 1)).astype(np.float32)
    bias = rng.normal(scale=0.3, size=classes).astype(np.float32)
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes, "H", "W"])
    node = helper.make_node("Conv", [input_name, "w", "b"], ["logits"])
    graph = helper.make_graph([node], "conv1x1", [x], [y], [numpy_helper.from_array(weight, "w"),
                                                           numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def deployment_size(cfg: Any, image: Any) -> tuple[int, int]:
    """(width, height) at which config ``cfg``'s test-time Resize shows ``image`` (H x W x C)
    to the network."""
    import mmcv

    resize = next(step for step in cfg.test_pipeline if step["type"] == "Resize")
    height, width = image.shape[:2]
    if not resize.get("keep_ratio"):
        return tuple(int(s) for s in resize["scale"])
    return tuple(mmcv.rescale_size((width, height), tuple(resize["scale"])))
