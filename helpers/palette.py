"""Colours of class ids: the one colour table and the one overlay rule (notebooks 01, 04, 05).

Every picture of a mask in the course goes through this module: the figures of
:mod:`helpers.plotting`, the overlay PNGs of :mod:`helpers.predict` and the torch-free ONNX
Runtime demo of :mod:`helpers.deploy`. It imports numpy and :mod:`helpers.voc_classes` only,
so deployment stays free of torch and OpenMMLab; the VOC colours themselves are mmseg's
(``PascalVOCDataset.METAINFO``, read through :mod:`helpers.voc_classes` the first time a call
needs them without a ``palette``).

The blend is mmseg's own, the rule of ``SegLocalVisualizer`` (behind ``show_result_pyplot``)::

    (image * (1 - opacity) + colour[mask] * opacity).astype(uint8)

with one deliberate difference: mmseg paints ids outside the palette black, which darkens void
(255) pixels of a ground truth; here void is painted in VOC's own cream :data:`VOID_COLOR`, as
the devkit shows it. Predictions never contain 255, so their overlays equal mmseg's pixel for
pixel (tests/test_palette.py holds this against ``SegLocalVisualizer``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from helpers.voc_classes import voc_metainfo

__all__ = ["IGNORE_INDEX", "VOID_COLOR", "colorize", "lut", "overlay"]

IGNORE_INDEX = 255
"""Label of "void" pixels (object borders, difficult regions): ignored by the loss and metrics."""

VOID_COLOR = (224, 224, 192)
"""Colour of label 255 in the VOC devkit palette (the cream outline around objects)."""


def lut(palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """(256, 3) uint8 colour table: ``palette`` at its ids, VOID_COLOR at 255, black elsewhere.

    ``palette=None`` takes the 21 VOC colours from mmseg (this imports mmseg once); pass a
    palette (e.g. from an ONNX file's metadata) to stay free of it.
    """
    if palette is None:
        palette = voc_metainfo()[1]
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)
    table[IGNORE_INDEX] = VOID_COLOR
    return table


def colorize(mask: np.ndarray, palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Class-id mask (H, W) -> RGB image (H, W, 3) in the palette (255 in VOID_COLOR)."""
    return lut(palette)[np.asarray(mask, np.uint8)]


def overlay(image_rgb: np.ndarray, mask: np.ndarray, opacity: float = 0.5,
            palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Blend a class-id mask over an RGB image with mmseg's rule; returns uint8 RGB (H, W, 3).

    ``(image * (1 - opacity) + colour * opacity)`` truncated to uint8, as ``SegLocalVisualizer``
    draws it. Background's colour is black, so it darkens the image; void (255) is cream.
    """
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.shape[:2] != mask.shape[:2]:
        raise ValueError(f"image {image_rgb.shape} and mask {mask.shape} must be (H, W, 3) and "
                         "(H, W) of the same height and width")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    return (image_rgb * (1 - opacity) + colorize(mask, palette) * opacity).astype(np.uint8)
