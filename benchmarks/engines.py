"""The inference paths the benchmarks compare, each as a callable or an ORT-like session.

* PyTorch eager fp32, and eager bf16: ``torch.autocast(bfloat16)`` with the model and its input
  in channels_last, so oneDNN runs the convolutions on the CPU's bf16 dot-product instructions
  (AVX-512 BF16, or AMX on Intel CPUs that have it).
* ONNX Runtime fp32 and INT8 (``helpers.deploy.make_session``).
* OpenVINO fp32, bf16 (``INFERENCE_PRECISION_HINT``) and INT8 (it reads the same QDQ ``.onnx``,
  in its symmetric-weight form, and runs its quantized parts in int8). :class:`OpenVINOSession`
  has the three methods of an ``onnxruntime.InferenceSession`` that ``helpers.deploy.segment``
  calls, so OpenVINO's masks go through exactly the same pre- and post-processing and the same
  ``IoUMetric`` as ORT's.

OpenVINO is optional (``requirements-bench.txt``, installed by ``make bench``); without it the
OpenVINO paths are left out of the tables.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx

from helpers import deploy

#: path name -> (engine, precision), in the order tables and plots show them
PATHS = {
    "eager_fp32": ("PyTorch eager", "fp32"),
    "eager_bf16": ("PyTorch eager, autocast bf16 + channels_last", "bf16"),
    "ort_fp32": ("ONNX Runtime", "fp32"),
    "ort_int8": ("ONNX Runtime, static QDQ INT8", "int8"),
    "openvino_fp32": ("OpenVINO", "fp32"),
    "openvino_bf16": ("OpenVINO, inference precision bf16", "bf16"),
    "openvino_int8": ("OpenVINO on the QDQ INT8 .onnx", "int8"),
}


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def openvino_config(precision: str = "f32", threads: int | None = None) -> dict[str, str]:
    """Latency mode, one stream, one thread per physical core; ``precision`` f32 or bf16."""
    return {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
            "INFERENCE_NUM_THREADS": str(threads or deploy.physical_cores()),
            "INFERENCE_PRECISION_HINT": precision}


def openvino_int8_file(int8: Path) -> Path:
    """The INT8 graph in the form OpenVINO runs fastest: symmetric weights (the ``vnni`` form).

    ``helpers.onnx.quantize_int8`` writes the ``amx`` form on CPUs with AMX (ONNX Runtime's
    GEMM path); OpenVINO runs zero point -1 weights about 3x slower than symmetric ones
    (bench_limits.py's int8 convolutions), so it gets the same model re-stored in the ``vnni``
    form, which ``retarget_int8`` makes without changing any quantized value.
    """
    from helpers.onnx.quantize import retarget_int8

    model = onnx.load(str(int8))
    counts = retarget_int8(model, "vnni")
    if not counts["activation zero points"] and not counts["weights re-stored"]:
        return int8  # already in that form
    out = int8.with_name(int8.name.replace(".onnx", ".vnni.onnx"))
    onnx.save(model, str(out))
    return out


class OpenVINOSession:
    """An OpenVINO compiled model behind the part of ``ort.InferenceSession`` deploy uses.

    ``get_modelmeta().custom_metadata_map`` (the course metadata written by the export),
    ``get_inputs()`` (names and shapes, None where dynamic) and ``run(None, feed)``.
    """

    def __init__(self, path: str | Path, precision: str = "f32",
                 threads: int | None = None) -> None:
        import openvino as ov

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        core = ov.Core()
        model = core.read_model(str(path))
        self.compiled = core.compile_model(model, "CPU", openvino_config(precision, threads))
        self.request = self.compiled.create_infer_request()
        props = onnx.load(str(path), load_external_data=False).metadata_props
        self._meta = SimpleNamespace(custom_metadata_map={p.key: p.value for p in props})
        self._inputs = [SimpleNamespace(
            name=port.get_any_name(),
            shape=[d.get_length() if d.is_static else None for d in port.get_partial_shape()])
            for port in model.inputs]

    def get_modelmeta(self) -> SimpleNamespace:
        return self._meta

    def get_inputs(self) -> list[SimpleNamespace]:
        return self._inputs

    def run(self, output_names: None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs in graph order, copied (OpenVINO reuses its output buffers on the next run)."""
        result = self.request.infer(feed)
        return [np.array(result[port], copy=True) for port in self.compiled.outputs]


def channels_last_copy(model):
    """A copy of ``model`` with its weights in channels_last (the original is left as it is)."""
    import torch

    return copy.deepcopy(model).to(memory_format=torch.channels_last)


@contextlib.contextmanager
def bf16_autocast() -> Iterator[None]:
    """Inference mode and ``torch.autocast("cpu", bfloat16)``: matmuls and convolutions in bf16.

    Use it with :func:`channels_last_copy` of the model and a channels_last input: oneDNN's bf16
    convolutions want the channels innermost.
    """
    import torch

    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        yield
