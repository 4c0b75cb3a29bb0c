"""Class statistics of a VOC split: pixel counts per class and image, read from the masks (nb 01).

`scan_masks` reads every mask of a split once (through mmseg's `PascalVOCDataset`, in parallel
for long splits); `class_statistics` summarises that table, and
`helpers.plotting.plot_class_statistics` / `plot_image_sizes` draw it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from helpers import voc
from helpers.voc import IGNORE_INDEX, NUM_CLASSES, progress_map, read_mask, voc_dataset

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["class_statistics", "scan_masks"]


def _mask_histogram(path: str) -> tuple[int, int, np.ndarray]:
    mask = read_mask(path)
    return mask.shape[0], mask.shape[1], np.bincount(mask.ravel(), minlength=256)


def scan_masks(root: str | Path, split: str, workers: int | None = None) -> pd.DataFrame:
    """One row per mask of a split (ids from mmseg's `PascalVOCDataset`): height, width and the
    pixel count of every class and of void. The input for all class statistics."""
    import pandas as pd

    dataset = voc_dataset(root, split)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    paths = [d["seg_map_path"] for d in infos]
    hists = progress_map(_mask_histogram, paths, f"scanning {split}", workers)
    counts = np.array([h[2] for h in hists], np.int64).reshape(len(hists), 256)
    table = pd.DataFrame(
        np.concatenate([counts[:, :NUM_CLASSES], counts[:, [IGNORE_INDEX]]], axis=1),
        columns=[*voc.CLASSES, "void"],
    )
    table.insert(0, "width", [h[1] for h in hists])
    table.insert(0, "height", [h[0] for h in hists])
    table.insert(0, "id", [Path(d["seg_map_path"]).stem for d in infos])
    return table


def class_statistics(scan: pd.DataFrame) -> pd.DataFrame:
    """Per class (and void): pixel count, share of all pixels (%) and number of images."""
    import pandas as pd

    names = [*voc.CLASSES, "void"]
    pixels = scan[names].sum()
    return pd.DataFrame(
        {
            "pixels": pixels,
            "pixel_share_%": 100 * pixels / pixels.sum(),
            "images": (scan[names] > 0).sum(),
        }
    ).rename_axis("class")
