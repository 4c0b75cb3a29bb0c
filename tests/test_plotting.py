"""helpers.plotting: legends of present classes, the figures (each returns a Figure with the
expected panels) and the augmentation preview through mmseg's transforms."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from helpers import palette, plotting, voc, voc_stats

matplotlib.use("Agg")

# The homework's training pipeline (as in mmseg's VOC configs), with a small crop for speed.
TRAIN_PIPELINE = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="RandomResize", scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=(96, 96), cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]


@pytest.fixture
def sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    mask = np.zeros((6, 8), np.uint8)
    mask[1:3, 1:4] = 15
    mask[4:, 5:] = 8
    mask[0, :] = 255
    return image, mask


def legend_labels(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_legend_lists_only_present_classes(sample: tuple[np.ndarray, np.ndarray]) -> None:
    _, mask = sample
    handles = plotting.legend_handles(np.unique(mask))
    assert [h.get_label() for h in handles] == ["0 background", "8 cat", "15 person", "void (255)"]
    assert np.allclose(handles[2].get_facecolor()[:3], np.array(voc.PALETTE[15]) / 255)


def test_show_image_and_mask(demo_root: Path) -> None:
    image_id = voc.split_ids(demo_root, "train")[0]
    image, mask = voc.load_sample(demo_root, image_id)
    fig = plotting.show_image_and_mask(image, mask, opacity=0.3, title=image_id)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert np.array_equal(fig.axes[1].images[0].get_array(), palette.colorize(mask))
    present = {voc.CLASSES[i] for i in np.unique(mask) if i < 21}
    labels = legend_labels(fig)
    assert {label.split(" ", 1)[1] for label in labels if label[0].isdigit()} == present


def test_overlay_grid(demo_root: Path) -> None:
    ids = voc.split_ids(demo_root, "val")[:5]
    samples = [voc.load_sample(demo_root, i) for i in ids]
    fig = plotting.overlay_grid(samples, ncols=3, titles=ids, suptitle="val")
    assert len(fig.axes) == 6
    assert sum(1 for ax in fig.axes if ax.images) == 5
    assert fig.axes[4].get_title() == ids[4]
    shown = set().union(*(np.unique(m).tolist() for _, m in samples))
    assert len(legend_labels(fig)) == len(shown)


def test_statistics_figures(demo_root: Path) -> None:
    scan = voc_stats.scan_masks(demo_root, "train", workers=1)
    stats = voc_stats.class_statistics(scan)
    fig = plotting.plot_class_statistics(stats, title="train")
    assert len(fig.axes) == 2
    widths = [p.get_width() for p in fig.axes[1].patches]
    assert widths == pytest.approx(stats["images"].tolist())
    sizes = plotting.plot_image_sizes(scan)
    offsets = sizes.axes[0].collections[0].get_offsets()
    assert len(offsets) == len(scan)
    assert sorted(offsets[:, 0].tolist()) == sorted(scan["width"].tolist())


def test_augmentation_preview_runs_the_pipeline(demo_root: Path) -> None:
    dataset = voc.voc_dataset(demo_root, "train")
    fig = plotting.augmentation_preview(dataset, 0, TRAIN_PIPELINE, n=3)
    assert len(fig.axes) == 8  # original + 3 draws, image row and overlay row
    assert "PackSegInputs" not in fig.texts[0].get_text()
    assert "RandomCrop" in fig.texts[0].get_text()
    original = fig.axes[0].images[0].get_array()
    assert original.shape[:2] == voc.read_mask(dataset.get_data_info(0)["seg_map_path"]).shape
    tops = [ax.images[0].get_array() for ax in fig.axes[1:4]]
    for top in tops:
        assert max(top.shape[:2]) <= 96  # cropped by RandomCrop
    assert any(not np.array_equal(tops[0], t) for t in tops[1:])  # random draws differ
    assert TRAIN_PIPELINE[-1] == dict(type="PackSegInputs")  # caller's list untouched


def test_prediction_grid_has_one_row_per_image(demo_root: Path) -> None:
    rows = []
    for image_id in voc.split_ids(demo_root, "val")[:2]:
        image = np.array(Image.open(demo_root / "JPEGImages" / f"{image_id}.jpg").convert("RGB"))
        gt = voc.read_mask(demo_root / "SegmentationClass" / f"{image_id}.png")
        rows.append((image, gt, np.where(gt == 255, 0, gt).astype(np.uint8)))
    fig = plotting.prediction_grid(rows, titles=["a", "b"])
    assert len(fig.axes) == 6
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    shown = {int(c) for _, gt, _ in rows for c in np.unique(gt)} | {0}
    assert 255 in shown and "void (255)" in labels
    assert labels == {t.get_label() for t in plotting.legend_handles(shown)}


def test_publish_figures_copies_only_a_full_size_runs_figures(tmp_path: Path) -> None:
    import subprocess
    import sys

    import matplotlib.pyplot as plt

    from helpers import env

    build, images = tmp_path / "build" / "images", tmp_path / "images"
    full = env.Setup("04_predict_evaluate", tmp_path, build, False, "cpu", 0, smoke=False)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    drawn = [full.save(fig, "04_prediction.png"), full.save(fig, "sample_and_mask.png")]
    images.mkdir()
    (images / "04_prediction.png").write_bytes(b"old")
    (images / "bench_latency.png").write_bytes(b"not a notebook's")
    written = plotting.publish_figures(build, images)
    assert written == [images / "04_prediction.png", images / "sample_and_mask.png"]
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in drawn]
    assert (images / "bench_latency.png").read_bytes() == b"not a notebook's"
    assert sorted(p.name for p in images.iterdir()) == [
        "04_prediction.png", "bench_latency.png", "sample_and_mask.png"]  # no partial files

    smoke = env.Setup("01_dataset", tmp_path, build, False, "cpu", 0, smoke=True)
    smoke.save(fig, "sample_and_mask.png")  # a smoke run overwrote one of them
    full.save(fig, "04_prediction.png")
    before = {p.name: p.read_bytes() for p in images.iterdir()}
    with pytest.raises(plotting.FigureError, match=r"sample_and_mask.png \(drawn under SMOKE=1\)"):
        plotting.publish_figures(build, images)
    assert {p.name: p.read_bytes() for p in images.iterdir()} == before  # nothing copied

    cli = [sys.executable, "-m", "helpers.plotting", "--readme-figures", "--src", str(build),
           "--dest", str(images)]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "SMOKE=1" in proc.stderr
    full.save(fig, "sample_and_mask.png")
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 figures published" in proc.stdout
    with pytest.raises(plotting.FigureError, match="no figures in .*make run"):
        plotting.publish_figures(tmp_path / "empty", images)
