"""Check of notebook 04's Task 4, a model run on an image file of the student's own, and the
blend truth it shares with Task 1: what mmseg's ``SegLocalVisualizer`` draws.

mmseg's ``inference_model`` segments the images a student's ``segment_my_image`` gets
(:func:`image_variants` writes them in the formats a photo may come in); the answer runs on a
copy of the model's config (:func:`kept_cfg`), and the check says when the answer changed it.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from helpers.checks import answered

__all__ = ["BLEND_TOLERANCE", "SEGMENT_OPACITIES", "image_variants", "kept_cfg", "mmseg_blend",
           "probe_model", "verify_segment_my_image"]

BLEND_TOLERANCE = 1
"""Largest accepted difference per uint8 channel from mmseg's blend (rounding instead of
truncating is fine)."""



def mmseg_blend(image: np.ndarray, mask: np.ndarray, palette: Any, alpha: float,
                 name: str) -> np.ndarray:
    """What mmseg's ``SegLocalVisualizer`` draws for `mask` over `image` (no labels), as int."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.visualization import SegLocalVisualizer

    sample = SegDataSample(pred_sem_seg=PixelData(data=torch.from_numpy(
        np.asarray(mask)[None].astype(np.int64))))
    vis = SegLocalVisualizer(name=name, alpha=alpha)
    vis.dataset_meta = dict(classes=[f"class {c}" for c in range(len(palette))],
                            palette=[tuple(int(v) for v in c) for c in palette])
    vis.add_datasample("check", image, sample, draw_gt=False, with_labels=False)
    return vis.get_image().astype(int)


def image_variants(source: str | Path, out_dir: str | Path, size: tuple[int, int]
                   ) -> dict[str, Path]:
    """One photo written as the files a student's own image may be: greyscale PNG, RGBA PNG
    (opaque, so that dropping or compositing the alpha agree), JPEG and palette PNG, each at
    ``size`` (width, height; odd sizes test "at the image's own size"). Returns name → path."""
    from PIL import Image

    out_dir = Path(out_dir)
    with Image.open(source) as img:
        rgb = img.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    variants = {
        "a greyscale PNG": (rgb.convert("L"), "grey.png", {}),
        "an RGBA PNG": (rgb.convert("RGBA"), "rgba.png", {}),
        "a JPEG": (rgb, "photo.jpg", {"quality": 90}),
        "a palette PNG": (rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
                        "palette.png", {}),
    }
    paths = {}
    for name, (img, filename, options) in variants.items():
        paths[name] = out_dir / filename
        img.save(paths[name], **options)
    return paths


@contextmanager
def kept_cfg(model: Any) -> Iterator[None]:
    """Give `model` a copy of its config for a moment: mmseg 1.2's ``inference_model`` rewrites
    the first step of ``model.cfg.test_pipeline`` when it is given an array, for good."""
    cfg = model.cfg
    model.cfg = copy.deepcopy(cfg)
    try:
        yield
    finally:
        model.cfg = cfg


def probe_model(voc_root: str | Path, seed: int = 404) -> Any:
    """A segmentor whose predictions are the same in every run: the ``smoke`` preset's slim
    PSPNet with random weights drawn from `seed` (the global random state is left as it was),
    on the CPU, with VOC's classes and palette. The grader's fixtures for notebook 04
    (teacher/tasks/n04_predict_evaluate.py) save it as a config and a checkpoint."""
    import torch
    from mmseg.apis import init_model

    from helpers.config import build_config
    from helpers.voc_classes import voc_metainfo

    cfg = build_config("smoke", voc_root, Path(tempfile.gettempdir()) / "probe_model")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = init_model(cfg, None, device="cpu")
    classes, palette = voc_metainfo()
    model.dataset_meta = {"classes": list(classes), "palette": [list(c) for c in palette]}
    return model


def _segmentation(model: Any, image: np.ndarray) -> np.ndarray:
    from mmseg.apis import inference_model

    with kept_cfg(model):
        return inference_model(model, image).pred_sem_seg.data[0].cpu().numpy()


def _check_segmentation(got: Any, model: Any, path: Path, opacity: float, where: str
                        ) -> list[str]:
    import mmcv

    bgr = mmcv.imread(str(path))  # as mmseg's LoadImageFromFile reads any file: 3 channels, BGR
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    classes = list(model.dataset_meta["classes"])
    try:
        mask, overlay, shares = got
    except (TypeError, ValueError):
        return [f"{where} it returned {type(got).__name__}, not (mask, overlay, shares)"]
    mask, want = np.asarray(mask), _segmentation(model, bgr)
    if mask.shape != want.shape:
        return [f"{where} the mask has shape {mask.shape}, not the image's own height and width "
                f"{want.shape}: one class id per pixel of the file"]
    if not np.array_equal(mask, want):
        if np.array_equal(mask, _segmentation(model, rgb)):
            return [f"{where} the colour channels reached the model in the wrong order: an array "
                    "given to inference_model must be BGR, as cv2 and mmcv read images"]
        wrong = int((mask != want).sum())
        return [f"{where} {wrong} of {mask.size} pixels have another class than the model "
                "predicts for this file"]
    overlay = np.asarray(overlay)
    if overlay.shape != rgb.shape:
        return [f"{where} the overlay has shape {overlay.shape}, not (height, width, 3) of the "
                "image in RGB"]
    if overlay.dtype != np.uint8:
        return [f"{where} the overlay is {overlay.dtype}, not uint8"]
    palette = model.dataset_meta["palette"]
    err = np.abs(overlay.astype(int)
                 - mmseg_blend(rgb, want, palette, opacity, f"check_own_rgb_{opacity}"))
    if err.max() > BLEND_TOLERANCE:
        bgr_drawn = mmseg_blend(bgr, want, palette, opacity, f"check_own_bgr_{opacity}")
        if np.abs(overlay.astype(int) - bgr_drawn).max() <= BLEND_TOLERANCE:
            return [f"{where} the overlay is drawn over the image in BGR order: show it in RGB"]
        if opacity != 0.5 and np.abs(overlay.astype(int) - mmseg_blend(
                rgb, want, palette, 0.5, "check_own_rgb_0.5")).max() <= BLEND_TOLERANCE:
            return [f"{where} the overlay is blended at opacity 0.5, not at the opacity given"]
        return [f"{where} {int((err.max(axis=2) > BLEND_TOLERANCE).sum())} overlay pixels differ "
                "by more than 1 from the palette colours blended over the image at opacity "
                f"{opacity}"]
    if not isinstance(shares, dict):
        return [f"{where} shares is a {type(shares).__name__}, not a dict {{class name: percent}}"]
    ids, counts = np.unique(want, return_counts=True)
    if set(shares) != {classes[i] for i in ids}:
        if all(isinstance(k, (int, np.integer)) for k in shares):
            return [f"{where} the keys of shares are class ids: use the class names of "
                    "model.dataset_meta"]
        return [f"{where} shares names {sorted(map(str, shares))}: it should name exactly the "
                "classes that the mask holds"]
    got_pct = np.array([float(shares[classes[i]]) for i in ids])
    want_pct = 100 * counts / want.size
    if not np.allclose(got_pct, want_pct, atol=0.01):
        if np.allclose(got_pct * 100, want_pct, atol=0.01):
            return [f"{where} the shares are fractions: give them in percent"]
        return [f"{where} the shares are not each class's percent of the image's pixels (they "
                f"add up to {got_pct.sum():.2f})"]
    return []


#: The opacity each kind of file is tried at (None: the default, 0.5), as the grader varies it.
SEGMENT_OPACITIES = (None, 0.3, 0.8, None)


def verify_segment_my_image(segment_my_image: Callable, model: Any, example: str | Path
                            ) -> list[str]:
    """``segment_my_image(model, path[, opacity])`` -> (mask, overlay, shares) on `example`
    written as four kinds of file at an odd size, two of them at opacities other than the
    default, against mmseg's ``inference_model`` on the decoded image and
    ``SegLocalVisualizer``'s blend. An answer that changed ``model.cfg`` (``inference_model`` on
    an array rewrites its test pipeline) is told so in a note, once; the result still counts."""
    told = False
    with tempfile.TemporaryDirectory() as tmp:
        files = image_variants(example, tmp, (131, 97))
        for (name, path), opacity in zip(files.items(), SEGMENT_OPACITIES, strict=True):
            args = (model, str(path)) if opacity is None else (model, str(path), opacity)
            loader = model.cfg.test_pipeline[0]["type"]
            with kept_cfg(model):  # the answer works on a copy of model.cfg
                got = answered(segment_my_image(*args))
                first = model.cfg.test_pipeline[0]["type"]
            # (inference_model also drops LoadAnnotations from the copy, for any input: harmless)
            if first != loader and not told:  # a trap for later calls, not a wrong result
                told = True
                print(f"Note: your function changed model.cfg (the check gave it a copy): the "
                      f"first step of its test_pipeline became {first!r}, which inference_model "
                      "does when given an array. A later inference_model(model, path) then fails "
                      "with KeyError: 'img'. Give inference_model the file's path.")
            where = f"for {name} of 131x97 pixels" + ("" if opacity is None
                                                      else f" at opacity {opacity}")
            problems = _check_segmentation(got, model, path, opacity or 0.5, where)
            if problems:
                return problems
    return []
