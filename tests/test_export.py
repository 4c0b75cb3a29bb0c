"""helpers.onnx: exact pooling, export + verification, refusal of bad exports, INT8, CLI."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import deploy
from helpers.checkpoint import init_model
from helpers.evaluate import compare_miou
from helpers.onnx import (
    VERIFY_SIZES,
    ExactAdaptiveAvgPool2d,
    ExportError,
    SegmentorGraph,
    adaptive_pool_matrix,
    calibration_images,
    exact_adaptive_pooling,
    export_onnx,
    min_input_side,
    output_stride,
    quantize_int8,
    torchscript_dump_hidden,
    verify_onnx,
)
from helpers.onnx.export import main as export_cli
from helpers.palette import overlay


# --------------------------------------------------------------------------------------------
# fixtures: a small randomly initialised PSPNet (the smoke preset's model) and its exports
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_config(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from helpers.config import build_config, save_config

    out = tmp_path_factory.mktemp("export_cfg")
    return save_config(build_config("smoke", demo_root, out / "work"), out / "smoke.py")


@pytest.fixture(scope="module")
def random_model(smoke_config: Path) -> nn.Module:
    """The smoke preset's slim PSPNet R18-D8 with random weights (BN statistics randomised)."""
    from mmseg.apis import init_model

    torch.manual_seed(0)
    model = init_model(str(smoke_config), None, device="cpu")
    for m in model.modules():  # non-trivial BN statistics, so that folding them is exercised
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def dynamic_export(random_model: nn.Module, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("dyn") / "pspnet_dynamic.onnx"
    return export_onnx(random_model, out)


# --------------------------------------------------------------------------------------------
# exact adaptive pooling
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bins", [1, 2, 3, 6, (2, 5), (None, 3)])
def test_exact_pool_equals_adaptive_avg_pool2d(bins) -> None:
    gen = torch.Generator().manual_seed(0)
    pool = ExactAdaptiveAvgPool2d(bins)
    for height in [1, 2, 5, 6, 7, 13, 32, 33, 47, 48, 63, 64]:
        for width in [1, 3, 6, 11, 32, 41, 64, 65]:
            x = torch.randn(2, 3, height, width, generator=gen)
            expected = F.adaptive_avg_pool2d(x, bins)
            got = pool(x)
            assert got.shape == expected.shape
            torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_pool_matrix_rows_are_pytorch_bins() -> None:
    # 10 pixels into 3 bins: [0,4), [3,7), [6,10) -> overlapping bins, as PyTorch defines them
    m = adaptive_pool_matrix(10, 3, torch.float64)
    assert (m > 0).sum(dim=1).tolist() == [4, 4, 4]
    assert m[1, 3] > 0 and m[1, 6] > 0 and m[1, 2] == 0 and m[1, 7] == 0
    torch.testing.assert_close(m.sum(dim=1), torch.ones(3, dtype=torch.float64))


def test_swap_is_temporary(random_model: nn.Module) -> None:
    originals = [m for m in random_model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    assert len(originals) == 4  # PPM bins 1, 2, 3, 6
    with exact_adaptive_pooling(random_model):
        assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in random_model.modules())
        assert sum(isinstance(m, ExactAdaptiveAvgPool2d) for m in random_model.modules()) == 4
    assert [m for m in random_model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)] == originals
    with pytest.raises(RuntimeError, match="boom"), exact_adaptive_pooling(random_model):
        raise RuntimeError("boom")
    assert [m for m in random_model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)] == originals


# --------------------------------------------------------------------------------------------
# export + verification
# --------------------------------------------------------------------------------------------
def test_dynamic_export_is_exact_at_any_size(dynamic_export, random_model: nn.Module) -> None:
    report = dynamic_export
    assert report.passed, str(report)
    assert report.checker_ok and report.dynamic
    sizes = {(c.height, c.width) for c in report.checks}
    assert sizes == set(VERIFY_SIZES)
    for check in report.checks:
        assert check.max_abs_diff <= 1e-4 and check.agreement >= 0.9999
    # self-contained: no external data file, weights inside
    model = onnx.load(str(report.path))
    assert not list(report.path.parent.glob("*.data"))
    assert sum(t.ByteSize() for t in model.graph.initializer) > 1e6
    # sizes not used during export or verification, batch 3, a portrait side of 41 (minimum)
    checks = verify_onnx(random_model, report.path, [(41, 77), (150, 97)], batch=3)
    assert all(c.passed for c in checks), checks


def test_unpatched_dynamic_export_is_refused(random_model: nn.Module, tmp_path: Path) -> None:
    """Without the pooling swap the dynamic graph is wrong; verification must catch it."""
    out = tmp_path / "wrong.onnx"
    with pytest.raises(ExportError, match="failed verification") as info:
        export_onnx(random_model, out, verify_sizes=[(256, 320), (375, 500)],
                           exact_pooling=False)
    assert not info.value.report.passed
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no partial file left behind either


def test_static_export_and_minimum_size(random_model: nn.Module, tmp_path: Path) -> None:
    assert output_stride(random_model) == 8
    assert min_input_side(random_model) == 41  # 8 * (6 - 1) + 1
    with pytest.raises(ExportError, match=r"40x96 is too small.*>= 41"):
        export_onnx(random_model, tmp_path / "small.onnx", size=(40, 96))
    assert not (tmp_path / "small.onnx").exists()
    report = export_onnx(random_model, tmp_path / "static.onnx", size=(96, 136))
    assert report.passed and not report.dynamic
    dims = [d.dim_value for d in onnx.load(str(report.path)).graph.input[0].type.tensor_type
            .shape.dim]
    assert dims == [1, 3, 96, 136]


def _legacy_export(model: nn.Module, size: int) -> str:
    """Notebook 05's homework export: the TorchScript exporter, its dump hidden, the error."""
    try:
        with torchscript_dump_hidden(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(SegmentorGraph(model).eval(), (torch.zeros(1, 3, size, size),),
                              io.BytesIO(), dynamo=False)
    except Exception as err:
        return str(err)
    return ""


def test_homework_error_reproduced_with_the_dump_hidden(random_model: nn.Module,
                                                         capfd: pytest.CaptureFixture) -> None:
    """The TorchScript exporter fails at 256 (32-px feature map, bins 3 and 6) as in the
    homework (mmseg issue #1310), and works at 288 (36 = 6 x 6); its graph dump stays hidden."""
    capfd.readouterr()
    error = _legacy_export(random_model, 256)
    assert "adaptive_avg_pool2d, output size that are not factor of input size" in error
    shown = capfd.readouterr()
    assert "Torch IR graph" not in shown.out + shown.err
    assert _legacy_export(random_model, 288) == ""


def test_mmcv_rescale_is_reproduced_by_deploy() -> None:
    import mmcv

    rng = np.random.default_rng(0)
    for _ in range(200):
        w, h = (int(v) for v in rng.integers(20, 1200, size=2))
        scale = (int(rng.integers(200, 2100)), int(rng.integers(100, 600)))
        assert deploy.rescale_size(w, h, scale) == mmcv.rescale_size((w, h), scale)
    image = rng.integers(0, 256, (123, 77, 3), dtype=np.uint8)
    expected = mmcv.imrescale(image, (256, 128), interpolation="bilinear")
    info = deploy.ModelInfo((), (), "nhwc_bgr_uint8", (), (), True, True,
                            dict(scale=[256, 128], keep_ratio=True), 41, (None, None))
    np.testing.assert_array_equal(deploy.prepare_image(image, info), expected)


# --------------------------------------------------------------------------------------------
# the trained model: CLI export, deployment identical to mmseg, INT8
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deploy_onnx(trained_smoke, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "pspnet_deploy.onnx"
    code = export_cli(["--config", str(trained_smoke.config_path), "--checkpoint",
                        str(trained_smoke.checkpoint), "--out", str(out), "--dynamic",
                        "--deploy"])
    assert code == 0
    return out


def test_cli_export_writes_verified_deploy_graph(deploy_onnx: Path) -> None:
    assert deploy_onnx.is_file()
    meta = {p.key: p.value for p in onnx.load(str(deploy_onnx)).metadata_props}
    assert meta["input_format"] == "nhwc_bgr_uint8" and meta["postprocess"] == "true"


def test_deploy_matches_mmseg_inference(deploy_onnx: Path, trained_smoke) -> None:
    """ORT deployment (no torch) gives the same masks and overlays as mmseg's inference_model."""
    from mmseg.apis import inference_model

    from helpers.voc import split_ids

    model = init_model(trained_smoke.config_path, trained_smoke.checkpoint).eval()
    session = deploy.make_session(deploy_onnx)
    root = trained_smoke.voc_root
    for image_id in split_ids(root, "val")[:4]:
        path = root / "JPEGImages" / f"{image_id}.jpg"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        expected = inference_model(model, str(path)).pred_sem_seg.data[0].numpy()
        mask, over = deploy.segment_file(deploy_onnx, path)
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, expected)
        np.testing.assert_array_equal(deploy.segment(session, image), expected)
        # the palette stored in the graph draws the same overlay as mmseg's (notebook 04)
        rgb = image[..., ::-1].copy()
        np.testing.assert_array_equal(over, overlay(rgb, expected.astype(np.uint8)))


def test_int8_close_to_fp32(deploy_onnx: Path, trained_smoke, tmp_path: Path) -> None:
    images = calibration_images(trained_smoke.voc_root / "JPEGImages", limit=8)
    int8 = quantize_int8(deploy_onnx, tmp_path / "int8.onnx", images)
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    model = init_model(trained_smoke.config_path, trained_smoke.checkpoint).eval()
    scores = compare_miou(model, {"fp32": deploy_onnx, "int8": int8})
    assert abs(scores["fp32"]["mIoU"] - scores["PyTorch"]["mIoU"]) < 0.01
    assert scores["int8"]["mIoU"] >= scores["fp32"]["mIoU"] - 1.0, scores


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------
def test_interrupted_export_leaves_nothing_behind(random_model: nn.Module, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during verification: no temporary graph is left, an earlier file is kept."""
    out = tmp_path / "model.onnx"
    out.write_bytes(b"an earlier export")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("helpers.onnx.export.verify_onnx", interrupt)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(random_model, out, size=(64, 64))
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    assert out.read_bytes() == b"an earlier export"


def test_cli_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = export_cli(["--config", str(tmp_path / "nope.py"), "--checkpoint",
                        str(tmp_path / "nope.pth"), "--out", str(tmp_path / "x.onnx")])
    assert code == 2  # bad input; 1 is kept for a graph that fails verification
    assert re.search(r"config file .*nope\.py not found", capsys.readouterr().err)
    with pytest.raises(SystemExit):
        export_cli(["--config", "a", "--checkpoint", "b", "--out", "c", "--int8"])
