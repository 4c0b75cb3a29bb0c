"""The masks notebook 01's checks read: id arrays made here (no file read) and what they hold,
written as data (:data:`MASK_COUNTS`), and palette PNGs unlike VOC's. Used by
`helpers.checks.data`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers import voc

__all__ = ["VOID", "MASK_COUNTS", "check_masks", "other_pngs", "write_masks"]

VOID = 255

#: What the three masks of :func:`check_masks` hold: class id → number of pixels, per mask.
MASK_COUNTS = (
    {0: 69, 1: 49, 2: 61, 3: 68, 4: 56, 5: 73, 6: 50, 7: 62, 8: 53, 9: 59, 10: 69, 11: 57,
     12: 61, 13: 44, 14: 61, 15: 57, 16: 44, 17: 69, 18: 68, 19: 60, 20: 75, 255: 55},
    {0: 2180, 8: 816, 255: 76},
    {0: 630, 1: 210, 5: 140, 15: 420, 20: 210, 255: 140},
)


def check_masks() -> dict[str, np.ndarray]:
    """The checks' masks, made from id patterns (no file read): every id, a cat alone, a mix."""
    ids = np.r_[0:21, VOID].astype(np.uint8)
    k = np.arange(33 * 40)
    every = ids[(k + k * k // 97) % 22].reshape(33, 40)
    cat = np.zeros((48, 64), np.uint8)  # cat is id 8, displayed (64, 0, 0): no channel is 128
    cat[10:34, 16:50], cat[8:10, 14:52] = 8, VOID
    k = np.arange(70 * 25)
    mix = np.array([0, 0, 0, 1, 5, 15, 15, 20, VOID], np.uint8)[(5 * k + k // 25) % 9]
    return {"a mask with every id": every, "a mask with only a cat": cat,
            "a third mask": mix.reshape(70, 25)}


def other_pngs(folder: str) -> list[tuple[str, Path, np.ndarray]]:
    """Palette PNGs unlike VOC's masks: (what, path, the ids it stores). A row of pixels with
    VOC's palette, a grey palette and a 16-colour palette (Pillow writes that one with 4 bits per
    pixel)."""
    from PIL import Image

    ids = np.r_[0:21, VOID].astype(np.uint8)
    k = np.arange(210)
    made = (("a mask one pixel high", ids[k * 3 % 22][None, :], voc.lut().ravel().tolist()),
            ("a mask with a grey palette", ids[(np.arange(31 * 17) // 2) % 22].reshape(31, 17),
             [v for g in range(256) for v in (g, g, g)]),
            ("a 4-bit palette PNG", (np.arange(23 * 27) % 16).astype(np.uint8).reshape(23, 27),
             [v for g in range(16) for v in (16 * g, 255 - 16 * g, 99)]))
    out = []
    for n, (what, mask, palette) in enumerate(made):
        png = Image.fromarray(mask)
        png.putpalette(palette)
        png.save(Path(folder, f"other_{n}.png"))
        out.append((what, Path(folder, f"other_{n}.png"), mask))
    return out


def write_masks(folder: str, masks: dict[str, np.ndarray]) -> list[Path]:
    paths = [Path(folder, f"mask_{k}.png") for k in range(len(masks))]
    for path, mask in zip(paths, masks.values(), strict=True):
        voc.save_mask(mask, path)  # a palette PNG, as VOC stores it
    return paths
