"""helpers.predict: safe model loading, overlays, palette masks and the batch-prediction command;
each image decoded once, upright; outputs never collide, never land in a dataset.

Bad checkpoints on the command line: tests/test_command_lines.py."""

from __future__ import annotations

import copy
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from mmseg.apis import inference_model, show_result_pyplot
from PIL import Image

from helpers.checkpoint import init_model
from helpers.palette import lut, overlay
from helpers.predict import (
    EXIT_SKIPPED,
    find_voc_root,
    main,
    output_names,
    pred_mask,
    predict_images,
)
from helpers.voc import PALETTE, read_mask, split_ids


def _tree(root: Path) -> dict[str, int]:
    """Every file under `root` with its size: the dataset must look the same after each test."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def val_images(demo_root: Path, tmp_path_factory) -> Path:
    """A folder (outside the dataset) with copies of three validation images."""
    folder = tmp_path_factory.mktemp("val_images")
    for image_id in split_ids(demo_root, "val")[:3]:
        shutil.copy(demo_root / "JPEGImages" / f"{image_id}.jpg", folder)
    return folder


def test_init_model_and_inference(trained_smoke, demo_root):
    model = init_model(trained_smoke.config_path, trained_smoke.checkpoint, device="cpu")
    assert model.decode_head.num_classes == 21
    image_id = split_ids(demo_root, "val")[0]
    result = inference_model(model, str(demo_root / "JPEGImages" / f"{image_id}.jpg"))
    mask = pred_mask(result)
    gt = read_mask(demo_root / "SegmentationClass" / f"{image_id}.png")
    assert mask.dtype == np.uint8 and mask.shape == gt.shape
    # a trained model, not random weights: most labelled pixels right on a validation image
    valid = gt != 255
    assert (mask[valid] == gt[valid]).mean() > 0.5


def test_overlay_is_mmseg_blend(trained_smoke, demo_root):
    """The course's overlay of a real prediction equals show_result_pyplot's drawing."""
    model = init_model(trained_smoke.config_path, trained_smoke.checkpoint, device="cpu")
    image_id = split_ids(demo_root, "val")[1]
    path = str(demo_root / "JPEGImages" / f"{image_id}.jpg")
    result = inference_model(model, path)
    image = np.array(Image.open(path).convert("RGB"))
    mask = pred_mask(result)
    for opacity in (0.3, 0.8):
        drawn = overlay(image, mask, opacity)
        rule = (image * (1 - opacity) + lut()[mask] * opacity).astype(np.uint8)
        np.testing.assert_array_equal(drawn, rule)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # show_result_pyplot warns: no save_dir backend
            mmseg_img = show_result_pyplot(model, image, result, opacity=opacity, show=False,
                                           draw_gt=False, with_labels=False)
        np.testing.assert_array_equal(drawn, mmseg_img)


def test_cli_writes_palette_masks_and_overlays(trained_smoke, val_images, tmp_path):
    out = tmp_path / "pred"
    status = main(["--config", str(trained_smoke.config_path), "--checkpoint",
                   str(trained_smoke.checkpoint), "--input", str(val_images), "--out", str(out)])
    assert status == 0
    images = sorted(val_images.glob("*.jpg"))
    model = init_model(trained_smoke.config_path, trained_smoke.checkpoint, device="cpu")
    for path in images:
        mask_png = out / "masks" / f"{path.stem}.png"
        with Image.open(mask_png) as img:
            assert img.mode == "P"
            assert np.array(img.getpalette()[: 3 * 21]).reshape(21, 3).tolist() == PALETTE
        expected = pred_mask(inference_model(model, str(path)))
        np.testing.assert_array_equal(read_mask(mask_png), expected)
        with Image.open(out / "overlays" / f"{path.stem}.png") as over:
            assert over.mode == "RGB" and over.size == (expected.shape[1], expected.shape[0])


def test_unreadable_image_is_named_and_others_processed(trained_smoke, val_images, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(val_images, folder)
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    whole = sorted(val_images.glob("*.jpg"))[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    good = sorted(p.stem for p in val_images.glob("*.jpg"))
    model = init_model(trained_smoke.config_path, trained_smoke.checkpoint, device="cpu")
    with pytest.warns(UserWarning) as caught:
        report = predict_images(model, sorted(folder.glob("*.jpg")), tmp_path / "a")
    messages = " ".join(str(w.message) for w in caught)
    assert "broken.jpg" in messages and "truncated.jpg" in messages
    assert set(report.skipped) == {folder / "broken.jpg", folder / "truncated.jpg"}
    assert sorted(p.stem for p in report.masks) == good

    out = tmp_path / "b"
    with pytest.warns(UserWarning, match="broken.jpg"):
        status = main(["--config", str(trained_smoke.config_path), "--checkpoint",
                       str(trained_smoke.checkpoint), "--input", str(folder), "--out", str(out)])
    assert status == EXIT_SKIPPED
    assert sorted(p.stem for p in (out / "masks").glob("*.png")) == good


def test_cli_refuses_output_inside_dataset(trained_smoke, demo_root, val_images, capsys):
    before = _tree(demo_root)
    for out in (demo_root / "predictions", demo_root / "JPEGImages" / "pred", demo_root):
        status = main(["--config", str(trained_smoke.config_path), "--checkpoint",
                       str(trained_smoke.checkpoint), "--input", str(val_images),
                       "--out", str(out)])
        assert status == 2
        assert "inside the dataset root" in capsys.readouterr().err
    # input inside the dataset, output inside it too: refused as well
    status = main(["--config", str(trained_smoke.config_path), "--checkpoint",
                   str(trained_smoke.checkpoint), "--input", str(demo_root / "JPEGImages"),
                   "--out", str(demo_root / "ImageSets" / "pred")])
    assert status == 2
    assert _tree(demo_root) == before
    assert find_voc_root(demo_root / "JPEGImages") == demo_root.resolve()
    assert find_voc_root(val_images) is None


def test_cli_missing_checkpoint_exit_status(trained_smoke, val_images, tmp_path, capsys):
    status = main(["--config", str(trained_smoke.config_path), "--checkpoint",
                   str(tmp_path / "missing.pth"), "--input", str(val_images),
                   "--out", str(tmp_path / "out")])
    message = capsys.readouterr().err
    assert status == 2 and "missing.pth" in message and "not found" in message
    assert "notebook 03" in message
    assert not (tmp_path / "out").exists()


def test_cli_runs_as_a_module(trained_smoke, val_images, tmp_path):
    """The documented command line, in a fresh interpreter, on a single image."""
    import subprocess
    import sys

    image = sorted(val_images.glob("*.jpg"))[0]
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.predict", "--config", str(trained_smoke.config_path),
         "--checkpoint", str(trained_smoke.checkpoint), "--input", str(image),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "masks" / f"{image.stem}.png").is_file()
    assert (tmp_path / "out" / "overlays" / f"{image.stem}.png").is_file()


@pytest.fixture(scope="module")
def model(trained_smoke):
    return init_model(trained_smoke.config_path, trained_smoke.checkpoint, device="cpu")


def test_images_sharing_a_stem_get_distinct_outputs(model, val_images, tmp_path):
    first, second = sorted(val_images.glob("*.jpg"))[:2]
    inputs = tmp_path / "in"
    (inputs / "other").mkdir(parents=True)
    shutil.copy(first, inputs / "a.jpg")
    Image.open(second).save(inputs / "a.png")  # same stem, another picture
    shutil.copy(second, inputs / "other" / "a.jpg")  # same name, another folder
    paths = [inputs / "a.jpg", inputs / "a.png", inputs / "other" / "a.jpg"]
    report = predict_images(model, paths, tmp_path / "out")
    assert [p.name for p in report.masks] == ["a_jpg.png", "a_png.png", "a_jpg_2.png"]
    assert len(set(report.overlays)) == 3
    for path, mask in zip(paths, report.masks, strict=True):  # each file is its own image's
        expected = pred_mask(inference_model(model, str(path)))
        np.testing.assert_array_equal(read_mask(mask), expected)
    assert output_names([inputs / "a.jpg", inputs / "b.jpg"]) == {
        inputs / "a.jpg": "a", inputs / "b.jpg": "b"}  # unique stems are kept as they are


def test_predict_images_refuses_a_folder_inside_the_dataset(model, demo_root, val_images):
    before = _tree(demo_root)
    images = sorted(val_images.glob("*.jpg"))
    for out in (demo_root / "predictions", demo_root / "SegmentationClass"):
        with pytest.raises(ValueError, match="inside the dataset root"):
            predict_images(model, images, out)
    assert _tree(demo_root) == before


def test_existing_outputs_are_kept_unless_overwrite(model, val_images, tmp_path):
    images = sorted(val_images.glob("*.jpg"))[:1]
    report = predict_images(model, images, tmp_path)
    report.masks[0].write_bytes(b"kept")
    with pytest.raises(FileExistsError, match=f"{images[0].stem}.png already exists.*--force"):
        predict_images(model, images, tmp_path, overwrite=False)
    assert report.masks[0].read_bytes() == b"kept"
    predict_images(model, images, tmp_path)  # the default (notebooks run twice) replaces
    assert read_mask(report.masks[0]).shape == Image.open(images[0]).size[::-1]


def test_phone_photo_is_upright_in_mask_and_overlay(model, phone_photo, tmp_path):
    """A photo stored sideways with an EXIF orientation: the mask and the overlay are both
    upright, as OpenCV (and so mmseg's own loading) shows the photo."""
    import cv2

    phone, upright = phone_photo
    shown = cv2.imread(str(phone))[..., ::-1]  # what OpenCV decodes: upright
    assert shown.shape == upright.shape
    report = predict_images(model, [phone], tmp_path / "out")
    mask = read_mask(report.masks[0])
    np.testing.assert_array_equal(mask, pred_mask(inference_model(model, str(phone))))
    with Image.open(report.overlays[0]) as drawn:
        np.testing.assert_array_equal(np.array(drawn), overlay(shown, mask, 0.5))


def test_each_image_is_decoded_once(model, val_images, tmp_path, monkeypatch):
    """predict hands mmseg the decoded array: neither mmcv nor OpenCV decodes the file again;
    and the model's own pipeline is left as it was for later inference_model calls."""
    import mmcv

    pipeline = copy.deepcopy(model.cfg.test_pipeline)
    opened = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        opened.append(Path(fp).name)
        return real_open(fp, *args, **kwargs)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the image was decoded a second time")

    monkeypatch.setattr(mmcv, "imfrombytes", no_decoding)
    monkeypatch.setattr(mmcv, "imread", no_decoding)
    monkeypatch.setattr(Image, "open", counting_open)
    images = sorted(val_images.glob("*.jpg"))
    report = predict_images(model, images, tmp_path)
    assert len(report.masks) == len(images) and sorted(opened) == [p.name for p in images]
    monkeypatch.undo()
    assert model.cfg.test_pipeline == pipeline
    assert pred_mask(inference_model(model, str(images[0]))).shape == read_mask(
        report.masks[0]).shape
