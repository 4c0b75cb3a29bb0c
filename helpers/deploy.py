"""Run an exported segmentation graph with ONNX Runtime only: no torch, no mmseg (notebook 05).

A deployment machine needs onnxruntime, numpy and an image decoder (OpenCV here, the decoder
mmseg itself uses). Everything else the model needs (class names, palette, mean/std, the
test-time Resize of the config) travels inside the ``.onnx`` file as metadata written by
:mod:`helpers.onnx`, so :func:`segment` reproduces mmseg's ``inference_model``:

1. keep-ratio Resize of the BGR image exactly as mmcv's ``Resize`` does (cv2, bilinear);
2. the graph: BGR->RGB, mean/std, network, bilinear resize of the logits back to the original
   size, argmax (or, for a graph exported without them, the same steps in numpy/cv2).

Overlays use the course's one blend rule (`helpers.palette`, numpy only) with the palette stored
in the graph.

Command line: ``python -m helpers.deploy --model FILE.onnx --image IMG --out DIR [--force]``;
exit status 2 with a one-line error for a bad model or image, or outputs that already exist.
This module must stay importable without torch (tests/test_deploy.py checks it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from helpers.outputs import atomic_path, refuse_existing
from helpers.palette import overlay

__all__ = [
    "DeployError",
    "ModelInfo",
    "check_image",
    "main",
    "make_session",
    "model_info",
    "physical_cores",
    "prepare_feed",
    "prepare_image",
    "rescale_size",
    "segment",
    "segment_file",
    "session_options",
]


class DeployError(ValueError):
    """Bad input to the deployment functions (wrong image, unusable model file)."""


def physical_cores() -> int:
    """Number of physical CPU cores (hyper-threads share a core's FMA units: no gain)."""
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def session_options(threads: int | None = None, spinning: bool = False) -> ort.SessionOptions:
    """ORT settings tuned for CPU inference of one image at a time.

    All graph optimisations (constant folding, Conv+BatchNorm folding, Conv+ReLU fusion, NCHWc
    layout), one intra-op thread per physical core, sequential execution (a segmentation network
    is a chain: nothing to run in parallel), and the memory-pattern planner that reuses buffers
    between runs of the same shape. Idle threads sleep instead of spinning: on two cores shared
    with anything else (a notebook, the OS), spinning threads take cycles from the work; measured
    on the course machine under load, PSPNet R50-D8 ran 5 % (fp32) to 25 % (INT8) faster without
    spinning. Pass ``spinning=True`` on a dedicated machine.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = True
    options.enable_cpu_mem_arena = True
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return options


def make_session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    """An ``InferenceSession`` on CPU with :func:`session_options`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path} (export it first: "
                                "python -m helpers.onnx ... --out FILE.onnx)")
    try:
        return ort.InferenceSession(str(path), session_options(threads),
                                    providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT's Fail / InvalidProtobuf / InvalidGraph ...
        with path.open("rb") as f:
            head = f.read(512).lstrip().lower()
        what = ("is empty" if not head else "is an HTML/XML page (an error page saved by a "
                "failed download?)" if head.startswith(b"<") else
                f"is not a model ONNX Runtime can load ({' '.join(str(err).split())[:200]})")
        raise DeployError(f"{path} {what}. Export it again with python -m helpers.onnx, or "
                          "download it again.") from None


@dataclass(frozen=True)
class ModelInfo:
    """What :mod:`helpers.onnx` stored in the graph's metadata."""

    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    input_format: str  # "nhwc_bgr_uint8" or "nchw_float_normalized"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    bgr_to_rgb: bool
    postprocess: bool
    test_resize: dict | None
    min_side: int
    input_hw: tuple[int | None, int | None]  # None where the graph is dynamic


_METADATA = ("classes", "palette", "input_format", "mean", "std", "bgr_to_rgb", "postprocess",
             "test_resize", "min_side")
_FORMATS = ("nhwc_bgr_uint8", "nchw_float_normalized")


def model_info(session: ort.InferenceSession) -> ModelInfo:
    """Read :class:`ModelInfo` from a session; a clear error for a foreign .onnx, or for one
    whose metadata is incomplete or does not fit its graph."""
    meta = session.get_modelmeta().custom_metadata_map
    source = getattr(session, "_model_path", None) or "this .onnx"
    how = "export it again with python -m helpers.onnx"
    if "input_format" not in meta:
        raise DeployError(f"{source} has no course metadata (input_format, classes, ...): {how}")
    missing = [key for key in _METADATA if key not in meta]
    if missing:
        raise DeployError(f"{source}: incomplete course metadata, {', '.join(missing)} "
                          f"missing: {how}")
    try:
        values = {key: json.loads(meta[key]) for key in _METADATA if key != "input_format"}
        info = ModelInfo(
            classes=tuple(values["classes"]), palette=tuple(map(tuple, values["palette"])),
            input_format=meta["input_format"], mean=tuple(values["mean"]),
            std=tuple(values["std"]), bgr_to_rgb=bool(values["bgr_to_rgb"]),
            postprocess=bool(values["postprocess"]), test_resize=values["test_resize"],
            min_side=int(values["min_side"]), input_hw=(None, None))
    except (ValueError, TypeError) as err:
        raise DeployError(f"{source}: unreadable course metadata ({err}): {how}") from None
    inputs = session.get_inputs()
    problems = [
        f"input_format {info.input_format!r} is not one of {', '.join(_FORMATS)}"
        if info.input_format not in _FORMATS else "",
        "mean/std are not 3 numbers each" if (len(info.mean), len(info.std)) != (3, 3) else "",
        f"{len(inputs)} graph inputs, expected {1 + info.postprocess}"
        if len(inputs) != 1 + info.postprocess else "",
    ]
    if any(problems):
        raise DeployError(f"{source}: metadata does not describe a usable model "
                          f"({'; '.join(p for p in problems if p)}): {how}")
    shape = inputs[0].shape
    hw = shape[1:3] if info.input_format == "nhwc_bgr_uint8" else shape[2:4]
    return replace(info, input_hw=tuple(d if isinstance(d, int) else None
                                                    for d in hw))


def check_image(image: np.ndarray) -> np.ndarray:
    """Return ``image`` if it is a BGR ``uint8`` array of shape (H, W, 3), else explain why not."""
    if not isinstance(image, np.ndarray):
        raise DeployError(f"expected a numpy array from cv2.imread, got {type(image).__name__}")
    if image.ndim != 3:
        raise DeployError(f"expected an image of shape (H, W, 3), got {image.ndim} dimensions "
                          f"{image.shape}; read it with cv2.imread(path, cv2.IMREAD_COLOR)")
    if image.shape[2] != 3:
        raise DeployError(f"expected 3 colour channels (BGR), got {image.shape[2]} in shape "
                          f"{image.shape}; drop alpha with cv2.cvtColor(img, "
                          "cv2.COLOR_BGRA2BGR) or read with cv2.IMREAD_COLOR")
    if 0 in image.shape[:2]:
        raise DeployError(f"the image is empty ({image.shape[1]}x{image.shape[0]} pixels): "
                          "check the file it was read from")
    if image.dtype != np.uint8:
        raise DeployError(f"expected dtype uint8 (0-255), got {image.dtype}; convert with "
                          "np.clip(img, 0, 255).astype(np.uint8)")
    return image


def rescale_size(width: int, height: int, scale: tuple[int, int]) -> tuple[int, int]:
    """(new_width, new_height) of mmcv's keep-ratio rescale to fit ``scale`` (long, short edge)."""
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(width * factor + 0.5), int(height * factor + 0.5)


def prepare_image(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """The config's test-time Resize (cv2 bilinear on uint8, as mmcv does), or the static size."""
    height, width = image.shape[:2]
    if info.test_resize is not None:
        scale = info.test_resize["scale"]
        size = rescale_size(width, height, scale) if info.test_resize["keep_ratio"] else \
            (int(scale[0]), int(scale[1]))
        if size != (width, height):
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    fixed_h, fixed_w = info.input_hw
    if fixed_h is not None and fixed_w is not None and image.shape[:2] != (fixed_h, fixed_w):
        image = cv2.resize(image, (fixed_w, fixed_h), interpolation=cv2.INTER_LINEAR)
    if min(image.shape[:2]) < info.min_side:
        raise DeployError(f"image side {min(image.shape[:2])} px (after the test-time resize) "
                          f"is below the model's minimum of {info.min_side} px; upscale it")
    return image


def prepare_feed(session: ort.InferenceSession, image: np.ndarray) -> dict[str, np.ndarray]:
    """Inputs for ``session.run`` from one BGR uint8 image (H, W, 3)."""
    info = model_info(session)
    original_hw = check_image(image).shape[:2]
    image = prepare_image(image, info)
    if info.input_format == "nhwc_bgr_uint8":
        x = np.ascontiguousarray(image[None])
    else:
        rgb = image[..., ::-1] if info.bgr_to_rgb else image
        x = (rgb.astype(np.float32) - np.float32(info.mean)) / np.float32(info.std)
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    names = [i.name for i in session.get_inputs()]
    feed = {names[0]: x}
    if info.postprocess:
        feed[names[1]] = np.array(original_hw, dtype=np.int64)
    return feed


def segment(session: ort.InferenceSession, image: np.ndarray) -> np.ndarray:
    """Class-id mask (H, W) uint8 of one BGR uint8 image, at the image's own size."""
    info = model_info(session)
    outputs = session.run(None, prepare_feed(session, image))
    if info.postprocess:
        return outputs[0][0]
    logits = outputs[0][0].transpose(1, 2, 0)  # (h, w, classes) for cv2
    height, width = image.shape[:2]
    if logits.shape[:2] != (height, width):
        logits = cv2.resize(logits, (width, height), interpolation=cv2.INTER_LINEAR)
    return logits.argmax(axis=-1).astype(np.uint8)


def segment_file(onnx_path: str | Path, image_path: str | Path,
                 opacity: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(mask, RGB overlay) for an image file: the whole deployment in one call.

    The image is decoded by OpenCV with its EXIF orientation applied (as mmseg reads images).
    """
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise DeployError(f"could not read image {image_path} (missing or not an image file)")
    session = make_session(onnx_path)
    mask = segment(session, image)
    palette = model_info(session).palette
    if int(mask.max()) >= len(palette):
        raise DeployError(f"{onnx_path}: its metadata has {len(palette)} palette colours, too "
                          f"few to draw class {int(mask.max())}: export it again with "
                          "python -m helpers.onnx from a model with dataset_meta")
    return mask, overlay(image[..., ::-1], mask, opacity, palette=palette)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.deploy --model FILE.onnx --image IMG --out DIR [--force]``.

    Writes ``DIR/<stem>_mask.png`` (class ids) and ``DIR/<stem>_overlay.png``, and prints which
    libraries the run loaded (never torch or OpenMMLab). Existing files are replaced only with
    ``--force``. Bad input: one line on stderr, exit status 2.
    """
    parser = argparse.ArgumentParser(prog="python -m helpers.deploy",
                                     description="Segment one image with ONNX Runtime only.")
    parser.add_argument("--model", required=True, type=Path,
                        help="graph written by python -m helpers.onnx")
    parser.add_argument("--image", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="folder for the two PNGs")
    parser.add_argument("--opacity", type=float, default=0.5)
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)
    stem = args.image.stem
    outputs = {"mask": args.out / f"{stem}_mask.png", "overlay": args.out / f"{stem}_overlay.png"}
    try:
        refuse_existing(outputs.values(), force=args.force)
        mask, drawn = segment_file(args.model, args.image, args.opacity)
    except (DeployError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    for what, image in (("mask", mask), ("overlay", drawn[..., ::-1])):
        with atomic_path(outputs[what]) as tmp:
            if not cv2.imwrite(str(tmp), image):
                raise OSError(f"could not write {outputs[what]}")
    loaded = {name.split(".")[0] for name, module in sys.modules.items() if module is not None}
    heavy = sorted(loaded & {"torch", "mmseg", "mmcv", "mmengine"})
    print(f"{stem}: mask {mask.shape[0]}x{mask.shape[1]}, classes {np.unique(mask).tolist()} "
          f"-> {args.out}\nloaded: onnxruntime {ort.__version__}, numpy {np.__version__}, "
          f"opencv {cv2.__version__}; torch/OpenMMLab: {', '.join(heavy) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
