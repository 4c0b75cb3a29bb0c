"""INT8 static quantization of a verified fp32 graph with onnxruntime's own tools (notebook 05).

Calibration feeds real training images prepared exactly as :mod:`helpers.deploy` prepares them;
the result keeps the fp32 graph's metadata, so deployment runs it unchanged.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from helpers import deploy
from helpers.onnx.graph import ExportError
from helpers.voc import IMAGE_SUFFIXES

__all__ = ["ImageCalibrationReader", "calibration_images", "quantize_int8"]


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
