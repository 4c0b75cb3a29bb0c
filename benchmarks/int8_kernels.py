"""Which ONNX Runtime kernel a quantized convolution reaches, and how fast each one is here.

ONNX Runtime turns ``DequantizeLinear -> Conv -> QuantizeLinear`` into ``QLinearConv``, and
``QLinearConv`` picks its kernel from the weights' zero points:

* every weight zero point 0 (symmetric weights, what ``quantize_static`` writes by default):
  MLAS's "ConvSym" kernels, written for AVX2 / AVX-VNNI / AVX-512 VNNI. There is no AMX version,
  so on an Intel CPU with AMX such a graph never reaches the tile units.
* any other zero point (one value shared by all channels): im2col and MLAS's quantized GEMM,
  whose u8 x s8 kernel uses AMX where the CPU has it (VNNI otherwise).

Per-channel symmetric int8 weights lie in [-127, 127], so they can be stored as ``q - 1`` with
zero point -1 without losing anything: ``s * ((q - 1) - (-1)) = s * q``. That moves a
convolution onto the GEMM path, with the same numbers. This script times one PSPNet-sized
convolution (3x3, 1024 -> 512 channels on a 64x64 map, as in the decode head) and one 1x1 (2048 ->
512) through each path, u8 and s8 activations, so a machine shows which one its matrix units want.
It needs only numpy, onnx and onnxruntime:

    python benchmarks/int8_kernels.py [--threads 2] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

#: (name, input channels, output channels, kernel side) at a 64 x 64 feature map (512^2 input)
LAYERS = (("3x3 1024->512", 1024, 512, 3), ("1x1 2048->512", 2048, 512, 1))
#: (label, signed activations, weight zero point)
VARIANTS = (("u8 act, weight zp 0 (ConvSym)", False, 0),
            ("u8 act, weight zp -1 (QGEMM)", False, -1),
            ("s8 act, weight zp 0", True, 0),
            ("s8 act, weight zp -1", True, -1))


def conv_graph(path: Path, cin: int, cout: int, k: int, signed: bool, weight_zp: int,
               side: int = 64) -> Path:
    """float in/out: Q -> DQ -> Conv(DQ(w), bias) -> Q -> DQ, per-channel int8 weights."""
    rng = np.random.default_rng(0)
    q = rng.integers(-127, 128, (cout, cin, k, k)).astype(np.int8)  # symmetric range
    stored = (q.astype(np.int16) + weight_zp).astype(np.int8)       # exact for zp in {0, -1}
    act_zero = np.array(0, np.int8) if signed else np.array(128, np.uint8)
    inits = [numpy_helper.from_array(stored, "w"),
             numpy_helper.from_array(np.full(cout, 1e-3, np.float32), "ws"),
             numpy_helper.from_array(np.full(cout, weight_zp, np.int8), "wz"),
             numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), "b"),
             numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
             numpy_helper.from_array(act_zero, "xz"),
             numpy_helper.from_array(np.array(0.05 * (cin * k * k) ** 0.5, np.float32), "ys"),
             numpy_helper.from_array(act_zero.copy(), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd", "b"], ["c"], pads=[k // 2] * 4),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, side, side])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, side, side])
    graph = helper.make_graph(nodes, "conv", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def measure(threads: int, runs: int) -> dict[str, dict]:
    """{layer: {variant: {"ms": median, "gops": median throughput, "same_as_zp0": bool}}}."""
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for layer, cin, cout, k in LAYERS:
            x = np.random.default_rng(1).standard_normal((1, cin, 64, 64)).astype(np.float32)
            ops = 2.0 * 64 * 64 * cin * cout * k * k / 1e9
            out[layer] = {}
            reference: dict[bool, np.ndarray] = {}
            for label, signed, zp in VARIANTS:
                path = conv_graph(Path(tmp) / "conv.onnx", cin, cout, k, signed, zp)
                sess = session(path, threads)
                y = sess.run(None, {"x": x})[0]
                reference.setdefault(signed, y)
                times = []
                for _ in range(runs + 1):
                    start = time.perf_counter()
                    sess.run(None, {"x": x})
                    times.append(time.perf_counter() - start)
                median = statistics.median(times[1:])
                out[layer][label] = {"ms": 1e3 * median, "gops": ops / median,
                                     "same_as_zp0": bool(np.array_equal(y, reference[signed]))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    result = measure(args.threads, args.runs)
    for layer, variants in result.items():
        for label, r in variants.items():
            print(f"{layer:14s} {label:32s} {r['ms']:8.1f} ms {r['gops']:7.0f} GOP/s "
                  f"{'same output' if r['same_as_zp0'] else 'DIFFERENT output'}")
    print("RESULT " + json.dumps({"int8_kernels": result, "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    main()
