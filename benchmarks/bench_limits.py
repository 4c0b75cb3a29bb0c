"""Attainable matrix throughput of this machine per precision (fp32, bf16, int8), measured.

A network can only be as fast as the matrix multiplications its convolutions turn into, so the
fair ceiling for "how well does engine X use this CPU" is the best large matrix product any
engine manages here, in the same run, at the same precision, not a peak computed from a
datasheet. Two shapes, each with constant (pre-packed) weights and streamed activations:

* an (n, n) by (n, n) GEMM;
* one 3x3 convolution, 1024 -> 512 channels on a 64x64 map: the decode head's kind of layer at a
  512x512 input, which some engines run with direct-convolution kernels faster than any GEMM.

Engines per precision:

* fp32: ONNX Runtime ``MatMul`` / ``Conv`` (MLAS), torch ``matmul`` / ``conv2d`` (MKL, oneDNN),
  OpenVINO.
* bf16: torch on bf16 tensors (channels_last for the convolution), OpenVINO with
  ``INFERENCE_PRECISION_HINT=bf16``. ONNX Runtime has no bf16 kernels on x86 CPUs (its bf16
  fast-math option is for Arm only).
* int8: ONNX Runtime ``MatMulInteger`` (u8 x s8 -> s32), ``QLinearMatMul`` (u8 x s8 -> u8), and
  the QDQ forms that ``quantize_static`` writes (``DequantizeLinear -> MatMul/Conv ->
  QuantizeLinear``, fused by ORT into ``QLinearMatMul``/``QLinearConv``; OpenVINO runs them in
  int8) with u8 and s8 activations and both weight zero points of ``helpers.onnx.quantize``;
  torch ``_int_mm`` (s8 x s8 -> s32).

Each engine runs back to back (warm), twice round all engines of a precision. The limit of a
precision is the best single run of any of its engines (the attainable ceiling); each engine is
reported by its median as a fraction of that limit, so every fraction here is <= 1. An operation
is a multiply or an add: one GEMM is 2 n^3 operations, one convolution 2 * 64^2 * 1024 * 512 * 9.

    .venv/bin/python benchmarks/bench_limits.py [--quick] [--n 3072] [--runs 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from common import emit, summarize, time_runs
from engines import openvino_config
from int8_kernels import VARIANTS, conv_graph
from onnx import TensorProto, helper, numpy_helper

from helpers import deploy

PRECISIONS = ("fp32", "bf16", "int8")
THREADS = 0  #: threads per engine; 0 = one per physical core (--threads)
#: the convolution timed beside the GEMMs: PSPNet's decode-head kind of layer at 512x512 input
CONV_IN, CONV_OUT, CONV_SIDE = 1024, 512, 64


# --------------------------------------------------------------------------------------------
# one-node ONNX graphs: y = x @ W with W a constant initializer
# --------------------------------------------------------------------------------------------
def _save(nodes: list, inputs: list, output, inits: list, path: Path) -> Path:
    graph = helper.make_graph(nodes, "gemm", inputs, [output], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def fp32_graph(n: int, path: Path) -> Path:
    w = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])
    return _save([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], y,
                 [numpy_helper.from_array(w, "w")], path)


def _int8_weights(n: int) -> np.ndarray:
    return np.random.default_rng(1).integers(-127, 128, (n, n), dtype=np.int8)


def matmul_integer_graph(n: int, path: Path) -> Path:
    """u8 activations x s8 weights -> s32 (ORT's MLAS U8S8 kernel)."""
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [n, n])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])
    inits = [numpy_helper.from_array(_int8_weights(n), "w"),
             numpy_helper.from_array(np.array(128, np.uint8), "xz"),
             numpy_helper.from_array(np.array(0, np.int8), "wz")]
    node = helper.make_node("MatMulInteger", ["x", "w", "xz", "wz"], ["y"])
    return _save([node], [x], y, inits, path)


def qlinear_graph(n: int, path: Path) -> Path:
    """u8 x s8 -> u8 with requantisation: the operator a quantized conv becomes."""
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [n, n])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, [n, n])
    inits = [numpy_helper.from_array(_int8_weights(n), "w"),
             numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
             numpy_helper.from_array(np.array(128, np.uint8), "xz"),
             numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.5 * n ** 0.5, np.float32), "ys"),
             numpy_helper.from_array(np.array(128, np.uint8), "yz")]
    node = helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                            ["y"])
    return _save([node], [x], y, inits, path)


def qdq_graph(n: int, path: Path, signed: bool) -> Path:
    """float in/out, Q -> DQ -> MatMul(DQ(w)) -> Q -> DQ: the QDQ form of one quantized layer."""
    zero = np.array(0, np.int8) if signed else np.array(128, np.uint8)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])
    inits = [numpy_helper.from_array(_int8_weights(n), "w"),
             numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
             numpy_helper.from_array(zero, "xz"),
             numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.5 * n ** 0.5, np.float32), "ys"),
             numpy_helper.from_array(zero.copy(), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["m"]),
             helper.make_node("QuantizeLinear", ["m", "ys", "yz"], ["mq"]),
             helper.make_node("DequantizeLinear", ["mq", "ys", "yz"], ["y"])]
    return _save(nodes, [x], y, inits, path)


# --------------------------------------------------------------------------------------------
# engines: each returns a zero-argument callable that runs one GEMM
# --------------------------------------------------------------------------------------------
def ort_runner(path: Path, x: np.ndarray) -> Callable[[], object]:
    session = deploy.make_session(path, THREADS or None)
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


def openvino_runner(path: Path, x: np.ndarray, precision: str) -> Callable[[], object] | None:
    """OpenVINO on the same .onnx; None without openvino (`make bench` installs it)."""
    try:
        import openvino as ov
    except ImportError:
        return None
    compiled = ov.Core().compile_model(str(path), "CPU",
                                       openvino_config(precision, THREADS or None))
    request = compiled.create_infer_request()
    return lambda: request.infer({0: x})


def torch_runner(a: torch.Tensor, b: torch.Tensor, int_mm: bool = False) -> Callable[[], object]:
    op = torch._int_mm if int_mm else torch.matmul

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return op(a, b)
    return run


def conv_fp32_graph(path: Path) -> Path:
    """One fp32 3x3 convolution, CONV_IN -> CONV_OUT channels on a CONV_SIDE^2 map, with bias."""
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((CONV_OUT, CONV_IN, 3, 3)) * 0.01).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CONV_IN, CONV_SIDE, CONV_SIDE])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CONV_OUT, CONV_SIDE, CONV_SIDE])
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])
    return _save([node], [x], y, [numpy_helper.from_array(w, "w"), numpy_helper.from_array(
        rng.standard_normal(CONV_OUT).astype(np.float32), "b")], path)


def torch_conv_runner(x: torch.Tensor, w: torch.Tensor) -> Callable[[], object]:
    def run() -> torch.Tensor:
        with torch.inference_mode():
            return torch.nn.functional.conv2d(x, w, padding=1)
    return run


Engines = dict[str, dict[str, tuple[Callable[[], object], float]]]


def gemm_engines(n: int, tmp: Path, out: Engines) -> None:
    """One n x n x n matrix product per engine and precision."""
    ops = 2.0 * n ** 3 / 1e9
    rng = np.random.default_rng(0)
    xf = rng.standard_normal((n, n), dtype=np.float32)
    xu = rng.integers(0, 256, (n, n), dtype=np.uint8)
    fp32_path = fp32_graph(n, tmp / "fp32.onnx")
    out["fp32"]["GEMM onnxruntime MatMul"] = (ort_runner(fp32_path, xf), ops)
    af, bf = torch.from_numpy(xf), torch.randn(n, n, generator=torch.Generator().manual_seed(1))
    out["fp32"]["GEMM torch matmul"] = (torch_runner(af, bf), ops)
    out["bf16"]["GEMM torch matmul"] = (torch_runner(af.bfloat16(), bf.bfloat16()), ops)
    out["int8"]["GEMM onnxruntime MatMulInteger u8s8"] = (ort_runner(
        matmul_integer_graph(n, tmp / "mmi.onnx"), xu), ops)
    out["int8"]["GEMM onnxruntime QLinearMatMul u8s8"] = (ort_runner(
        qlinear_graph(n, tmp / "qlinear.onnx"), xu), ops)
    for signed in (False, True):
        tag = "s8s8" if signed else "u8s8"
        qdq = qdq_graph(n, tmp / f"qdq_{tag}.onnx", signed)
        out["int8"][f"GEMM onnxruntime QDQ MatMul {tag}"] = (ort_runner(qdq, xf), ops)
        ov_int8 = openvino_runner(qdq, xf, "f32")
        if ov_int8 is not None:
            out["int8"][f"GEMM openvino QDQ MatMul {tag}"] = (ov_int8, ops)
    ai = torch.from_numpy(rng.integers(-127, 128, (n, n), dtype=np.int8))
    out["int8"]["GEMM torch _int_mm s8s8"] = (torch_runner(
        ai, torch.from_numpy(_int8_weights(n)), int_mm=True), ops)
    for precision, hint in (("fp32", "f32"), ("bf16", "bf16")):
        runner = openvino_runner(fp32_path, xf, hint)
        if runner is not None:
            out[precision]["GEMM openvino MatMul"] = (runner, ops)


def conv_engines(tmp: Path, out: Engines) -> None:
    """One large 3x3 convolution (the decode head's kind of layer) per engine and precision."""
    ops = 2.0 * CONV_SIDE ** 2 * CONV_IN * CONV_OUT * 9 / 1e9
    x = np.random.default_rng(2).standard_normal((1, CONV_IN, CONV_SIDE, CONV_SIDE),
                                                 dtype=np.float32)
    fp32_path = conv_fp32_graph(tmp / "conv.onnx")
    tag = f"conv3x3 {CONV_IN}->{CONV_OUT}"
    out["fp32"][f"{tag} onnxruntime Conv"] = (ort_runner(fp32_path, x), ops)
    xt = torch.from_numpy(x)
    wt = torch.randn(CONV_OUT, CONV_IN, 3, 3, generator=torch.Generator().manual_seed(3))
    out["fp32"][f"{tag} torch conv2d"] = (torch_conv_runner(xt, wt), ops)
    last = torch.channels_last
    out["bf16"][f"{tag} torch conv2d channels_last"] = (torch_conv_runner(
        xt.bfloat16().contiguous(memory_format=last),
        wt.bfloat16().contiguous(memory_format=last)), ops)
    for precision, hint in (("fp32", "f32"), ("bf16", "bf16")):
        runner = openvino_runner(fp32_path, x, hint)
        if runner is not None:
            out[precision][f"{tag} openvino Conv"] = (runner, ops)
    for k, (label, signed, zp) in enumerate(VARIANTS):
        qdq = conv_graph(tmp / f"conv_int8_{k}.onnx", CONV_IN, CONV_OUT, 3, signed, zp,
                         side=CONV_SIDE)
        out["int8"][f"{tag} onnxruntime QDQ Conv, {label}"] = (ort_runner(qdq, x), ops)
        runner = openvino_runner(qdq, x, "f32")
        if runner is not None:
            out["int8"][f"{tag} openvino QDQ Conv, {label}"] = (runner, ops)


def measure(n: int, runs: int, warmup: int) -> tuple[dict[str, dict], dict[str, dict]]:
    """Figures (per engine throughput and fraction) and the limits {precision: {...}}.

    Each engine runs its ``runs`` back to back, warm, as a network's layers do; the engines of a
    precision then go round a second time, so that a burst of load from elsewhere on the machine
    does not decide an engine's best run alone.
    """
    throughput: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        engines: Engines = {p: {} for p in PRECISIONS}
        gemm_engines(n, tmp, engines)
        conv_engines(tmp, engines)
        for precision, runners in engines.items():
            samples: dict[str, list[float]] = {k: [] for k in runners}
            for _ in range(2):
                for name, (fn, _) in runners.items():
                    samples[name] += time_runs(fn, runs, warmup)
            throughput[precision] = {k: [runners[k][1] / t for t in ts]
                                     for k, ts in samples.items()}
            for name, values in throughput[precision].items():
                print(f"{precision} {name}: {statistics.median(values):.0f} G/s", flush=True)
    figures: dict[str, dict] = {}
    limits: dict[str, dict] = {}
    for precision, by_engine in throughput.items():
        unit = "GOP/s" if precision == "int8" else "GFLOP/s"
        best_engine = max(by_engine, key=lambda e: max(by_engine[e]))
        limit = max(by_engine[best_engine])
        limits[precision] = {"value": limit, "unit": unit, "engine": best_engine,
                             "gemm": f"{n}x{n}x{n} GEMM or 3x3 conv {CONV_IN}->{CONV_OUT} "
                                     f"at {CONV_SIDE}x{CONV_SIDE}"}
        figures[f"limit {precision}"] = summarize([limit], unit)
        for name, values in by_engine.items():
            figures[f"{precision} {name}"] = summarize(values, unit)
            figures[f"{precision} {name}, of limit"] = summarize(
                [v / limit for v in values], "of limit")
    return figures, limits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n=1536, 3 runs")
    parser.add_argument("--n", type=int, default=None, help="GEMM side (default 3072)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="default: one per physical core")
    args = parser.parse_args(argv)
    global THREADS
    THREADS = args.threads
    if THREADS:
        torch.set_num_threads(THREADS)
    n = args.n or (1536 if args.quick else 3072)
    runs = 3 if args.quick else max(5, args.runs)
    figures, limits = measure(n, runs, warmup=2)
    emit(figures, limits=limits, notes=(
        f"One {n}x{n} by {n}x{n} GEMM or one 3x3 convolution {CONV_IN}->{CONV_OUT} at "
        f"{CONV_SIDE}x{CONV_SIDE} per call (constant weights), median of 2 x {runs} runs after 2 "
        f"warm-up; torch {torch.__version__} ({torch.get_num_threads()} threads), ONNX Runtime "
        f"{ort.__version__} (helpers.deploy.session_options), OpenVINO with one stream and one "
        "thread per core. The limit of a precision is the best single run of any engine; "
        "'of limit' divides each run by it. " + "; ".join(
            f"{p} limit {v['value']:.0f} {v['unit']} by {v['engine']}" for p, v in limits.items())
        + "."))


if __name__ == "__main__":
    main()
