"""GPU figures: training iterations per second with and without AMP, inference images per second
at 512x512 beside mmseg's published V100 figure, and peak GPU memory for each.

    .venv/bin/python benchmarks/bench_gpu.py [--quick] [--out benchmarks/results_gpu.json]

Without a CUDA device it says so, prints an empty RESULT line and writes nothing.

Training: the course's ``seed`` (256x256 crop, batch 8) and ``official`` (512x512 crop, batch 4)
presets from ``helpers.config.build_config`` (PSPNet R50-D8, BN, random init), each turned into
an mmengine Runner by ``helpers.train.build_runner`` (the same call notebook 03 makes, which
switches to ``AmpOptimWrapper`` for AMP), then ``model.train_step`` on a synthetic batch of
uint8 images and masks at the crop size: the data preprocessor, forward, loss, backward and SGD
step of one Runner iteration, without the data loader (which depends on the disk and CPU cores,
not the GPU). Inference: ``helpers.onnx.SegmentorGraph`` (mmseg's whole-image
``encode_decode``: backbone, decode head, resize to the input) on normalised 512x512 tensors at
batch 1 and a larger batch, fp32 and fp16 autocast. Every figure is the median of >= 5 timed
repetitions after warm-up, each repetition a fixed number of iterations between two
``torch.cuda.synchronize()``. Peak memory is ``torch.cuda.max_memory_allocated`` over the timed
repetitions of that case (steady state), beside the warm-up's peak, which includes what cuDNN's
autotuner allocates while it tries workspace-hungry algorithms.

Prints one ``RESULT {json}`` line (see benchmarks/common.py) and writes the same figures, the
device and the reference into ``benchmarks/results_gpu.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import ROOT, emit, summarize

CONFIG = "pspnet_r50-d8_4xb4-20k_voc12aug-512x512"
"""mmseg's model-zoo entry that the inference figure is compared with."""

V100_FPS_FALLBACK = {
    "fps": 23.59,
    "hardware": "V100",
    "source": "https://github.com/open-mmlab/mmsegmentation/blob/v1.2.2/configs/pspnet/"
    "README.md (Pascal VOC 2012 + Aug table, R-50-D8, 512x512, 20000 iterations, "
    "'Inf time (fps)' column)",
}
"""mmseg's published speed of CONFIG, used only when the installed metafile carries none.

mmseg 1.x's ``metafile.yaml`` dropped the ``inference time (ms/im)`` entries of the 0.x
metafiles; the figure survives in the model zoo README cited here.
"""

TRAIN_CASES = (("seed", False), ("seed", True), ("official", False), ("official", True))
INFER_BATCHES = (1, 16)
INFER_SIZE = 512


def cuda_time(step: Callable[[], object], iters: int, reps: int,
              warmup: int) -> tuple[list[float], float, float]:
    """Time ``step``: ``reps`` repetitions of ``iters`` calls after ``warmup`` calls.

    Returns (seconds per call of each repetition, peak MiB during the warm-up, peak MiB during
    the timed repetitions). The warm-up peak includes what cuDNN's autotuner (``cudnn.benchmark``)
    allocates while it tries algorithms; the timed peak is the steady state of training.
    """
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    warmup_peak = peak_mib()
    torch.cuda.reset_peak_memory_stats()
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(iters):
            step()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) / iters)
    return samples, warmup_peak, peak_mib()


def reset_peak() -> float:
    """Free what the previous case left and start a new peak; return MiB still allocated."""
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated() / 2**20


def peak_mib() -> float:
    return torch.cuda.max_memory_allocated() / 2**20


def synthetic_batch(crop: tuple[int, int], batch: int, num_classes: int) -> dict:
    """What a training data loader yields: uint8 CHW images and SegDataSample masks, on the CPU."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    gen = torch.Generator().manual_seed(0)
    h, w = crop
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8))
        mask = torch.randint(0, num_classes, (1, h, w), generator=gen, dtype=torch.int64)
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=mask)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def bench_train(preset: str, amp: bool, voc_root: Path, work_dir: Path, iters: int, reps: int,
                warmup: int) -> dict:
    """Iterations per second and peak memory of one preset's Runner iteration."""
    from helpers.config import build_config
    from helpers.train import build_runner

    cfg = build_config(preset, voc_root, work_dir, load_from=None)
    cfg.model.pretrained = None  # random init: speed does not depend on the weights
    cfg.log_level = "WARNING"  # the Runner's config dump and hook table are not the result
    start_mib = reset_peak()
    runner = build_runner(cfg, amp=amp)
    model = runner.model.train()
    optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    crop = tuple(cfg.crop_size)
    batch = int(cfg.train_dataloader.batch_size)
    data = synthetic_batch(crop, batch, int(cfg.model.decode_head.num_classes))
    samples, warmup_peak, peak = cuda_time(lambda: model.train_step(data, optim_wrapper),
                                           iters, reps, warmup)
    result = {"preset": preset, "crop": list(crop), "batch": batch, "amp": amp,
              "optim_wrapper": type(optim_wrapper).__name__,
              "cudnn_benchmark": torch.backends.cudnn.benchmark,
              "seconds_per_iter": samples, "peak_mib": peak, "warmup_peak_mib": warmup_peak,
              "start_mib": start_mib,
              "reserved_mib": torch.cuda.max_memory_reserved() / 2**20}
    return result


def bench_inference(batch: int, fp16: bool, iters: int, reps: int, warmup: int) -> dict:
    """Images per second and peak memory of PSPNet R50-D8 whole-image inference at 512x512."""
    from bench_inference import build_model

    from helpers.onnx import SegmentorGraph

    start_mib = reset_peak()
    graph = SegmentorGraph(build_model()).cuda().eval()
    x = torch.randn(batch, 3, INFER_SIZE, INFER_SIZE, device="cuda",
                    generator=torch.Generator("cuda").manual_seed(0))
    amp = torch.autocast("cuda", dtype=torch.float16) if fp16 else contextlib.nullcontext()

    def step() -> None:
        with torch.inference_mode(), amp:
            graph(x)

    samples, warmup_peak, peak = cuda_time(step, iters, reps, warmup)
    result = {"size": INFER_SIZE, "batch": batch, "precision": "fp16 autocast" if fp16 else "fp32",
              "seconds_per_batch": samples, "peak_mib": peak, "warmup_peak_mib": warmup_peak,
              "start_mib": start_mib,
              "reserved_mib": torch.cuda.max_memory_reserved() / 2**20}
    return result


def mmseg_reference() -> dict:
    """mmseg's model-zoo entry for CONFIG: training memory and, where recorded, inference fps."""
    import mmseg
    import yaml

    path = Path(mmseg.__file__).parent / ".mim" / "configs" / "pspnet" / "metafile.yaml"
    models = yaml.safe_load(path.read_text())["Models"]
    entry = next(m for m in models if m["Name"] == CONFIG)
    meta = entry.get("Metadata", {})
    resources = str(meta.get("Training Resources", ""))  # "4x V100 GPUS"
    gpus = int(m.group(1)) if (m := re.match(r"(\d+)x", resources)) else None
    ref = {"model": CONFIG, "metafile": f"mmseg/.mim/configs/pspnet/metafile.yaml "
           f"(mmsegmentation {mmseg.__version__})",
           "training_resources": resources or None,
           "training_batch_per_gpu": meta["Batch Size"] // gpus if gpus and
           meta.get("Batch Size") else None,
           "training_memory_gb": meta.get("Memory (GB)"),
           "mIoU": entry.get("Results", {}).get("Metrics", {}).get("mIoU")}
    timing = next((v for k, v in meta.items() if re.fullmatch(r"inference time.*", k, re.I)), None)
    if timing:  # mmseg 0.x: [{value: ms/im, hardware: V100, batch size: 1, mode: FP32, ...}]
        row = timing[0] if isinstance(timing, list) else timing
        ref.update(fps=1000.0 / float(row["value"]), hardware=row.get("hardware"),
                   source=ref["metafile"])
    else:
        ref.update(V100_FPS_FALLBACK)
        ref["note"] = ("the installed metafile has no inference time for this model; fps from "
                       "mmseg's model zoo README (batch 1, fp32, test pipeline resize to "
                       "2048x512 keep-ratio, i.e. about 683x512 for a VOC image)")
    return ref


def device_info() -> dict:
    import mmcv
    import mmengine
    import mmseg

    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "mmcv": mmcv.__version__,
            "mmengine": mmengine.__version__, "mmseg": mmseg.__version__,
            "python": sys.version.split()[0],
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}


def figures_of(train: list[dict], infer: list[dict], ref: dict) -> dict[str, dict]:
    """Flat ``{name: summary}`` figures (benchmarks/common.py) of the measured cases."""
    figures: dict[str, dict] = {}
    per_iter = {}
    for r in train:
        tag = f"train {r['preset']} {r['crop'][0]}x{r['crop'][1]} batch {r['batch']} " \
              f"{'amp' if r['amp'] else 'fp32'}"
        per_iter[(r["preset"], r["amp"])] = r["seconds_per_iter"]
        figures[f"{tag}: iterations per second"] = summarize(
            [1 / t for t in r["seconds_per_iter"]], "it/s")
        figures[f"{tag}: images per second"] = summarize(
            [r["batch"] / t for t in r["seconds_per_iter"]], "img/s")
        figures[f"{tag}: peak memory"] = summarize([r["peak_mib"]], "MiB")
        figures[f"{tag}: peak memory in warm-up"] = summarize([r["warmup_peak_mib"]], "MiB")
    for preset in dict.fromkeys(r["preset"] for r in train):
        if (preset, False) in per_iter and (preset, True) in per_iter:
            fp32, amp = per_iter[(preset, False)], per_iter[(preset, True)]
            figures[f"train {preset}: AMP speed-up"] = summarize(
                [a / b for a, b in zip(sorted(fp32), sorted(amp), strict=True)], "x")
    for r in infer:
        tag = f"inference {r['size']}x{r['size']} batch {r['batch']} {r['precision']}"
        figures[f"{tag}: images per second"] = summarize(
            [r["batch"] / t for t in r["seconds_per_batch"]], "img/s")
        figures[f"{tag}: peak memory"] = summarize([r["peak_mib"]], "MiB")
    figures[f"mmseg published {ref['hardware']}: {CONFIG} inference"] = summarize(
        [ref["fps"]], "img/s")
    if ref.get("training_memory_gb"):
        figures[f"mmseg published: {CONFIG} training memory per GPU "
                f"(batch {ref['training_batch_per_gpu']})"] = summarize(
            [ref["training_memory_gb"]], "GB")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations per repetition")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (>= 5)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_gpu.json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA device: the GPU figures need a GPU; nothing measured, "
              f"{args.out.name} left as it is.")
        emit({}, skipped="no CUDA device")
        return 0
    reps = max(5, args.reps)
    train_iters, warmup = (3, 3) if args.quick else (10, 5)

    from helpers.demo_data import make_demo_dataset

    train: list[dict] = []
    infer: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        voc_root = make_demo_dataset(tmp / "VOCdevkit" / "VOC2012", n_train=4, n_val=2,
                                     n_unlabelled=0)
        for i, (preset, amp) in enumerate(TRAIN_CASES):
            r = bench_train(preset, amp, voc_root, tmp / f"work{i}", train_iters, reps, warmup)
            train.append(r)
            print(f"train {preset} amp={amp}: {1 / sorted(r['seconds_per_iter'])[reps // 2]:.2f}"
                  f" it/s, peak {r['peak_mib']:.0f} MiB", flush=True)
    for batch in INFER_BATCHES:
        for fp16 in (False, True):
            iters = max(2, (20 if not args.quick else 5) // batch)
            r = bench_inference(batch, fp16, iters, reps, warmup)
            infer.append(r)
            print(f"inference batch {batch} {r['precision']}: "
                  f"{batch / sorted(r['seconds_per_batch'])[reps // 2]:.1f} img/s, "
                  f"peak {r['peak_mib']:.0f} MiB", flush=True)

    ref = mmseg_reference()
    figures = figures_of(train, infer, ref)
    notes = (
        f"{torch.cuda.get_device_name(0)}, torch {torch.__version__} (CUDA {torch.version.cuda}). "
        f"Median of {reps} repetitions after {warmup} warm-up iterations. Training: one Runner "
        "iteration (helpers.train.build_runner: preprocessor, forward, loss, backward, SGD) on a "
        "synthetic batch, no data loader; AMP = AmpOptimWrapper (fp16, dynamic loss scale). "
        "Inference: SegmentorGraph (encode_decode + resize) on 512x512 tensors, random weights. "
        f"'fp32' lets cuDNN use TF32 (torch's default, allow_tf32="
        f"{torch.backends.cudnn.allow_tf32}). Peak memory = torch.cuda.max_memory_allocated "
        "over the timed repetitions (steady state); the warm-up peak adds what cuDNN's "
        "autotuner (cudnn.benchmark, on in mmseg's configs) allocates while it tries algorithms. "
        f"Reference: {ref['fps']} img/s on a {ref['hardware']} ({ref['source']}), batch 1 fp32.")
    record = {"device": device_info(), "settings": {
                  "reps": reps, "warmup": warmup, "train_iters_per_rep": train_iters,
                  "quick": args.quick, "inference_size": INFER_SIZE},
              "figures": figures, "reference": ref, "train": train, "inference": infer,
              "notes": notes, "date": time.strftime("%Y-%m-%d")}
    print("\n".join(f"{name}: {f['median']:.4g} {f['unit']}" for name, f in figures.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")
    emit(figures, notes=notes, device=record["device"]["name"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
