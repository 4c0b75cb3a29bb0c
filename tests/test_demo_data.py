"""helpers.demo_data: VOC layout, determinism, class coverage, the void band, refusing to
overwrite, ensure_dataset and the command line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import demo_data, voc


def masks(root: Path, split: str) -> dict[str, np.ndarray]:
    return {i: voc.read_mask(root / voc.MASK_DIR / f"{i}.png") for i in voc.split_ids(root, split)}


def test_layout(demo_root: Path) -> None:
    train, val = voc.split_ids(demo_root, "train"), voc.split_ids(demo_root, "val")
    assert (len(train), len(val)) == (60, 20)
    assert voc.split_ids(demo_root, "trainval") == train + val
    assert not set(train) & set(val)
    jpgs = {p.stem for p in (demo_root / voc.IMAGE_DIR).glob("*.jpg")}
    pngs = {p.stem for p in (demo_root / voc.MASK_DIR).glob("*.png")}
    assert pngs == set(train + val)
    assert len(jpgs - pngs) == 20  # unlabelled JPEGs, in no split, as in VOC
    sizes = set()
    for image_id in train[:10] + val[:5]:
        with Image.open(demo_root / voc.IMAGE_DIR / f"{image_id}.jpg") as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            size = img.size
        with Image.open(demo_root / voc.MASK_DIR / f"{image_id}.png") as mask:
            assert mask.mode == "P" and mask.size == size
            assert mask.getpalette()[: 21 * 3] == [v for c in voc.PALETTE for v in c]
        assert max(size) <= 500 and min(size) >= 150
        sizes.add(size)
    assert len(sizes) > 5  # varied sizes, like VOC


def test_classes_present_in_both_splits(demo_root: Path) -> None:
    demo_ids = {voc.CLASSES.index(c) for c in demo_data.DEMO_CLASSES}
    for split in ("train", "val"):
        pixels = np.concatenate([m.ravel() for m in masks(demo_root, split).values()])
        present = set(np.unique(pixels).tolist())
        assert present == demo_ids | {0, voc.IGNORE_INDEX}, split


def test_objects_are_large_and_bordered_by_void(demo_root: Path) -> None:
    train = masks(demo_root, "train")
    pixels = np.concatenate([m.ravel() for m in train.values()])
    foreground = ((pixels > 0) & (pixels < 255)).mean()
    void = (pixels == 255).mean()
    assert 0.25 < foreground < 0.7
    assert 0.01 < void < 0.1
    for mask in train.values():
        # Two different labels never touch directly: a void band always lies between them.
        for a, b in ((mask[1:], mask[:-1]), (mask[:, 1:], mask[:, :-1])):
            touching = (a != b) & (a != 255) & (b != 255)
            assert not touching.any()
    # The band is several pixels wide: a 255 run across a border is at least 3 px.
    mask = next(m for m in train.values() if (m == 255).any())
    row = mask[np.argwhere(mask == 255)[0][0]]
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, row == 255, 0])))[::2]
    assert runs.max() >= 3


def test_classes_are_locally_distinctive(demo_root: Path) -> None:
    """A per-pixel colour lookup table fitted on train segments val almost perfectly (mmseg's
    IoUMetric): the classes are learnable from local evidence within minutes of training."""
    import torch
    from mmseg.evaluation import IoUMetric

    def pixels(split: str):
        for image_id in voc.split_ids(demo_root, split):
            image, mask = voc.load_sample(demo_root, image_id)
            yield (image // 16).astype(np.int64) @ np.array([256, 16, 1]), mask.astype(np.int64)

    votes = np.zeros((16**3, 256), np.int64)
    for code, mask in pixels("train"):
        keep = mask != voc.IGNORE_INDEX
        np.add.at(votes, (code[keep], mask[keep]), 1)
    lookup = torch.from_numpy(votes.argmax(axis=1))
    areas = [
        IoUMetric.intersect_and_union(lookup[torch.from_numpy(code)], torch.from_numpy(mask),
                                      voc.NUM_CLASSES, voc.IGNORE_INDEX)
        for code, mask in pixels("val")
    ]
    totals = [sum(a[k] for a in areas) for k in range(4)]
    iou = IoUMetric.total_area_to_metrics(*totals, metrics=["mIoU"])["IoU"]
    present = [voc.CLASSES.index(c) for c in ("background", *demo_data.DEMO_CLASSES)]
    assert np.isnan(np.delete(iou, present)).all()  # only the demo classes are in val
    assert np.nanmean(iou) > 0.9 and iou[present].min() > 0.8


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = demo_data.make_demo_dataset(tmp_path / "a", n_train=4, n_val=2, seed=3, n_unlabelled=1)
    b = demo_data.make_demo_dataset(tmp_path / "b", n_train=4, n_val=2, seed=3, n_unlabelled=1)
    c = demo_data.make_demo_dataset(tmp_path / "c", n_train=4, n_val=2, seed=4, n_unlabelled=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 7 + 6 + 3 + 1  # images, masks, split files, the demo marker
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    pngs = [rel for rel in files if rel.suffix == ".png"]
    assert all((a / rel).read_bytes() != (c / rel).read_bytes() for rel in pngs)  # other seed


def test_refuses_existing_dataset(demo_root: Path, tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in demo_root.rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        demo_data.make_demo_dataset(demo_root)
    assert {p: p.read_bytes() for p in demo_root.rglob("*") if p.is_file()} == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert demo_data.make_demo_dataset(empty, n_train=1, n_val=1, n_unlabelled=0) == empty


def test_ensure_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "VOCdevkit" / "VOC2012"
    assert demo_data.ensure_dataset(root) == root
    assert "SYNTHETIC" in capsys.readouterr().out
    voc.check_dataset(root)
    mask_file = next((root / voc.MASK_DIR).glob("*.png"))
    stamp = mask_file.stat().st_mtime_ns
    assert demo_data.ensure_dataset(root) == root
    assert "SYNTHETIC" not in capsys.readouterr().out
    assert mask_file.stat().st_mtime_ns == stamp


def test_dataset_banner_names_the_data(demo_root: Path, tmp_path: Path) -> None:
    banner = demo_data.dataset_banner(demo_root)
    assert "DEMO DATA" in banner and "NOT PASCAL VOC2012" in banner and "60 train" in banner
    assert "NO DATASET" in demo_data.dataset_banner(tmp_path / "missing")
    voc_like = tmp_path / "VOC2012"
    voc.split_file(voc_like, "train").parent.mkdir(parents=True)
    voc.split_file(voc_like, "train").write_text("2007_000032\n2007_000039\n")
    banner = demo_data.dataset_banner(voc_like)
    assert "DATA: PASCAL VOC2012" in banner and "2 train images" in banner
    assert "DEMO" not in banner  # and it only read: nothing new under the root
    assert sorted(p.name for p in voc_like.rglob("*")) == ["ImageSets", "Segmentation", "train.txt"]


def _interrupted_run(root: Path, monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """Generate into `root` and press Ctrl-C after `after` masks were written."""
    written = []
    real_save_mask = voc.save_mask

    def save_mask(mask, path):
        if len(written) == after:
            raise KeyboardInterrupt
        written.append(path)
        return real_save_mask(mask, path)

    with monkeypatch.context() as patch:
        patch.setattr(voc, "save_mask", save_mask)
        with pytest.raises(KeyboardInterrupt):
            demo_data.make_demo_dataset(root, n_train=4, n_val=2, seed=5, n_unlabelled=1)


def test_interrupted_generation_is_detected_and_made_again(tmp_path: Path, monkeypatch,
                                                          capsys) -> None:
    reference = demo_data.make_demo_dataset(tmp_path / "ref", n_train=4, n_val=2, seed=5,
                                            n_unlabelled=1)
    assert demo_data.is_demo_dataset(reference) and demo_data.demo_dataset_complete(reference)
    root = tmp_path / "VOC2012"
    _interrupted_run(root, monkeypatch, after=3)
    assert demo_data.is_demo_dataset(root) and not demo_data.demo_dataset_complete(root)
    assert demo_data.ensure_dataset(root) == root  # not accepted: made again, same recipe
    assert "unfinished demo dataset" in capsys.readouterr().out
    assert demo_data.demo_dataset_complete(root)
    files = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert all((root / f).read_bytes() == (reference / f).read_bytes() for f in files)
    voc.check_dataset(root, workers=1)
    # a finished one that lost a file later is not complete either; the generator redoes it too
    next((root / voc.MASK_DIR).iterdir()).unlink()
    assert not demo_data.demo_dataset_complete(root)
    demo_data.make_demo_dataset(root, n_train=4, n_val=2, seed=5, n_unlabelled=1)
    assert demo_data.demo_dataset_complete(root)


def test_a_dataset_without_the_marker_is_never_touched(demo_root: Path, tmp_path: Path) -> None:
    """A tree without the demo marker is someone's data, even a damaged one: the generator and
    ensure_dataset leave it exactly as it is."""
    root = Path(shutil.copytree(demo_root, tmp_path / "VOC2012"))
    (root / demo_data.DEMO_MARKER).unlink()
    next((root / voc.MASK_DIR).iterdir()).unlink()  # incomplete, but not ours
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert not demo_data.is_demo_dataset(root)
    assert demo_data.ensure_dataset(root) == root
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        demo_data.make_demo_dataset(root)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_cli(tmp_path: Path) -> None:
    root = tmp_path / "cli"
    cmd = [sys.executable, "-m", "helpers.demo_data", "--root", str(root), "--train", "3",
           "--val", "2", "--seed", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(voc.split_ids(root, "train")) == 3 and len(voc.split_ids(root, "val")) == 2
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "already holds a dataset" in again.stderr
