"""helpers.palette: the one colour table and the one overlay rule, held against mmseg's own
``SegLocalVisualizer`` (the class behind ``show_result_pyplot``) pixel for pixel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from helpers import palette, voc


def mmseg_overlay(image: np.ndarray, mask: np.ndarray, opacity: float) -> np.ndarray:
    """What mmseg's visualizer draws for a prediction ``mask`` over ``image`` (RGB)."""
    vis = SegLocalVisualizer(name=f"test_palette_{opacity}_{mask.shape}", alpha=opacity)
    vis.dataset_meta = dict(classes=voc.CLASSES, palette=voc.PALETTE)
    sample = SegDataSample(pred_sem_seg=PixelData(data=torch.from_numpy(mask[None].astype(
        np.int64))))
    vis.add_datasample("overlay", image, sample, draw_gt=False, with_labels=False)
    return vis.get_image()


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("opacity", [0.3, 0.5, 0.8, 1.0])
def test_overlay_equals_seg_local_visualizer(image: np.ndarray, opacity: float) -> None:
    """Every class id 0-20 at many pixels: the same uint8 values as mmseg, not one off."""
    mask = np.random.default_rng(1).integers(0, voc.NUM_CLASSES, image.shape[:2]).astype(np.uint8)
    assert set(np.unique(mask)) == set(range(voc.NUM_CLASSES))
    np.testing.assert_array_equal(palette.overlay(image, mask, opacity),
                                  mmseg_overlay(image, mask, opacity))


def test_void_is_cream_where_mmseg_darkens(image: np.ndarray) -> None:
    """The one stated difference: mmseg paints ids outside its palette (void, 255) black, which
    darkens a ground truth's object outlines; here they are VOC's cream VOID_COLOR."""
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[5:20, 10:30] = 15
    mask[5:20, 10] = palette.IGNORE_INDEX
    ours, theirs = palette.overlay(image, mask, 0.5), mmseg_overlay(image, mask, 0.5)
    void = mask == palette.IGNORE_INDEX
    np.testing.assert_array_equal(ours[~void], theirs[~void])
    expected = (image[void] * 0.5 + np.array(palette.VOID_COLOR) * 0.5).astype(np.uint8)
    np.testing.assert_array_equal(ours[void], expected)
    np.testing.assert_array_equal(theirs[void], (image[void] * 0.5).astype(np.uint8))


def test_colour_table_is_mmseg_voc_palette() -> None:
    table = palette.lut()
    assert table.shape == (256, 3) and table.dtype == np.uint8
    assert table[: voc.NUM_CLASSES].tolist() == voc.PALETTE
    assert tuple(table[255]) == palette.VOID_COLOR
    assert not table[voc.NUM_CLASSES:255].any()
    mask = np.array([[0, 15], [255, 8]], np.uint8)
    assert palette.colorize(mask).tolist() == [[voc.PALETTE[0], voc.PALETTE[15]],
                                               [list(palette.VOID_COLOR), voc.PALETTE[8]]]


def test_overlay_limits_own_palette_and_bad_input(image: np.ndarray) -> None:
    mask = np.full(image.shape[:2], 3, np.uint8)
    np.testing.assert_array_equal(palette.overlay(image, mask, 0.0), image)
    own = [[10, 20, 30]] * 4
    assert tuple(palette.overlay(image, mask, 1.0, palette=own)[2, 2]) == (10, 20, 30)
    with pytest.raises(ValueError, match="same height and width"):
        palette.overlay(image, mask[:-1])
    with pytest.raises(ValueError, match="opacity"):
        palette.overlay(image, mask, opacity=1.5)


def test_module_is_free_of_torch_and_mmseg() -> None:
    """Deployment draws with it: importing it and drawing with a given palette loads neither."""
    script = (
        "import sys\n"
        "for name in ('torch', 'mmseg', 'mmcv', 'mmengine'):\n"
        "    sys.modules[name] = None\n"
        "import numpy as np\n"
        "from helpers import palette\n"
        "out = palette.overlay(np.zeros((2, 2, 3), np.uint8), np.ones((2, 2), np.uint8), 1.0,\n"
        "                      palette=[[0, 0, 0], [9, 8, 7]])\n"
        "print(out[0, 0].tolist())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[9, 8, 7]"
