"""Inference speed of PSPNet R50-D8 along every CPU path: PyTorch, ONNX Runtime, OpenVINO.

The model is mmseg's shipped ``pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py`` (21 classes) with BN
instead of SyncBN and random weights (speed does not depend on the values). For each size the
script exports the static graph with ``helpers.onnx.export_onnx`` (verified against PyTorch) and
quantizes it with ``helpers.onnx.quantize_int8`` (static QDQ INT8 in the form this CPU's int8
kernels want, calibrated on a few synthetic images), then times one image at a time along every
path of ``engines.PATHS``: PyTorch eager fp32 and bf16 (autocast + channels_last), ONNX Runtime
fp32 and INT8, OpenVINO fp32, bf16 and INT8 (the same two ``.onnx`` files). All paths run in one
process and take turns run by run (``common.time_interleaved``), so that load from anything
else on the machine spreads over all of them and their ratios stay fair.

FLOPs are counted with mmengine's ``get_model_complexity_info``, which counts one multiply-add
as one operation, so FLOPs = 2 x its figure (89.4 G at 256x256, 357.4 G at 512x512). Each path's
throughput is divided by the matching measured limit (fp32, bf16 or int8 GEMM, from
``bench_limits.py`` in the same ``make bench`` run) by ``run_all.py``.

    .venv/bin/python benchmarks/bench_inference.py [--quick] [--sizes 256 512] [--runs 5]

The graphs are kept in build/bench/models/ for ``bench_int8.py``. Ends with one line
``RESULT {"figures": ...}`` (see benchmarks/common.py).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from common import ROOT, emit, summarize, time_interleaved
from engines import (
    PATHS,
    OpenVINOSession,
    bf16_autocast,
    channels_last_copy,
    openvino_available,
    openvino_int8_file,
)
from torch import nn

from helpers import deploy
from helpers.onnx import SegmentorGraph, calibration_images, export_onnx, quantize_int8

CONFIG = "pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py"
MODELS = ROOT / "build" / "bench" / "models"


def build_model() -> nn.Module:
    """PSPNet R50-D8 for 21 classes from mmseg's shipped config, BN, random weights, eval."""
    from mmengine.config import Config
    from mmseg.apis import init_model

    from helpers.config import find_config

    cfg = Config.fromfile(str(find_config(CONFIG)))
    for part in ("backbone", "decode_head", "auxiliary_head"):
        cfg.model[part].norm_cfg = dict(type="BN", requires_grad=True)
    torch.manual_seed(0)
    return init_model(cfg, None, device="cpu").eval()


def count_flops(graph: nn.Module, size: int) -> float:
    """FLOPs of one forward pass at size x size (2 per multiply-add)."""
    from mmengine.analysis import get_model_complexity_info

    info = get_model_complexity_info(graph, inputs=(torch.zeros(1, 3, size, size),),
                                     show_table=False, show_arch=False)
    return 2.0 * info["flops"]


def calibration_set(folder: Path, count: int) -> list[Path]:
    """A few synthetic VOC-like images (helpers.demo_data) to calibrate INT8 with."""
    from helpers.demo_data import make_demo_dataset

    if not (folder / "JPEGImages").is_dir():
        make_demo_dataset(folder, n_train=count, n_val=0, n_unlabelled=0)
    return calibration_images(folder / "JPEGImages", limit=count)


def prepare_graphs(model: nn.Module, size: int, calib: int = 8) -> tuple[Path, Path, float]:
    """Export and quantize at size x size into build/bench/models; (fp32, int8, max |diff|)."""
    MODELS.mkdir(parents=True, exist_ok=True)
    fp32 = MODELS / f"pspnet_r50_{size}.onnx"
    report = export_onnx(model, fp32, size=(size, size))
    print(report, flush=True)
    images = calibration_set(MODELS / "calib", calib)
    int8 = quantize_int8(fp32, MODELS / f"pspnet_r50_{size}.int8.onnx", images)
    return fp32, int8, report.checks[0].max_abs_diff


def runners(model: nn.Module, fp32: Path, int8: Path,
            x: torch.Tensor) -> dict[str, Callable[[], np.ndarray]]:
    """{path: zero-argument callable returning (1, classes, H, W) logits} for every path here."""
    graph = SegmentorGraph(model).eval()
    graph_last = channels_last_copy(graph)
    x_last = x.contiguous(memory_format=torch.channels_last)

    def eager() -> np.ndarray:
        with torch.inference_mode():
            return graph(x).numpy()

    def eager_bf16() -> np.ndarray:
        with bf16_autocast():
            return graph_last(x_last).float().numpy()

    feed = {"input": x.numpy()}
    sessions = {"ort_fp32": deploy.make_session(fp32), "ort_int8": deploy.make_session(int8)}
    if openvino_available():
        sessions |= {"openvino_fp32": OpenVINOSession(fp32, "f32"),
                     "openvino_bf16": OpenVINOSession(fp32, "bf16"),
                     "openvino_int8": OpenVINOSession(openvino_int8_file(int8), "f32")}
    fns: dict[str, Callable[[], np.ndarray]] = {"eager_fp32": eager, "eager_bf16": eager_bf16}
    for name, session in sessions.items():
        fns[name] = lambda s=session: s.run(None, feed)[0]
    return {name: fns[name] for name in PATHS if name in fns}


def bench_size(model: nn.Module, size: int, runs: int, warmup: int) -> dict[str, dict]:
    """Time every path at size x size; return this size's figures."""
    fp32, int8, max_diff = prepare_graphs(model, size)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    fns = runners(model, fp32, int8, x)
    reference = fns["eager_fp32"]().argmax(1)
    agreement = {name: float((fn().argmax(1) == reference).mean()) for name, fn in fns.items()}
    samples = time_interleaved(fns, runs, warmup)
    gflop = count_flops(SegmentorGraph(model).eval(), size) / 1e9
    eager = statistics.median(samples["eager_fp32"])
    tag = f"{size}x{size}"
    figures = {f"latency {tag} {path}": summarize(ts, "s") for path, ts in samples.items()}
    for path, ts in samples.items():
        figures[f"speedup {tag} {path}"] = summarize([eager / t for t in ts], "x")
    for path, ts in samples.items():
        unit = "GOP/s" if PATHS[path][1] == "int8" else "GFLOP/s"
        figures[f"throughput {tag} {path}"] = summarize([gflop / t for t in ts], unit)
    for path, value in agreement.items():
        if path != "eager_fp32":
            figures[f"argmax agreement {tag} {path} vs eager_fp32"] = summarize(
                [100 * value], "%")
    figures[f"forward pass {tag}"] = summarize([gflop], "GFLOP")
    figures[f"max |logit diff| {tag} ort_fp32 vs eager_fp32"] = summarize([max_diff], "abs")
    for name, path in (("fp32", fp32), ("int8", int8)):
        figures[f"model file {tag} {name}"] = summarize([path.stat().st_size / 2**20], "MB")
    print("\n".join(f"{name}: {f['median']:.4g} {f['unit']}" for name, f in figures.items()),
          flush=True)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256x256 only, 3 runs")
    parser.add_argument("--sizes", nargs="+", type=int, default=None)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per path (>= 5)")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([256] if args.quick else [256, 512])
    runs = 3 if args.quick else max(5, args.runs)
    warmup = 1 if args.quick else 2

    model = build_model()
    figures: dict[str, dict] = {}
    for size in sizes:
        figures.update(bench_size(model, size, runs, warmup))
    recipe = deploy.make_session(MODELS / f"pspnet_r50_{sizes[-1]}.int8.onnx").get_modelmeta()
    emit(figures, paths={p: {"engine": e, "precision": q} for p, (e, q) in PATHS.items()},
         notes=(
        f"PSPNet R50-D8 (mmseg's {CONFIG}, BN, random weights), one image per call, median of "
        f"{runs} runs after {warmup} warm-up, paths taking turns. PyTorch eager at its defaults "
        f"({torch.get_num_threads()} threads); ONNX Runtime {ort.__version__} with "
        "helpers.deploy.session_options (ORT_ENABLE_ALL, one intra-op thread per physical core, "
        "sequential, no spinning); OpenVINO in latency mode, one stream, one thread per core. "
        f"INT8 = helpers.onnx.quantize_int8 ({recipe.custom_metadata_map['quantization']}), "
        "MinMax calibration on synthetic images. FLOPs = 2 x mmengine's multiply-add count."))


if __name__ == "__main__":
    main()
