"""The three command lines (python -m helpers.predict, python -m helpers.onnx, python -m
helpers.deploy) on bad input: one true line on stderr, a non-zero status, no traceback, nothing
written; and none of them replaces an existing output without --force."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from helpers import deploy
from helpers import predict as predict_module
from helpers.checkpoint import init_model
from helpers.config import build_config, save_config
from helpers.onnx import export_onnx
from helpers.onnx.export import main as export_cli
from helpers.voc import IMAGE_DIR, split_ids

REPO = Path(__file__).resolve().parents[1]


class _CreateFile:
    """Pickles as `open(path, "w")`: loading the pickle creates `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.fixture(scope="module")
def work(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A smoke config, its random-weight checkpoint, bad checkpoints, and one input image."""
    tmp = tmp_path_factory.mktemp("cli")
    config = save_config(build_config("smoke", demo_root, tmp / "wd"), tmp / "smoke.py")
    torch.manual_seed(0)
    good = tmp / "good.pth"
    torch.save({"state_dict": init_model(config).state_dict()}, good)
    twenty = tmp / "twenty_classes.pth"  # the homework's mistake: a 20-class head
    cfg20 = build_config("smoke", demo_root, tmp / "wd20", **{
        "model.decode_head.num_classes": 20, "model.auxiliary_head.num_classes": 20})
    torch.save({"state_dict": init_model(cfg20).state_dict(), "meta": {}}, twenty)
    page = tmp / "page.pth"  # what a failed download saves
    page.write_text("<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n")
    evil = tmp / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"x": _CreateFile(tmp / "pwned.txt")}}, evil)
    images = tmp / "images"
    images.mkdir()
    shutil.copy(demo_root / IMAGE_DIR / f"{split_ids(demo_root, 'val')[0]}.jpg", images)
    return dict(config=config, good=good, twenty=twenty, page=page, evil=evil, images=images,
                pwned=tmp / "pwned.txt")


BAD_CHECKPOINTS = {  # fixture key: what the one line must say
    "page": r"page\.pth is an HTML/XML page, not a checkpoint",
    "evil": r"evil\.pth: REFUSED to load .*\(io\.open\)\. Nothing from it was executed",
    "twenty": r"twenty_classes\.pth predicts 20 classes, but the config builds a model with 21",
}


def _command(which: str, work: dict[str, Path], checkpoint: Path, out: Path) -> list[str]:
    common = ["--config", str(work["config"]), "--checkpoint", str(checkpoint)]
    if which == "predict":
        return ["-m", "helpers.predict", *common, "--input", str(work["images"]),
                "--out", str(out)]
    return ["-m", "helpers.onnx", *common, "--out", str(out / "model.onnx"), "--size", "64", "64"]


@pytest.mark.parametrize("bad", list(BAD_CHECKPOINTS))
@pytest.mark.parametrize("which", ["predict", "export"])
def test_bad_checkpoint_gets_one_line_and_status_2(which: str, bad: str, work, tmp_path: Path):
    """Each command, in a fresh interpreter, on an HTML page saved as .pth, a pickle that would
    run code, and a checkpoint with another class count."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, *_command(which, work, work[bad], out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr  # the
    assert re.search(BAD_CHECKPOINTS[bad], errors[0]), errors[0]  # rest: mmseg's own warnings
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not work["pwned"].exists()  # the payload never ran
    assert not out.exists()  # nothing written


def _onnx_with(path: Path, source: Path, drop: str = "", change: dict | None = None) -> Path:
    model = onnx.load(str(source))
    meta = {p.key: p.value for p in model.metadata_props if p.key != drop} | (change or {})
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, meta)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def small_onnx(work, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random-weight smoke model exported for deployment (pre/postprocessing in the graph)."""
    model = init_model(work["config"], work["good"])
    out = tmp_path_factory.mktemp("cli_onnx") / "deploy.onnx"
    return export_onnx(model, out, preprocess=True, postprocess=True,
                       verify_sizes=[(64, 80)]).path


def test_deploy_bad_model_files(small_onnx: Path, work, tmp_path: Path) -> None:
    page = tmp_path / "page.onnx"
    page.write_text("<html><body>Access denied</body></html>")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    cases = {
        page: r"page\.onnx is an HTML/XML page",
        empty: r"empty\.onnx is empty",
        _onnx_with(tmp_path / "no_mean.onnx", small_onnx, drop="mean"):
            r"no_mean\.onnx: incomplete course metadata, mean missing",
        _onnx_with(tmp_path / "bad_json.onnx", small_onnx, change={"std": "[1, 2"}):
            r"bad_json\.onnx: unreadable course metadata",
        _onnx_with(tmp_path / "odd_format.onnx", small_onnx, change={"input_format": "nchw"}):
            r"odd_format\.onnx: metadata does not describe a usable model .*input_format 'nchw'",
        _onnx_with(tmp_path / "no_palette.onnx", small_onnx, change={"palette": "[]"}):
            r"no_palette\.onnx: its metadata has 0 palette colours",
    }
    image = next(work["images"].iterdir())
    for model, says in cases.items():
        out = tmp_path / f"out_{model.stem}"
        proc = subprocess.run([sys.executable, "-m", "helpers.deploy", "--model", str(model),
                               "--image", str(image), "--out", str(out)], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, (model, proc.stderr)
        assert re.search(says, lines[0]), lines[0]
        assert "Traceback" not in proc.stderr and not out.exists()


def test_deploy_rejects_empty_images(small_onnx: Path) -> None:
    session = deploy.make_session(small_onnx)
    for shape in ((0, 0, 3), (0, 64, 3), (64, 0, 3)):
        with pytest.raises(deploy.DeployError, match=r"the image is empty \(\d+x\d+ pixels\)"):
            deploy.segment(session, np.zeros(shape, np.uint8))


# --------------------------------------------------------------------------------------------
# existing outputs
# --------------------------------------------------------------------------------------------
def test_export_cli_replaces_an_existing_file_only_with_force(work, tmp_path: Path, capsys):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"an earlier export")
    args = ["--config", str(work["config"]), "--checkpoint", str(work["good"]), "--out",
            str(out), "--size", "64", "64"]
    assert export_cli(args) == 2
    assert "model.onnx already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier export"
    int8 = tmp_path / "model.int8.onnx"  # --int8 writes a second file: checked before any work
    out.unlink()
    int8.write_bytes(b"an earlier int8 model")
    assert export_cli([*args, "--int8", "--calib", str(work["images"])]) == 2
    assert "model.int8.onnx already exists" in capsys.readouterr().err
    assert not out.exists() and int8.read_bytes() == b"an earlier int8 model"
    out.write_bytes(b"an earlier export")
    assert export_cli([*args, "--force"]) == 0
    assert deploy.make_session(out).get_inputs()[0].shape == [1, 3, 64, 64]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.int8.onnx", "model.onnx"]


def test_deploy_cli_replaces_outputs_only_with_force(small_onnx: Path, work, tmp_path: Path,
                                                     capsys) -> None:
    image = next(work["images"].iterdir())
    args = ["--model", str(small_onnx), "--image", str(image), "--out", str(tmp_path)]
    assert deploy.main(args) == 0
    mask = tmp_path / f"{image.stem}_mask.png"
    first = mask.read_bytes()
    mask.write_bytes(b"edited by hand")
    assert deploy.main(args) == 2
    assert f"{image.stem}_mask.png already exists" in capsys.readouterr().err
    assert mask.read_bytes() == b"edited by hand"
    assert deploy.main([*args, "--force"]) == 0
    assert mask.read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{image.stem}_mask.png",
                                                          f"{image.stem}_overlay.png"]


def test_predict_cli_replaces_outputs_only_with_force(work, tmp_path: Path, capsys) -> None:
    args = ["--config", str(work["config"]), "--checkpoint", str(work["good"]),
            "--input", str(work["images"]), "--out", str(tmp_path / "pred")]
    assert predict_module.main(args) == 0
    overlay = next((tmp_path / "pred" / "overlays").iterdir())
    Image.new("RGB", (3, 3)).save(overlay)
    assert predict_module.main(args) == 2
    assert "already exists" in capsys.readouterr().err
    with Image.open(overlay) as img:
        assert img.size == (3, 3)  # untouched
    assert predict_module.main([*args, "--force"]) == 0
    with Image.open(overlay) as img:
        assert img.size != (3, 3)
    leftovers = [p for p in (tmp_path / "pred").rglob("*") if ".partial" in p.name]
    assert leftovers == []
