"""helpers.voc: constants from mmseg, mask reading, the dataset check (one test per bad input),
RGB-mask conversion and the statistics scan, on copies of the small demo dataset."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import palette, voc, voc_stats
from helpers.voc import DatasetError


def snapshot(root: Path) -> dict[str, str]:
    """Content hash of every file under root (to prove nothing was modified)."""
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def copy_root(demo_root: Path, tmp_path: Path) -> Path:
    """A private copy of the demo dataset that a test may break."""
    return Path(shutil.copytree(demo_root, tmp_path / "VOC2012"))


def first_id(root: Path, split: str = "train") -> str:
    return voc.split_ids(root, split)[0]


def check_fails(root: Path, *fragments: str) -> str:
    """check_dataset must raise DatasetError mentioning every fragment, and modify nothing."""
    before = snapshot(root) if root.exists() else {}
    with pytest.raises(DatasetError) as info:
        voc.check_dataset(root, workers=1)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert (snapshot(root) if root.exists() else {}) == before
    return message


def test_names_and_void_mean_what_mmseg_reads(demo_root: Path) -> None:
    """The class ids read_mask returns are the ones mmseg's own pipeline loads, CLASSES names
    them as PascalVOCDataset does, and IGNORE_INDEX pixels count for nothing in IoUMetric."""
    import torch
    from mmseg.evaluation import IoUMetric

    dataset = voc.voc_dataset(demo_root, "val", [dict(type="mmseg.LoadAnnotations")])
    sample = dataset[0]
    ids = voc.read_mask(sample["seg_map_path"])
    np.testing.assert_array_equal(sample["gt_seg_map"], ids)
    assert dataset.metainfo["classes"] == voc.CLASSES and len(voc.CLASSES) == voc.NUM_CLASSES
    gt = torch.from_numpy(ids.astype(np.int64))
    wrong = torch.where(gt == voc.IGNORE_INDEX, 7, gt)  # anything at void pixels
    score = IoUMetric.intersect_and_union(gt, gt, voc.NUM_CLASSES, voc.IGNORE_INDEX)
    assert (ids == voc.IGNORE_INDEX).any()
    for got, expected in zip(IoUMetric.intersect_and_union(wrong, gt, voc.NUM_CLASSES,
                                                           voc.IGNORE_INDEX), score, strict=True):
        assert torch.equal(got, expected)


def test_read_mask_gives_ids_where_cv2_gives_colours(demo_root: Path) -> None:
    path = demo_root / voc.MASK_DIR / f"{first_id(demo_root)}.png"
    ids = voc.read_mask(path)
    assert ids.dtype == np.uint8 and ids.ndim == 2
    assert set(np.unique(ids).tolist()) <= set(range(21)) | {255}
    # The palette maps each id to the colour a viewer (and cv2.imread) shows.
    bgr = cv2.imread(str(path))
    assert np.array_equal(palette.lut()[ids], bgr[..., ::-1])
    assert not np.array_equal(bgr[..., 0], ids)


def test_read_mask_rejects_16_bit(tmp_path: Path) -> None:
    Image.fromarray(np.full((3, 3), 300, np.uint16)).save(tmp_path / "m16.png")
    with pytest.raises(DatasetError, match=r"m16\.png.*8-bit palette"):
        voc.read_mask(tmp_path / "m16.png")


def test_save_mask_roundtrip(tmp_path: Path) -> None:
    mask = np.array([[0, 1, 20], [255, 15, 0]], np.uint8)
    path = voc.save_mask(mask, tmp_path / "m.png")
    with Image.open(path) as img:
        assert img.mode == "P"
        assert img.getpalette()[15 * 3 : 16 * 3] == voc.PALETTE[15]
    assert np.array_equal(voc.read_mask(path), mask)


def test_check_dataset_counts(demo_root: Path) -> None:
    before = snapshot(demo_root)
    summary = voc.check_dataset(demo_root, splits=("train", "val", "trainval"))
    assert summary.n_images == len(list((demo_root / voc.IMAGE_DIR).glob("*.jpg")))
    assert summary.n_masks == len(list((demo_root / voc.MASK_DIR).glob("*.png")))
    assert summary.n_images > summary.n_masks  # like VOC: not every JPEG is annotated
    train, val = (len(voc.split_ids(demo_root, s)) for s in ("train", "val"))
    assert summary.splits == {"train": train, "val": val, "trainval": train + val}
    assert summary.table().loc["ids in val.txt", "count"] == val
    assert snapshot(demo_root) == before


def test_missing_root(tmp_path: Path) -> None:
    check_fails(tmp_path / "nowhere", "nowhere", "root not found", "VOC_ROOT")


def _add_blank_line(path: Path) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], "", *lines[2:]]) + "\n")  # line 3 is blank


SPLIT_PROBLEMS = {  # how to break val.txt: what every entry point must say about it
    "missing": (Path.unlink, r"val\.txt: split file not found"),
    "blank line": (_add_blank_line, r"val\.txt, line 3: blank line"),
}


@pytest.mark.parametrize("problem", list(SPLIT_PROBLEMS))
@pytest.mark.parametrize("entry", ["check_dataset", "build_config", "train"])
def test_split_file_problems_are_named_by_every_entry_point(entry: str, problem: str,
                                                           copy_root: Path, tmp_path: Path):
    """The dataset check, the config builder and training all name the split file (and the
    line), instead of mmseg's assert or a missing ``JPEGImages/.jpg`` deep in a data loader."""
    from helpers.config import build_config
    from helpers.train import train

    cfg = build_config("smoke", copy_root, tmp_path / "wd", **{"train_cfg.max_iters": 1})
    breaks, says = SPLIT_PROBLEMS[problem]
    breaks(voc.split_file(copy_root, "val"))
    run = {"check_dataset": lambda: voc.check_dataset(copy_root, workers=1),
           "build_config": lambda: build_config("smoke", copy_root, tmp_path / "wd2"),
           "train": lambda: train(cfg)}[entry]
    with pytest.raises(DatasetError, match=says):
        run()
    assert not (tmp_path / "wd").exists()  # training stopped before it started


def test_empty_split(copy_root: Path) -> None:
    voc.split_file(copy_root, "train").write_text("\n")
    check_fails(copy_root, "train.txt", "empty")


def test_id_without_image(copy_root: Path) -> None:
    image_id = first_id(copy_root, "val")
    (copy_root / voc.IMAGE_DIR / f"{image_id}.jpg").unlink()
    check_fails(copy_root, f"{image_id}.jpg", "missing", "drop the id")


def test_id_without_mask(copy_root: Path) -> None:
    image_id = first_id(copy_root)
    (copy_root / voc.MASK_DIR / f"{image_id}.png").unlink()
    check_fails(copy_root, f"{image_id}.png", "missing")


def test_truncated_jpeg(copy_root: Path) -> None:
    image_id = first_id(copy_root)
    path = copy_root / voc.IMAGE_DIR / f"{image_id}.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    check_fails(copy_root, f"{image_id}.jpg", "cannot decode", "re-download")


def test_binary_mask_with_255_foreground_is_reported(copy_root: Path) -> None:
    """A black-and-white mask (0 background, 255 object) would be read as all void."""
    image_id = first_id(copy_root)
    path = copy_root / voc.MASK_DIR / f"{image_id}.png"
    objects = (voc.read_mask(path) > 0) & (voc.read_mask(path) < 255)
    Image.fromarray(np.where(objects, 255, 0).astype(np.uint8), mode="L").save(path)
    check_fails(copy_root, f"{image_id}.png", "L-mode", "only 0 and 255", "void")
    ids = np.where(objects, 15, 0).astype(np.uint8)  # the same mask holding a class id is fine
    Image.fromarray(ids, mode="L").save(path)
    np.testing.assert_array_equal(voc.read_mask(path), ids)


def test_rgb_mask_and_its_conversion(copy_root: Path, tmp_path: Path) -> None:
    image_id = first_id(copy_root)
    path = copy_root / voc.MASK_DIR / f"{image_id}.png"
    ids = voc.read_mask(path)
    Image.fromarray(palette.lut()[ids]).save(path)  # what a careless export writes
    check_fails(copy_root, f"{image_id}.png", "RGB", "convert_rgb_masks")
    with pytest.raises(DatasetError, match="RGB"):
        voc.read_mask(path)

    src = copy_root / voc.MASK_DIR
    before = snapshot(src)
    out = voc.convert_rgb_masks(src, tmp_path / "converted")
    assert snapshot(src) == before
    assert np.array_equal(voc.read_mask(out / path.name), ids)
    other = sorted(src.glob("*.png"))[1]
    assert np.array_equal(voc.read_mask(out / other.name), voc.read_mask(other))
    with pytest.raises(DatasetError, match="new folder"):
        voc.convert_rgb_masks(src, src)
    with pytest.raises(DatasetError, match="not empty"):
        voc.convert_rgb_masks(src, out)


def test_convert_rejects_foreign_colours(tmp_path: Path) -> None:
    src = tmp_path / "rgb"
    src.mkdir()
    Image.fromarray(np.full((4, 4, 3), 77, np.uint8)).save(src / "x.png")
    with pytest.raises(DatasetError, match=r"x\.png.*\(77, 77, 77\)"):
        voc.convert_rgb_masks(src, tmp_path / "out")


def test_label_out_of_range(copy_root: Path) -> None:
    image_id = first_id(copy_root)
    path = copy_root / voc.MASK_DIR / f"{image_id}.png"
    ids = voc.read_mask(path)
    ids[:3, :3] = 42
    voc.save_mask(ids, path)
    check_fails(copy_root, f"{image_id}.png", "[42]", "outside 0-20")


def test_size_mismatch(copy_root: Path) -> None:
    image_id = first_id(copy_root, "val")
    path = copy_root / voc.MASK_DIR / f"{image_id}.png"
    ids = voc.read_mask(path)
    voc.save_mask(ids[:-10, :-7], path)
    message = check_fails(copy_root, f"{image_id}.png", "match its image")
    assert f"{ids.shape[1] - 7}x{ids.shape[0] - 10}" in message


def test_problems_are_collected_over_processes(copy_root: Path) -> None:
    ids = voc.split_ids(copy_root, "train")[:2]
    for image_id in ids:
        (copy_root / voc.MASK_DIR / f"{image_id}.png").unlink()
    with pytest.raises(DatasetError, match="2 problem") as info:
        voc.check_dataset(copy_root, workers=2)
    assert all(f"{i}.png" in str(info.value) for i in ids)


def test_split_ids(demo_root: Path) -> None:
    lines = voc.split_file(demo_root, "train").read_text().split()
    assert voc.split_ids(demo_root, "train") == lines
    with pytest.raises(DatasetError, match="aug.txt"):
        voc.split_ids(demo_root, "aug")


def test_scan_and_class_statistics(demo_root: Path) -> None:
    scan = voc_stats.scan_masks(demo_root, "train", workers=1)
    ids = voc.split_ids(demo_root, "train")
    assert scan["id"].tolist() == ids
    names = [*voc.CLASSES, "void"]
    # Recount three masks independently.
    for row in scan.head(3).itertuples(index=False):
        mask = np.array(Image.open(demo_root / voc.MASK_DIR / f"{row.id}.png"))
        assert (row.height, row.width) == mask.shape
        assert row.person == int((mask == 15).sum())
        assert row.void == int((mask == 255).sum())
    assert (scan[names].sum(axis=1) == scan["height"] * scan["width"]).all()

    stats = voc_stats.class_statistics(scan)
    assert list(stats.index) == names
    assert stats["pixel_share_%"].sum() == pytest.approx(100)
    assert stats.loc["person", "images"] == (scan["person"] > 0).sum()
    assert stats.loc["sheep", "images"] == 0  # not drawn by the demo generator

    parallel = voc_stats.scan_masks(demo_root, "train", workers=2)
    assert parallel.equals(scan)


def test_voc_dataset_is_mmseg(demo_root: Path) -> None:
    from mmseg.datasets import PascalVOCDataset

    dataset = voc.voc_dataset(demo_root, "val")
    assert isinstance(dataset, PascalVOCDataset)
    assert len(dataset) == len(voc.split_ids(demo_root, "val"))
    info = dataset.get_data_info(0)
    assert Path(info["img_path"]).is_file() and Path(info["seg_map_path"]).is_file()
