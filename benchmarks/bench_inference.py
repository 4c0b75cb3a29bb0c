"""Inference speed of PSPNet R50-D8: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime INT8.

The model is mmseg's shipped ``pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py`` (21 classes) with BN
instead of SyncBN and random weights (speed does not depend on the values). For each size the
script exports the static graph with ``helpers.export.export_onnx`` (verified against PyTorch),
quantizes it with ``helpers.export.quantize_int8`` (static QDQ INT8, calibrated on a few
synthetic images), and times one image at a time, median of ``--runs`` runs after warm-up, all
three in the same process so that the ratios compare like with like. PyTorch keeps its defaults
(one thread per core); ORT uses ``helpers.deploy.session_options``.

FLOPs are counted with mmengine's ``get_model_complexity_info``, which counts one multiply-add
as one operation, so FLOPs = 2 x its figure (89.2 G at 256x256, 356.7 G at 512x512). The fp32
peak of the course machine (2 cores, AVX-512, 2 FMA units, 2.6 GHz) is ~333 GFLOP/s.

    .venv/bin/python benchmarks/bench_inference.py [--quick] [--sizes 256 512] [--runs 5]

Ends with one line ``RESULT {...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from helpers import deploy, export

CONFIG = "pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py"
PEAK_GFLOPS = 333.0  # 2 cores x 2 FMA units x 16 fp32 lanes x 2 flops x 2.6 GHz


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


def median_seconds(fn: Callable[[], object], runs: int, warmup: int) -> float:
    """Median wall time of ``fn`` over ``runs`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def calibration_folder(tmp: Path, count: int) -> list[Path]:
    """A few synthetic VOC-like images (helpers.demo_data) to calibrate INT8 with."""
    from helpers.demo_data import make_demo_dataset

    root = make_demo_dataset(tmp / "calib", n_train=count, n_val=0, n_unlabelled=0)
    return export.calibration_images(root / "JPEGImages", limit=count)


def bench_size(model: nn.Module, size: int, tmp: Path, images: list[Path], runs: int,
               warmup: int) -> dict[str, float]:
    """Time eager, ORT fp32 and ORT INT8 at size x size; return the figures of this size."""
    graph = export.SegmentorGraph(model).eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    fp32_path = tmp / f"pspnet_r50_{size}.onnx"
    report = export.export_onnx(model, fp32_path, size=(size, size))
    print(report, flush=True)
    int8_path = export.quantize_int8(fp32_path, tmp / f"pspnet_r50_{size}.int8.onnx", images)
    fp32, int8 = deploy.make_session(fp32_path), deploy.make_session(int8_path)
    feed = {fp32.get_inputs()[0].name: x.numpy()}

    with torch.inference_mode():
        eager_s = median_seconds(lambda: graph(x), runs, warmup)
        reference = graph(x).argmax(1).numpy()
    fp32_s = median_seconds(lambda: fp32.run(None, feed), runs, warmup)
    int8_s = median_seconds(lambda: int8.run(None, feed), runs, warmup)
    int8_agreement = float((int8.run(None, feed)[0].argmax(1) == reference).mean())
    flops = count_flops(graph, size)
    figures = {
        "gflops": flops / 1e9,
        "eager_s": eager_s,
        "ort_fp32_s": fp32_s,
        "ort_int8_s": int8_s,
        "fp32_speedup": eager_s / fp32_s,
        "int8_speedup": eager_s / int8_s,
        "eager_gflops_per_s": flops / eager_s / 1e9,
        "ort_fp32_gflops_per_s": flops / fp32_s / 1e9,
        "ort_fp32_peak_fraction": flops / fp32_s / 1e9 / PEAK_GFLOPS,
        "int8_vs_fp32_argmax_agreement": int8_agreement,
        "fp32_max_abs_logit_diff": report.checks[0].max_abs_diff,
        "onnx_fp32_mb": fp32_path.stat().st_size / 2**20,
        "onnx_int8_mb": int8_path.stat().st_size / 2**20,
    }
    print(f"{size}x{size}: " + ", ".join(f"{k} {v:.3g}" for k, v in figures.items()),
          flush=True)
    return {f"{k}_{size}": v for k, v in figures.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256x256 only, fewer runs")
    parser.add_argument("--sizes", nargs="+", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None, help="timed runs per engine (>= 5)")
    parser.add_argument("--calib", type=int, default=8, help="calibration images for INT8")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([256] if args.quick else [256, 512])
    runs = max(5, args.runs or 5)
    warmup = 1 if args.quick else 2

    model = build_model()
    result: dict[str, float] = {"torch_threads": torch.get_num_threads(),
                                "ort_threads": deploy.physical_cores(),
                                "cpu_count": os.cpu_count() or 0, "runs": runs}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images = calibration_folder(tmp, 4 if args.quick else args.calib)
        for size in sizes:
            result.update(bench_size(model, size, tmp, images, runs, warmup))
    print("RESULT " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                  for k, v in result.items()}))
    return result


if __name__ == "__main__":
    main()
