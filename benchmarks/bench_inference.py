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

Ends with one line ``RESULT {"figures": ...}`` (see benchmarks/common.py); ``run_all.py`` draws
the ``latency SIZE ENGINE`` figures into images/bench_latency.png.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import onnxruntime as ort
import torch
from common import FP32_PEAK_GFLOPS, emit, summarize, time_runs
from torch import nn

from helpers import deploy, export

CONFIG = "pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py"


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


def calibration_folder(tmp: Path, count: int) -> list[Path]:
    """A few synthetic VOC-like images (helpers.demo_data) to calibrate INT8 with."""
    from helpers.demo_data import make_demo_dataset

    root = make_demo_dataset(tmp / "calib", n_train=count, n_val=0, n_unlabelled=0)
    return export.calibration_images(root / "JPEGImages", limit=count)


def bench_size(model: nn.Module, size: int, tmp: Path, images: list[Path], runs: int,
               warmup: int) -> dict[str, dict]:
    """Time eager, ORT fp32 and ORT INT8 at size x size; return this size's figures."""
    graph = export.SegmentorGraph(model).eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    fp32_path = tmp / f"pspnet_r50_{size}.onnx"
    report = export.export_onnx(model, fp32_path, size=(size, size))
    print(report, flush=True)
    int8_path = export.quantize_int8(fp32_path, tmp / f"pspnet_r50_{size}.int8.onnx", images)
    fp32, int8 = deploy.make_session(fp32_path), deploy.make_session(int8_path)
    feed = {fp32.get_inputs()[0].name: x.numpy()}

    with torch.inference_mode():
        samples = {"eager": time_runs(lambda: graph(x), runs, warmup)}
        reference = graph(x).argmax(1).numpy()
    samples["ort_fp32"] = time_runs(lambda: fp32.run(None, feed), runs, warmup)
    samples["ort_int8"] = time_runs(lambda: int8.run(None, feed), runs, warmup)
    agreement = float((int8.run(None, feed)[0].argmax(1) == reference).mean())
    gflop = count_flops(graph, size) / 1e9
    eager = statistics.median(samples["eager"])
    tag = f"{size}x{size}"
    figures = {f"latency {tag} {engine}": summarize(ts, "s") for engine, ts in samples.items()}
    for engine in ("ort_fp32", "ort_int8"):
        figures[f"speedup {tag} {engine}"] = summarize([eager / t for t in samples[engine]], "x")
    for engine, ts in samples.items():
        figures[f"throughput {tag} {engine}"] = summarize([gflop / t for t in ts], "GFLOP/s")
    figures[f"fp32 peak fraction {tag} ort_fp32"] = summarize(
        [gflop / t / FP32_PEAK_GFLOPS for t in samples["ort_fp32"]], "of peak")
    figures[f"forward pass {tag}"] = summarize([gflop], "GFLOP")
    figures[f"max |logit diff| {tag} ort_fp32"] = summarize([report.checks[0].max_abs_diff],
                                                            "abs")
    figures[f"argmax agreement {tag} ort_int8 vs eager"] = summarize([100 * agreement], "%")
    for engine, path in (("ort_fp32", fp32_path), ("ort_int8", int8_path)):
        figures[f"model file {tag} {engine}"] = summarize([path.stat().st_size / 2**20], "MB")
    print("\n".join(f"{name}: {f['median']:.4g} {f['unit']}" for name, f in figures.items()),
          flush=True)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256x256 only, 4 calibration images")
    parser.add_argument("--sizes", nargs="+", type=int, default=None)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per engine (>= 5)")
    parser.add_argument("--calib", type=int, default=8, help="calibration images for INT8")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([256] if args.quick else [256, 512])
    runs = max(5, args.runs)
    warmup = 1 if args.quick else 2

    model = build_model()
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images = calibration_folder(tmp, 4 if args.quick else args.calib)
        for size in sizes:
            figures.update(bench_size(model, size, tmp, images, runs, warmup))
    emit(figures, notes=(
        f"PSPNet R50-D8 (mmseg's {CONFIG}, BN, random weights), one image per call, median of "
        f"{runs} runs after {warmup} warm-up. PyTorch eager at its defaults "
        f"({torch.get_num_threads()} threads); ONNX Runtime {ort.__version__} with "
        "helpers.deploy.session_options (ORT_ENABLE_ALL, one intra-op thread per physical core, "
        "sequential, no spinning); INT8 = helpers.export.quantize_int8 (static QDQ, per-channel "
        "s8 weights, u8 activations, MinMax calibration on synthetic images). FLOPs = 2 x "
        "mmengine's multiply-add count."))


if __name__ == "__main__":
    main()
