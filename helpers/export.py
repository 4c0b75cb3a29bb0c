"""ONNX export of an mmseg segmentor that is exact at any input size, and its verification.

Notebook 05 introduces this module. Why it exists: PSPNet's Pyramid Pooling Module (PPM) pools
the stride-8 feature map to 1x1, 2x2, 3x3 and 6x6 bins with ``nn.AdaptiveAvgPool2d``. The old
TorchScript exporter only handles that when the feature map is divisible by every bin count
(input sides that are multiples of 48), and torch's dynamo exporter with dynamic height/width
bakes the bins computed for the traced size into the graph, which is silently wrong at other
sizes. :class:`ExactAdaptiveAvgPool2d` computes adaptive average pooling from the runtime shape
with two small averaging matrices, so the exported graph is exact at every size by construction.

Everything written here is verified after export (``onnx.checker``, then ONNX Runtime against
PyTorch on several sizes) and only a graph that passes is moved to the requested path.

Command line::

    python -m helpers.export --config FILE --checkpoint FILE --out FILE.onnx \\
        [--size H W | --dynamic] [--deploy] [--int8 --calib DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnxruntime.quantization import CalibrationDataReader
from torch import nn

from helpers import deploy, voc

#: Sizes (height, width) checked after every dynamic export: square, landscape, portrait, odd,
#: and sides that are multiples of neither 8 nor 48.
VERIFY_SIZES: tuple[tuple[int, int], ...] = (
    (256, 256), (375, 500), (500, 375), (97, 131), (333, 257))
#: Acceptance thresholds of the verification (issue 6).
MAX_LOGIT_DIFF = 1e-4
MIN_AGREEMENT = 0.9999
#: Smallest side any export accepts, whatever the network.
ABSOLUTE_MIN_SIDE = 32


class ExportError(RuntimeError):
    """Raised when a model cannot be exported or its export fails verification."""


# --------------------------------------------------------------------------------------------
# Exact adaptive average pooling from the runtime shape
# --------------------------------------------------------------------------------------------
def adaptive_pool_matrix(n: int | torch.SymInt, bins: int, dtype: torch.dtype) -> torch.Tensor:
    """Averaging matrix ``P`` of shape (bins, n) such that ``P @ v`` adaptively pools ``v``.

    Bin ``i`` covers ``[floor(i*n/bins), ceil((i+1)*n/bins))``, PyTorch's definition. Built with
    ``torch.arange`` on the (possibly symbolic) size, so an exported graph recomputes it for
    every input shape.
    """
    i = torch.arange(bins).unsqueeze(1)
    j = torch.arange(n).unsqueeze(0)
    start = torch.div(i * n, bins, rounding_mode="floor")
    end = torch.div((i + 1) * n + bins - 1, bins, rounding_mode="floor")
    inside = ((j >= start) & (j < end)).to(dtype)
    return inside / inside.sum(dim=-1, keepdim=True)


class ExactAdaptiveAvgPool2d(nn.Module):
    """Drop-in replacement for ``nn.AdaptiveAvgPool2d`` that exports exactly at any size.

    ``y = P_h @ x @ P_w^T`` with the separable averaging matrices of
    :func:`adaptive_pool_matrix`; equal to ``F.adaptive_avg_pool2d`` up to float rounding.
    """

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        bins_h = height if self.output_size[0] is None else self.output_size[0]
        bins_w = width if self.output_size[1] is None else self.output_size[1]
        pool_h = adaptive_pool_matrix(height, bins_h, x.dtype).to(x.device)
        pool_w = adaptive_pool_matrix(width, bins_w, x.dtype).to(x.device)
        return pool_h @ x @ pool_w.transpose(0, 1)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


@contextlib.contextmanager
def exact_adaptive_pooling(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily swap every ``nn.AdaptiveAvgPool2d`` in ``model`` for the exact version.

    The original modules are put back when the block ends, even on error, so the caller's
    model is never changed permanently.
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.AdaptiveAvgPool2d):
                    setattr(parent, name, ExactAdaptiveAvgPool2d(child.output_size))
                    swapped.append((parent, name, child))
        yield model
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


# --------------------------------------------------------------------------------------------
# The graph that is exported: mmseg's whole-image inference as a plain tensor function
# --------------------------------------------------------------------------------------------
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


def homework_export_error(segmentor: nn.Module, size: tuple[int, int] = (256, 256)) -> str:
    """Export as the homework did (TorchScript exporter, ``dynamo=False``); return its error.

    Returns ``""`` when that export works (sizes whose feature map divides by every PPM bin
    count). On failure the exporter also dumps the whole TorchScript graph (tens of kB) onto the
    process's stdout from C++; it goes to a temporary file here, which also keeps a Jupyter
    kernel from blocking on that output.
    """
    graph = SegmentorGraph(segmentor).eval()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            torch.onnx.export(graph, torch.zeros(1, 3, *size), io.BytesIO(), dynamo=False)
        except Exception as err:  # the homework's failure, returned as text
            return f"{type(err).__name__}: {str(err).splitlines()[0].split(' Please')[0]}"
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
    return ""


# --------------------------------------------------------------------------------------------
# Loading a trained model, refusing a config/checkpoint pair that does not match
# --------------------------------------------------------------------------------------------
def check_checkpoint_matches(segmentor: nn.Module, checkpoint: str | Path) -> None:
    """Raise :class:`ExportError` when the checkpoint's weights do not fit the config's model.

    mmengine loads with ``strict=False`` and only logs mismatches, which would export a model
    with random layers; here every parameter name and shape must agree.
    """
    from helpers.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    state = ckpt.get("state_dict", ckpt)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = segmentor.state_dict()
    problems = [f"{k}: config {tuple(v.shape)} vs checkpoint {tuple(state[k].shape)}"
                for k, v in expected.items() if k in state and state[k].shape != v.shape]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if problems or missing or unexpected:
        lines = problems[:5] + [f"missing in checkpoint: {k}" for k in missing[:3]]
        lines += [f"not in the config's model: {k}" for k in unexpected[:3]]
        raise ExportError(
            f"checkpoint {checkpoint} does not match the config's model "
            f"({len(problems)} shape mismatches, {len(missing)} missing, {len(unexpected)} "
            "unexpected):\n  " + "\n  ".join(lines) +
            "\nExport with the config the checkpoint was trained with (notebook 02 saves it "
            "next to the checkpoints in WORK_DIR).")


def load_segmentor(config: str | Path, checkpoint: str | Path) -> nn.Module:
    """Config + checkpoint -> eval-mode model on CPU, through the course's safe loader."""
    from helpers.checkpoint import init_model

    for label, path in (("config", config), ("checkpoint", checkpoint)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{label} file not found: {path} (train in notebook 03 "
                                    "first, or pass the right path)")
    model = init_model(str(config), None, device="cpu")
    check_checkpoint_matches(model, checkpoint)
    return init_model(str(config), str(checkpoint), device="cpu").eval()


# --------------------------------------------------------------------------------------------
# Export + verification
# --------------------------------------------------------------------------------------------
@dataclass
class SizeCheck:
    """Verification of one input size: ORT against PyTorch."""

    height: int
    width: int
    max_abs_diff: float
    agreement: float
    error: str = ""  #: ONNX Runtime's error when the graph could not even run at this size

    @property
    def passed(self) -> bool:
        return (not self.error and self.max_abs_diff <= MAX_LOGIT_DIFF
                and self.agreement >= MIN_AGREEMENT)


@dataclass
class ExportReport:
    """What :func:`export_onnx` did and whether the graph passed verification."""

    path: Path
    dynamic: bool
    preprocess: bool
    postprocess: bool
    checker_ok: bool = False
    checks: list[SizeCheck] = field(default_factory=list)
    size_mb: float = 0.0
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.checker_ok and bool(self.checks) and all(c.passed for c in self.checks)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per verified size (handy for ``pandas.DataFrame``)."""
        return [dict(size=f"{c.height}x{c.width}", max_abs_logit_diff=c.max_abs_diff,
                     argmax_agreement=c.agreement, passed=c.passed, error=c.error)
                for c in self.checks]

    def __str__(self) -> str:
        kind = "dynamic batch/H/W" if self.dynamic else "static"
        head = (f"{'PASSED' if self.passed else 'FAILED'}: {self.path} ({kind}, "
                f"preprocess={self.preprocess}, postprocess={self.postprocess}, "
                f"{self.size_mb:.1f} MB)\n  onnx.checker: {'ok' if self.checker_ok else 'FAILED'}")
        lines = [f"  {c.height:>4}x{c.width:<4} max|logit diff| {c.max_abs_diff:.2e} "
                 f"(<= {MAX_LOGIT_DIFF:g})  argmax agreement {100 * c.agreement:.4f} % "
                 f"(>= {100 * MIN_AGREEMENT:g} %)  {'ok' if c.passed else 'FAIL'}"
                 if not c.error else f"  {c.height:>4}x{c.width:<4} FAIL: {c.error}"
                 for c in self.checks]
        tail = [f"  error: {self.error}"] if self.error else []
        return "\n".join([head, *lines, *tail])


def _example_inputs(graph: SegmentorGraph, batch: int, height: int, width: int,
                    seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    if graph.preprocess:
        x = torch.randint(0, 256, (batch, height, width, 3), generator=gen, dtype=torch.uint8)
    else:
        x = torch.randn(batch, 3, height, width, generator=gen)
    if graph.postprocess:
        # an output size unlike the input's, as after a test-time Resize
        return x, torch.tensor([height * 3 // 4 + 1, width * 4 // 5 + 1])
    return (x,)


def _metadata(segmentor: nn.Module, graph: SegmentorGraph, min_side: int) -> dict[str, str]:
    """Everything deployment needs, stored inside the .onnx file (read by helpers.deploy)."""
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


def verify_onnx(segmentor: nn.Module, onnx_path: str | Path, sizes: Sequence[tuple[int, int]],
                preprocess: bool = False, postprocess: bool = False,
                batch: int = 1) -> list[SizeCheck]:
    """Run the graph in ONNX Runtime and the untouched PyTorch model on the same random inputs.

    The reference uses the model's own ``nn.AdaptiveAvgPool2d``, so this also proves the
    pooling swap exact. Returns one :class:`SizeCheck` per size.
    """
    session = deploy.make_session(onnx_path)
    reference = SegmentorGraph(segmentor, preprocess, postprocess).eval()
    names = [i.name for i in session.get_inputs()]
    checks = []
    for k, (height, width) in enumerate(sizes):
        inputs = _example_inputs(reference, batch, height, width, seed=k)
        with torch.no_grad():
            expected = reference(*inputs)
        try:
            got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
        except Exception as err:  # a wrong graph may not even run; that is a failed check
            message = str(err).split("Status Message:")[-1].strip().splitlines()[0]
            checks.append(SizeCheck(height, width, float("inf"), 0.0, error=message))
            continue
        ref_logits = expected[1] if postprocess else expected
        ort_logits = got[1] if postprocess else got[0]
        ref_mask = ref_logits.argmax(1).numpy()
        ort_mask = got[0] if postprocess else ort_logits.argmax(1)
        diff = float(np.abs(ort_logits - ref_logits.numpy()).max())
        checks.append(SizeCheck(height, width, diff, float((ort_mask == ref_mask).mean())))
    return checks


def export_onnx(segmentor: nn.Module, out: str | Path, size: tuple[int, int] | None = None,
                preprocess: bool = False, postprocess: bool = False,
                verify_sizes: Sequence[tuple[int, int]] | None = None,
                opset: int = 18, exact_pooling: bool = True) -> ExportReport:
    """Export ``segmentor`` to one self-contained ``.onnx``, verify it, then move it into place.

    ``size=(H, W)`` gives a static graph for batch 1 at that size; ``size=None`` a graph with
    dynamic batch, height and width. The graph is written to a temporary file next to ``out``;
    only when ``onnx.checker`` and ORT-vs-PyTorch verification pass is it renamed to ``out``.
    A failed export keeps nothing at ``out`` from this run and raises :class:`ExportError`
    carrying the report (``err.report``). ``exact_pooling=False`` exports the model's own
    ``nn.AdaptiveAvgPool2d`` as torch does (to see the failure it causes).
    """
    out = Path(out)
    segmentor = segmentor.eval().cpu()
    min_side = min_input_side(segmentor)
    if size is not None:
        height, width = (int(s) for s in size)
        if min(height, width) < min_side:
            raise ExportError(
                f"static size {height}x{width} is too small for this network: its smallest "
                f"side is {min_side} px (output stride {output_stride(segmentor)} and the "
                f"{max(getattr(segmentor.decode_head, 'pool_scales', (1,)))}x-bin pyramid "
                f"pooling need at least one feature pixel per bin). Use --size with sides "
                f">= {min_side}.")
        sizes = [(height, width)] if verify_sizes is None else list(verify_sizes)
    else:
        height, width = 256, 320
        sizes = list(VERIFY_SIZES if verify_sizes is None else verify_sizes)
    report = ExportReport(out, size is None, preprocess, postprocess)
    graph = SegmentorGraph(segmentor, preprocess, postprocess).eval()
    example = _example_inputs(graph, 1 if size is not None else 2, height, width)
    input_names = ["image" if preprocess else "input"] + (["out_size"] if postprocess else [])
    output_names = ["mask", "logits"] if postprocess else ["logits"]
    dynamic_shapes = None
    if size is None:
        dims = torch.export.Dim
        hw = (1, 2) if preprocess else (2, 3)
        spec = {0: dims("batch", max=256), hw[0]: dims("height", min=min_side, max=8192),
                hw[1]: dims("width", min=min_side, max=8192)}
        dynamic_shapes = (spec, None) if postprocess else (spec,)

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx.partial", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        swap = exact_adaptive_pooling(segmentor) if exact_pooling else contextlib.nullcontext()
        with torch.no_grad(), swap:
            torch.onnx.export(graph, example, str(tmp), dynamo=True, external_data=False,
                              input_names=input_names, output_names=output_names,
                              dynamic_shapes=dynamic_shapes, opset_version=opset,
                              verbose=False)
        model = onnx.load(str(tmp))
        onnx.helper.set_model_props(model, _metadata(segmentor, graph, min_side))
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        report.checker_ok = True
        report.checks = verify_onnx(segmentor, tmp, sizes, preprocess, postprocess)
        report.size_mb = tmp.stat().st_size / 2**20
    except Exception as err:  # reported below; the graph never reaches `out`
        report.error = f"{type(err).__name__}: {err}"
    if not report.passed:
        tmp.unlink(missing_ok=True)
        exc = ExportError(f"export failed verification, nothing written to {out}\n{report}")
        exc.report = report  # type: ignore[attr-defined]
        raise exc
    os.replace(tmp, out)
    return report


# --------------------------------------------------------------------------------------------
# INT8 static quantization with onnxruntime's tools
# --------------------------------------------------------------------------------------------
def calibration_images(folder: str | Path, limit: int = 16) -> list[Path]:
    """The first ``limit`` .jpg/.png images of ``folder``, sorted (clear error when none)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"calibration folder not found: {folder} (pass a folder of "
                                "training images, e.g. VOC_ROOT/JPEGImages)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not files:
        raise ExportError(f"no .jpg/.png images in calibration folder {folder}")
    return files[:limit]


class ImageCalibrationReader(CalibrationDataReader):
    """onnxruntime ``CalibrationDataReader`` feeding real images prepared as deploy does."""

    def __init__(self, onnx_path: str | Path, images: Sequence[str | Path]) -> None:
        import cv2

        session = deploy.make_session(onnx_path)
        self.feeds = []
        for path in images:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ExportError(f"calibration image {path} could not be read")
            self.feeds.append(deploy.prepare_feed(session, image))
        self._it = iter(self.feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.feeds)


def quantize_int8(fp32_path: str | Path, out: str | Path, images: Sequence[str | Path],
                  method: str = "MinMax", per_channel: bool = True,
                  op_types: Sequence[str] = ("Conv",), quant_format: str = "QDQ") -> Path:
    """Static INT8 (QDQ) quantization of a verified fp32 graph, calibrated on ``images``.

    Follows onnxruntime's recipe: ``quant_pre_process`` (shape inference + ORT graph
    optimisation), then ``quantize_static`` with per-channel weights, signed 8-bit weights and
    unsigned activations (``reduce_range`` off: VNNI/AMX CPUs do not need it).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepped = Path(tmp) / "prepped.onnx"
            quant_pre_process(str(fp32_path), str(prepped), skip_symbolic_shape=False)
            quantize_static(str(prepped), str(partial), ImageCalibrationReader(fp32_path, images),
                            quant_format=getattr(QuantFormat, quant_format),
                            per_channel=per_channel, reduce_range=False,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(op_types),
                            calibrate_method=getattr(CalibrationMethod, method),
                            extra_options={"ActivationSymmetric": False,
                                           "WeightSymmetric": True})
        model = onnx.load(str(partial))
        src = onnx.load(str(fp32_path), load_external_data=False).metadata_props
        props = {p.key: p.value for p in src} | {"quantization": f"int8 {quant_format} {method}"}
        onnx.helper.set_model_props(model, props)
        onnx.save(model, str(partial))
        onnx.checker.check_model(str(partial))
    except BaseException:
        partial.unlink(missing_ok=True)  # never leave a half-written model behind
        raise
    os.replace(partial, out)
    return out


# --------------------------------------------------------------------------------------------
# mIoU of PyTorch, ORT fp32 and ORT INT8 on the same split
# --------------------------------------------------------------------------------------------
def compare_miou(segmentor: nn.Module,
                 onnx_paths: dict[str, str | Path]) -> dict[str, dict[str, float]]:
    """Validation mIoU of PyTorch and of each ONNX graph, side by side.

    PyTorch is measured by :func:`helpers.evaluate.evaluate` (the model config's validation
    split, as in notebook 04); every graph then runs through :func:`helpers.deploy.segment` on
    the same images and is scored by the same ``IoUMetric`` on the same ground truth.
    """
    import cv2
    from tqdm.auto import tqdm

    from helpers.evaluate import evaluate, evaluate_predictions

    ev = evaluate(segmentor, progress=False)
    voc_root = segmentor.cfg.val_dataloader.dataset.data_root
    results = {"PyTorch": ev.metrics}
    for name, path in onnx_paths.items():
        session = deploy.make_session(path)
        masks = {i: deploy.segment(session, cv2.imread(ev.img_paths[i], cv2.IMREAD_COLOR))
                 for i in tqdm(ev.image_ids, desc=f"{name} on val", leave=False)}
        results[name] = evaluate_predictions(masks, voc_root, progress=False).metrics
    return results


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.export``: export, verify, print the report; 1 when it fails."""
    parser = argparse.ArgumentParser(prog="python -m helpers.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="config file the model was trained with")
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pth)")
    parser.add_argument("--out", required=True, type=Path, help="output FILE.onnx")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="static size")
    shape.add_argument("--dynamic", action="store_true", help="dynamic batch/height/width")
    parser.add_argument("--deploy", action="store_true",
                        help="put preprocessing (BGR uint8 in) and postprocessing (mask out) "
                             "in the graph")
    parser.add_argument("--int8", action="store_true", help="also write FILE.int8.onnx")
    parser.add_argument("--calib", type=Path, help="folder of training images for --int8")
    parser.add_argument("--calib-count", type=int, default=16)
    args = parser.parse_args(argv)
    if args.int8 and args.calib is None:
        parser.error("--int8 needs --calib DIR (a folder of training images)")
    if args.size is None and not args.dynamic:
        args.size = [512, 512]
    try:
        segmentor = load_segmentor(args.config, args.checkpoint)
        report = export_onnx(segmentor, args.out, size=None if args.dynamic else args.size,
                             preprocess=args.deploy, postprocess=args.deploy)
        print(report)
        if args.int8:
            int8 = quantize_int8(args.out, args.out.with_suffix(".int8.onnx"),
                                 calibration_images(args.calib, args.calib_count))
            print(f"INT8: {int8} ({int8.stat().st_size / 2**20:.1f} MB)")
    except (ExportError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

