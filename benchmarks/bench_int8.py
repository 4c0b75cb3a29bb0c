"""Where the INT8 time goes in ONNX Runtime, and which form of the quantized graph this CPU wants.

On the quantized PSPNet R50-D8 graph of ``bench_inference.py`` (build/bench/models/, made here
when missing) this script

1. runs ONNX Runtime's profiler (``SessionOptions.enable_profiling``) and sums the kernel time of
   every node by operator type: quantized convolutions, the convolutions and other nodes that stay
   fp32, the ``QuantizeLinear``/``DequantizeLinear`` left after ORT's fusions, resizes, pooling
   (the pyramid pooling's averaging matrices are ``MatMul`` nodes), concatenation and layout
   changes. Node counts come from the graph ORT actually runs (``optimized_model_filepath``);
2. times, taking turns, the same quantized model in both forms of ``helpers.onnx.quantize``
   (``vnni``: symmetric weights, u8 activations; ``amx``: zero point -1 weights, s8 activations),
   the whole graph quantized instead of the convolutions only, and the session with spinning
   threads;
3. times single convolutions through each ORT int8 kernel path (``int8_kernels.py``).

    .venv/bin/python benchmarks/bench_int8.py [--quick] [--size 512] [--runs 5]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from common import emit, summarize, time_interleaved
from int8_kernels import measure as kernel_paths

from helpers import deploy
from helpers.onnx.quantize import cpu_int8_target, quantize_int8, retarget_int8

#: operator type -> category of the profile table
CATEGORIES = {
    "QLinearConv": "quantized Conv", "Conv": "fp32 Conv", "FusedConv": "fp32 Conv",
    "QuantizeLinear": "Quantize/Dequantize", "DequantizeLinear": "Quantize/Dequantize",
    "Resize": "Resize (upsampling)", "MatMul": "pooling (fp32 MatMul)",
    "QLinearMatMul": "pooling (int8 MatMul)", "MaxPool": "pooling (MaxPool)",
    "NhwcMaxPool": "pooling (MaxPool)", "Concat": "Concat (fp32)",
    "QLinearConcat": "Concat (int8)", "Transpose": "layout (Transpose/Reorder)",
    "ReorderInput": "layout (Transpose/Reorder)", "ReorderOutput": "layout (Transpose/Reorder)",
    "Add": "Add (fp32)", "QLinearAdd": "Add (int8)", "Relu": "Relu (fp32)",
}


def graphs(size: int) -> tuple[Path, Path]:
    """The fp32 and INT8 graphs of bench_inference.py at size x size (made when missing)."""
    from bench_inference import MODELS, build_model, prepare_graphs

    fp32, int8 = MODELS / f"pspnet_r50_{size}.onnx", MODELS / f"pspnet_r50_{size}.int8.onnx"
    if not (fp32.is_file() and int8.is_file()):
        fp32, int8, _ = prepare_graphs(build_model(), size)
    return fp32, int8


def session(model: onnx.ModelProto | Path, spinning: bool = False, profile_dir: Path | None = None,
            optimized: Path | None = None) -> ort.InferenceSession:
    options = deploy.session_options(spinning=spinning)
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_dir / "ort_profile")
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def profile(int8: onnx.ModelProto, x: np.ndarray, runs: int, tmp: Path) -> dict:
    """Kernel time per operator type and node counts of the graph ORT runs."""
    optimized = tmp / "optimized.onnx"
    sess = session(int8, profile_dir=tmp, optimized=optimized)
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(runs + 1):
        sess.run(None, feed)
    events = json.loads(Path(sess.end_profiling()).read_text())
    kernel = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    by_op: dict[str, float] = collections.defaultdict(float)
    for event in kernel:
        by_op[event["args"]["op_name"]] += event["dur"] / 1e3 / (runs + 1)  # ms per run
    ran = collections.Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
    written = collections.Counter(n.op_type for n in int8.graph.node)
    total = sum(by_op.values())
    table = {op: {"ms": ms, "share": ms / total, "nodes": ran.get(op, 0),
                  "category": CATEGORIES.get(op, "other")}
             for op, ms in sorted(by_op.items(), key=lambda kv: -kv[1])}
    fp32_compute = {op: n for op, n in ran.items()
                    if op in ("Conv", "FusedConv", "MatMul", "Resize", "Concat", "Add", "Relu",
                              "MaxPool", "AveragePool")}
    return {"ms_per_run": total, "by_op": table,
            "categories": {c: sum(r["ms"] for r in table.values() if r["category"] == c)
                           for c in dict.fromkeys(r["category"] for r in table.values())},
            "written": dict(written), "ran": dict(ran), "fp32_compute_nodes": fp32_compute,
            "qdq_written": written["QuantizeLinear"] + written["DequantizeLinear"],
            "qdq_left": ran["QuantizeLinear"] + ran["DequantizeLinear"]}


def variants(fp32: Path, int8: Path, tmp: Path, quick: bool) -> dict[str, ort.InferenceSession]:
    """The same quantized model as ORT sessions in each form, plus the recipe alternatives."""
    from bench_inference import MODELS, calibration_set

    chosen = cpu_int8_target()
    out = {}
    for target in ("vnni", "amx"):
        model = onnx.load(str(int8))
        retarget_int8(model, target)
        out[f"form {target}{' (chosen here)' if target == chosen else ''}"] = session(model)
    out["chosen form, spinning threads"] = session(int8, spinning=True)
    if not quick:
        whole = quantize_int8(fp32, tmp / "whole.int8.onnx", calibration_set(MODELS / "calib", 8),
                              op_types=("Conv", "Concat", "Add", "MaxPool", "Relu", "MatMul",
                                        "Resize"))
        out["whole graph quantized (Concat, Add, Resize, pooling too)"] = session(whole)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="256x256, 3 runs, no whole-graph variant")
    parser.add_argument("--size", type=int, default=None, help="default 512 (256 with --quick)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    runs = 3 if args.quick else max(5, args.runs)
    args.size = args.size or (256 if args.quick else 512)
    fp32, int8 = graphs(args.size)
    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size), dtype=np.float32)
    tag = f"{args.size}x{args.size}"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        prof = profile(onnx.load(str(int8)), x, runs, tmp)
        sessions = variants(fp32, int8, tmp, args.quick)
        samples = time_interleaved({k: (lambda s=s: s.run(None, {"input": x}))
                                    for k, s in sessions.items()}, runs, warmup=1)
    kernels = kernel_paths(deploy.physical_cores(), runs)
    figures = {f"ORT INT8 {tag}, {name}": summarize(ts, "s") for name, ts in samples.items()}
    for category, ms in prof["categories"].items():
        figures[f"profile {tag}: {category}"] = summarize([ms], "ms")
    for category, ms in prof["categories"].items():
        figures[f"profile {tag}: {category}, share"] = summarize(
            [100 * ms / prof["ms_per_run"]], "%")
    figures[f"profile {tag}: Q/DQ nodes written by quantize_static"] = summarize(
        [prof["qdq_written"]], "nodes")
    figures[f"profile {tag}: Q/DQ nodes left after ORT's fusions"] = summarize(
        [prof["qdq_left"]], "nodes")
    for layer, paths in kernels.items():
        for label, r in paths.items():
            figures[f"conv {layer}, {label}"] = summarize([r["gops"]], "GOP/s")
    best = min(samples, key=lambda k: statistics.median(samples[k]))
    emit(figures, profile=prof, kernels=kernels, chosen_target=cpu_int8_target(),
         notes=(f"ONNX Runtime {ort.__version__}, helpers.deploy.session_options unless named. "
                f"Profile: kernel time per run of the INT8 graph (form "
                f"{cpu_int8_target()}), {runs + 1} runs. Fastest variant here: {best}."))


if __name__ == "__main__":
    main()
