"""INT8 static quantization of a verified fp32 graph with onnxruntime's own tools (notebook 05).

Calibration feeds real training images prepared exactly as :mod:`helpers.deploy` prepares them;
the result keeps the fp32 graph's metadata, so deployment runs it unchanged.

Which CPU kernel a quantized convolution reaches in ONNX Runtime depends on how its numbers are
stored, not only on their values. ORT fuses ``DequantizeLinear -> Conv -> QuantizeLinear`` into
``QLinearConv``, which takes MLAS's "symmetric conv" kernels when every weight zero point is 0
(written for AVX-512 VNNI / AVX-VNNI, with no AMX version) and im2col plus MLAS's quantized GEMM
otherwise (which uses Intel's AMX tiles where the CPU has them). Measured on two cores of an
Intel Xeon with AMX: a 3x3, 1024 -> 512 convolution at 64 x 64 runs at 844 GOP/s through the
symmetric kernels and 1446 GOP/s through the GEMM with signed activations; on an AMD EPYC
(Zen 5, VNNI, no AMX) the symmetric kernels are the faster ones (``benchmarks/int8_kernels.py``).
So :func:`quantize_int8` stores the same quantized model in the form the target CPU wants
(:data:`TARGETS`), and :func:`retarget_int8` converts one form into the other without changing a
single quantized value.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader

from helpers import deploy
from helpers.onnx.graph import ExportError
from helpers.voc import IMAGE_SUFFIXES

__all__ = ["TARGETS", "ImageCalibrationReader", "calibration_images", "cpu_int8_target",
           "quantize_int8", "retarget_int8"]

#: target -> (signed activations, weight zero point, what it is for)
TARGETS: dict[str, tuple[bool, int, str]] = {
    "vnni": (False, 0, "u8 activations, symmetric s8 weights: ORT's AVX-512 VNNI conv kernels"),
    "amx": (True, -1, "s8 activations, s8 weights with zero point -1: ORT's quantized GEMM, "
                      "which runs on AMX tiles"),
}

def calibration_images(folder: str | Path, limit: int = 16) -> list[Path]:
    """The first ``limit`` images of ``folder``, sorted (clear error when none)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"calibration folder not found: {folder} (pass a folder of "
                                "training images, e.g. VOC_ROOT/JPEGImages)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ExportError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in calibration folder "
                          f"{folder}")
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


def cpu_int8_target(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """``"amx"`` when this CPU has AMX int8 tiles (Intel Sapphire Rapids and later), else
    ``"vnni"`` (also right for CPUs without VNNI, whose kernels share the symmetric path)."""
    path = Path(cpuinfo)
    flags = path.read_text().split() if path.exists() else []
    return "amx" if "amx_int8" in flags else "vnni"


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def retarget_int8(model: onnx.ModelProto, target: str) -> dict[str, int]:
    """Rewrite a QDQ model in place for ``target`` (a key of :data:`TARGETS`); return counts.

    Both rewrites are exact. Activations: an unsigned tensor ``s * (q - z)`` with ``q`` in
    [0, 255] is the signed tensor ``s * ((q - 128) - (z - 128))``, so only the zero points of the
    activation ``QuantizeLinear``/``DequantizeLinear`` pairs change (and back). Weights: symmetric
    int8 weights lie in [-127, 127], so ``s * q`` is stored as ``s * ((q - 1) - (-1))``. A
    weight that does not fit (a value of -128, or zero points that are not all equal) is kept.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown INT8 target {target!r}; choose one of {sorted(TARGETS)}")
    signed, weight_zp, _ = TARGETS[target]
    inits = _initializers(model)
    counts = {"activation zero points": 0, "weights re-stored": 0, "weights kept": 0}
    weights: list[tuple[onnx.TensorProto, onnx.TensorProto]] = []
    activation_zps: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        data, zp = inits.get(node.input[0]), inits.get(node.input[2])
        if zp is None:
            continue
        if data is not None and data.data_type == onnx.TensorProto.INT8 and len(data.dims) >= 2:
            weights.append((data, zp))
        elif data is None:
            activation_zps.add(zp.name)
    for name in activation_zps:
        zp = numpy_helper.to_array(inits[name]).astype(np.int16)
        if signed and inits[name].data_type == onnx.TensorProto.UINT8:
            new = (zp - 128).astype(np.int8)
        elif not signed and inits[name].data_type == onnx.TensorProto.INT8:
            new = (zp + 128).astype(np.uint8)
        else:
            continue
        inits[name].CopyFrom(numpy_helper.from_array(new, name))
        counts["activation zero points"] += 1
    for data, zp in weights:
        q, z = numpy_helper.to_array(data).astype(np.int16), numpy_helper.to_array(zp)
        if len(np.unique(z)) != 1:
            counts["weights kept"] += 1
            continue
        values = q - int(z.flat[0]) + weight_zp  # the stored values for the new zero point
        if int(z.flat[0]) == weight_zp:
            continue
        if values.min() < -128 or values.max() > 127:
            counts["weights kept"] += 1
            continue
        data.CopyFrom(numpy_helper.from_array(values.astype(np.int8), data.name))
        zp.CopyFrom(numpy_helper.from_array(np.full_like(z, weight_zp), zp.name))
        counts["weights re-stored"] += 1
    del model.graph.value_info[:]  # element types of the quantized tensors may have changed
    return counts


def quantize_int8(fp32_path: str | Path, out: str | Path, images: Sequence[str | Path],
                  method: str = "MinMax", per_channel: bool = True,
                  op_types: Sequence[str] = ("Conv",), quant_format: str = "QDQ",
                  target: str = "auto") -> Path:
    """Static INT8 (QDQ) quantization of a verified fp32 graph, calibrated on ``images``.

    Follows onnxruntime's recipe: ``quant_pre_process`` (shape inference + ORT graph
    optimisation), then ``quantize_static`` with per-channel symmetric s8 weights and asymmetric
    activations (``reduce_range`` off: VNNI and AMX CPUs do not need it), then
    :func:`retarget_int8` for ``target`` (``"auto"``: :func:`cpu_int8_target` of this machine).
    The recipe is recorded in the graph's metadata (``quantization``).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = cpu_int8_target() if target == "auto" else target
    if target not in TARGETS:
        raise ValueError(f"unknown INT8 target {target!r}; choose auto or one of "
                         f"{sorted(TARGETS)}")
    out = Path(out)
    if out.resolve() == Path(fp32_path).resolve():
        raise ExportError(f"{out}: the INT8 model would replace its own fp32 input; write it to "
                          "another file, e.g. FILE.int8.onnx")
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
        retarget_int8(model, target)
        src = onnx.load(str(fp32_path), load_external_data=False).metadata_props
        recipe = (f"int8 {quant_format} {method}, {'+'.join(op_types)}, target {target}: "
                  f"{TARGETS[target][2]}")
        onnx.helper.set_model_props(model, {p.key: p.value for p in src} |
                                    {"quantization": recipe})
        onnx.save(model, str(partial))
        onnx.checker.check_model(str(partial))
    except BaseException:
        partial.unlink(missing_ok=True)  # never leave a half-written model behind
        raise
    os.replace(partial, out)
    return out
