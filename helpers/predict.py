"""Predict with a trained segmentor: load it safely, run it, draw and save the result (notebook 04).

The model is loaded with `helpers.checkpoint.init_model`: the course's one safe checkpoint
loader, which also refuses a checkpoint whose head has a different number of classes than the
config. Each image is decoded once (PIL, with its EXIF orientation applied, as OpenCV and so
mmseg's own loading do) and that array goes both to mmseg's `inference_model` and to the
overlay, drawn by `helpers.palette` with the blend rule of mmseg's `SegLocalVisualizer` (the
class behind `show_result_pyplot`).

Command line (one overlay PNG and one VOC-palette mask PNG per image)::

    python -m helpers.predict --config FILE --checkpoint FILE --input IMAGE_OR_DIR --out DIR \\
        [--force]

Exit status: 0 when every image was written; 2 on bad arguments (missing file, class-count
mismatch, unsafe or broken checkpoint, output folder inside the dataset, outputs that already
exist without --force); 3 when some images could not be read and were skipped (the others are
still written).
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from mmseg.apis import inference_model
from mmseg.structures import SegDataSample
from PIL import Image
from tqdm.auto import tqdm

from helpers.checkpoint import cli_guard, init_model
from helpers.outputs import atomic_path, refuse_existing
from helpers.palette import overlay
from helpers.voc import IMAGE_DIR, IMAGE_SUFFIXES, MASK_DIR, SPLIT_DIR, save_mask
from helpers.voc import read_image as _read_rgb

__all__ = [
    "EXIT_SKIPPED",
    "ImageReadError",
    "PredictReport",
    "find_images",
    "find_voc_root",
    "main",
    "output_names",
    "pred_mask",
    "predict_images",
    "read_image",
]

EXIT_SKIPPED = 3


class ImageReadError(ValueError):
    """An input image that cannot be decoded."""


# --------------------------------------------------------------------------------------------
# Images and masks
# --------------------------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """`helpers.voc.read_image`, with any decoding failure raised as `ImageReadError`."""
    try:
        return _read_rgb(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # PIL: UnidentifiedImageError, truncated file, broken PNG chunks, absurd sizes, ...
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc


def pred_mask(result: SegDataSample) -> np.ndarray:
    """The (H, W) uint8 class-id map of an `inference_model` result."""
    return result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Batch prediction
# --------------------------------------------------------------------------------------------
def find_images(source: str | Path) -> list[Path]:
    """`source` itself when it is a file, else the image files directly inside the folder."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"Input not found: {source}. Pass an image file or a folder.")
    images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(
            f"No images in {source} (looked for {', '.join(IMAGE_SUFFIXES)}).")
    return images


def _is_voc_root(folder: Path) -> bool:
    return (folder / IMAGE_DIR).is_dir() and (
        (folder / MASK_DIR).is_dir() or (folder / SPLIT_DIR).parent.is_dir())


def find_voc_root(path: str | Path) -> Path | None:
    """The VOC dataset root that `path` is (or lies inside), or None."""
    path = Path(path).resolve()
    for folder in (path, *path.parents):
        if _is_voc_root(folder):
            return folder
    return None


def _check_out_dir(out_dir: Path, sources: Sequence[Path]) -> None:
    """Refuse an output folder inside a dataset: predictions must never mix with labels."""
    folders = {Path(s) if Path(s).is_dir() else Path(s).parent for s in sources}
    roots = {r for r in map(find_voc_root, (out_dir, *folders)) if r is not None}
    out = out_dir.resolve()
    for root in sorted(roots):
        if out == root or root in out.parents:
            raise ValueError(
                f"Refusing to write predictions into {out_dir}: it is inside the dataset root "
                f"{root}, which nothing but the demo-data generator may modify. "
                "Choose a folder outside it, e.g. --out work_dirs/predictions.")


def output_names(images: Sequence[str | Path]) -> dict[Path, str]:
    """The output file stem of each input: its own stem, unless another input shares it.

    ``a.jpg`` and ``a.png`` become ``a_jpg`` and ``a_png``; two ``a.jpg`` from different
    folders become ``a_jpg`` and ``a_jpg_2``. No two inputs ever write the same file.
    """
    paths = list(dict.fromkeys(map(Path, images)))
    stems = [p.stem for p in paths]
    names = {p: p.stem for p in paths if stems.count(p.stem) == 1}  # these keep their stem
    taken = set(names.values())
    for path in paths:
        if path not in names:
            name = base = f"{path.stem}_{path.suffix.lstrip('.').lower()}".rstrip("_")
            k = 1
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            taken.add(name)
            names[path] = name
    return {p: names[p] for p in paths}


@dataclass
class PredictReport:
    """What `predict_images` wrote and what it had to skip."""

    masks: list[Path] = field(default_factory=list)
    overlays: list[Path] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)


def predict_images(model: torch.nn.Module, images: Sequence[str | Path], out_dir: str | Path,
                   opacity: float = 0.5, overwrite: bool = True) -> PredictReport:
    """Predict every image; write ``out_dir/masks/<name>.png`` and ``out_dir/overlays/<name>.png``.

    ``<name>`` is the image's stem (see :func:`output_names` for inputs that share one). An
    output folder inside a dataset root is refused (``ValueError``); with ``overwrite=False``
    existing outputs are refused too (``FileExistsError``), before anything runs. An image that
    cannot be decoded is named in a warning and skipped; the others are processed. Each file is
    written completely or not at all, even when interrupted.
    """
    out_dir = Path(out_dir)
    names = output_names(images)
    _check_out_dir(out_dir, list(names))
    refuse_existing([out_dir / sub / f"{name}.png" for name in names.values()
                     for sub in ("masks", "overlays")], force=overwrite)
    report = PredictReport()
    cfg = model.cfg  # inference_model edits the pipeline of the cfg it is given: give a copy
    model.cfg = copy.deepcopy(cfg)
    try:
        for path, name in tqdm(names.items(), desc="predict", unit="img"):
            try:
                image = read_image(path)
            except ImageReadError as exc:
                warnings.warn(f"skipped {path}: {exc}", stacklevel=2)
                report.skipped[path] = str(exc)
                continue
            mask = pred_mask(inference_model(model, np.ascontiguousarray(image[..., ::-1])))
            for sub in ("masks", "overlays"):
                (out_dir / sub).mkdir(parents=True, exist_ok=True)
            with atomic_path(out_dir / "masks" / f"{name}.png") as tmp:
                save_mask(mask, tmp)
            with atomic_path(out_dir / "overlays" / f"{name}.png") as tmp:
                Image.fromarray(overlay(image, mask, opacity)).save(tmp)
            report.masks.append(out_dir / "masks" / f"{name}.png")
            report.overlays.append(out_dir / "overlays" / f"{name}.png")
    finally:
        model.cfg = cfg
    return report


@cli_guard  # a CheckpointError raised outside the try below: one line too, status 2
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.predict",
        description="Predict VOC masks: one overlay PNG and one palette mask PNG per image.")
    parser.add_argument("--config", required=True, help="config file (notebook 02 writes it)")
    parser.add_argument("--checkpoint", required=True, help=".pth file (notebook 03 writes it)")
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--out", required=True, help="output folder (outside the dataset)")
    parser.add_argument("--opacity", type=float, default=0.5, help="overlay opacity in (0, 1]")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)

    try:
        if not 0 < args.opacity <= 1:
            raise ValueError(f"--opacity must be in (0, 1], got {args.opacity}")
        images = find_images(args.input)
        out = Path(args.out)
        _check_out_dir(out, images)
        refuse_existing([out / sub / f"{name}.png" for name in output_names(images).values()
                         for sub in ("masks", "overlays")], force=args.force)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = init_model(args.config, args.checkpoint, device=device)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:  # CheckpointError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = predict_images(model, images, out, opacity=args.opacity, overwrite=True)
    print(f"wrote {len(report.masks)} masks to {out / 'masks'} and "
          f"{len(report.overlays)} overlays to {out / 'overlays'}")
    if report.skipped:
        print(f"error: {len(report.skipped)} image(s) could not be read and were skipped:",
              file=sys.stderr)
        for path, reason in report.skipped.items():
            print(f"  {path}: {reason}", file=sys.stderr)
        return EXIT_SKIPPED
    return 0


if __name__ == "__main__":
    sys.exit(main())
