"""ONNX export of an mmseg segmentor, exact at any input size, verified, and INT8 (notebook 05).

- :mod:`~helpers.onnx.pooling`: adaptive average pooling computed from the runtime shape.
- :mod:`~helpers.onnx.graph`: the exported tensor function (mmseg's whole-image inference, with
  optional pre/post-processing) and the metadata deployment reads.
- :mod:`~helpers.onnx.export`: export, verification against PyTorch, the report, the
  old exporter's dump hidden, and the command line ``python -m helpers.onnx``.
- :mod:`~helpers.onnx.quantize`: INT8 static quantization with onnxruntime's tools.

Running a graph without torch is :mod:`helpers.deploy`. Everything below is importable from
``helpers.onnx``.
"""

from helpers.onnx.export import (
    VERIFY_SIZES,
    ExportReport,
    SizeCheck,
    export_onnx,
    torchscript_dump_hidden,
    verify_onnx,
)
from helpers.onnx.graph import (
    ExportError,
    SegmentorGraph,
    check_exportable,
    graph_metadata,
    min_input_side,
    output_stride,
)
from helpers.onnx.pooling import (
    ExactAdaptiveAvgPool2d,
    adaptive_pool_matrix,
    exact_adaptive_pooling,
)
from helpers.onnx.quantize import ImageCalibrationReader, calibration_images, quantize_int8

__all__ = [
    "VERIFY_SIZES", "ExactAdaptiveAvgPool2d", "ExportError", "ExportReport",
    "ImageCalibrationReader", "SegmentorGraph", "SizeCheck", "adaptive_pool_matrix",
    "calibration_images", "check_exportable", "exact_adaptive_pooling", "export_onnx",
    "graph_metadata", "min_input_side", "output_stride", "quantize_int8",
    "torchscript_dump_hidden", "verify_onnx",
]
