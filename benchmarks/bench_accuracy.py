"""What each fast path costs in mIoU: one trained model, every engine, the same images and metric.

Speed is measured on PSPNet R50-D8 with random weights (bench_inference.py); mIoU needs a
trained model, so this script trains the course's ``smoke`` preset (a slim PSPNet R18-D8, what
notebook 03 trains under SMOKE=1) on the demo dataset, then scores it on the demo val split
along every path of ``engines.PATHS``:

* PyTorch eager fp32 and bf16: ``helpers.evaluate.evaluate`` (mmseg's ``IoUMetric``), bf16
  inside ``engines.bf16_autocast`` on a channels_last copy;
* ONNX Runtime fp32 / INT8 and OpenVINO fp32 / bf16 / INT8: the deployment graph (pre- and
  post-processing inside, dynamic size) through ``helpers.deploy.segment``, scored by
  ``helpers.evaluate.evaluate_predictions`` (the same ``IoUMetric``) on the same images. INT8 is
  ``helpers.onnx.quantize_int8`` calibrated on training images; OpenVINO runs that same file.

    .venv/bin/python benchmarks/bench_accuracy.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import torch
from common import ROOT, emit, summarize
from engines import (
    PATHS,
    OpenVINOSession,
    bf16_autocast,
    channels_last_copy,
    openvino_available,
    openvino_int8_file,
)

from helpers import deploy

DATA = ROOT / "build" / "bench" / "train_demo" / "VOCdevkit" / "VOC2012"


def train_smoke(work_dir: Path, quick: bool) -> torch.nn.Module:
    """Train the smoke preset on the demo data; return the best checkpoint's model (eval, CPU)."""
    from helpers.checkpoint import find_checkpoint, init_model
    from helpers.config import CONFIG_NAME, build_config, save_config
    from helpers.train import train

    overrides = {"train_cfg.max_iters": 60, "train_cfg.val_interval": 60,
                 "default_hooks.checkpoint.interval": 60} if quick else {}
    cfg = build_config("smoke", DATA, work_dir, **overrides)
    config_path = save_config(cfg, work_dir / CONFIG_NAME)
    train(cfg)
    return init_model(str(config_path), str(find_checkpoint(work_dir, "best")),
                      device="cpu").eval()


def score_sessions(sessions: dict, image_paths: dict[str, str]) -> dict[str, float]:
    """mIoU of each session's masks on the val images (helpers.evaluate.evaluate_predictions)."""
    from helpers.evaluate import evaluate_predictions

    scores = {}
    for name, session in sessions.items():
        masks = {i: deploy.segment(session, cv2.imread(p, cv2.IMREAD_COLOR))
                 for i, p in image_paths.items()}
        scores[name] = float(evaluate_predictions(masks, DATA, progress=False).metrics["mIoU"])
    return scores


def measure(tmp: Path, quick: bool) -> tuple[dict[str, float], dict]:
    from helpers.evaluate import evaluate
    from helpers.onnx import export_onnx, quantize_int8
    from helpers.voc import split_ids

    start = time.perf_counter()
    model = train_smoke(tmp / "work", quick)
    trained_s = time.perf_counter() - start
    ev = evaluate(model, progress=False)
    miou = {"eager_fp32": float(ev.metrics["mIoU"])}
    with bf16_autocast():
        miou["eager_bf16"] = float(evaluate(channels_last_copy(model),
                                            progress=False).metrics["mIoU"])
    fp32 = export_onnx(model, tmp / "deploy.onnx", preprocess=True, postprocess=True).path
    calib = [DATA / "JPEGImages" / f"{i}.jpg" for i in split_ids(DATA, "train")[:16]]
    int8 = quantize_int8(fp32, tmp / "deploy.int8.onnx", calib)
    sessions = {"ort_fp32": deploy.make_session(fp32), "ort_int8": deploy.make_session(int8)}
    if openvino_available():
        sessions |= {"openvino_fp32": OpenVINOSession(fp32, "f32"),
                     "openvino_bf16": OpenVINOSession(fp32, "bf16"),
                     "openvino_int8": OpenVINOSession(openvino_int8_file(int8), "f32")}
    miou |= score_sessions(sessions, {i: ev.img_paths[i] for i in ev.image_ids})
    info = {"val_images": len(ev.image_ids), "train_s": trained_s,
            "int8_recipe": sessions["ort_int8"].get_modelmeta().custom_metadata_map.get(
                "quantization", "?")}
    return miou, info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 training iterations")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        from helpers.demo_data import make_demo_dataset

        make_demo_dataset(DATA)
    with tempfile.TemporaryDirectory() as tmp_name:
        miou, info = measure(Path(tmp_name), args.quick)
    figures = {f"mIoU {path}": summarize([value], "%") for path, value in miou.items()}
    for path, value in miou.items():
        figures[f"mIoU drop {path} vs eager_fp32"] = summarize([miou["eager_fp32"] - value],
                                                               "points")
    missing = [p for p in PATHS if p not in miou]
    emit(figures, miou=miou, notes=(
        f"The smoke preset (slim PSPNet R18-D8) trained on the demo data "
        f"({info['train_s']:.0f} s), scored on the {info['val_images']} demo val images by "
        f"mmseg's IoUMetric along each path; INT8 recipe: {info['int8_recipe']}."
        + (f" Not measured (OpenVINO not installed): {', '.join(missing)}." if missing else "")))


if __name__ == "__main__":
    main()
