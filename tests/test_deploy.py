"""helpers.deploy: ONNX Runtime deployment without torch or mmseg, and its input checks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from helpers import deploy
from helpers.deploy import DeployError


@pytest.fixture(scope="module")
def graphs(trained_smoke, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trained smoke model exported twice: with pre/postprocessing in the graph, and raw."""
    from helpers.checkpoint import init_model
    from helpers.onnx import export_onnx

    model = init_model(trained_smoke.config_path, trained_smoke.checkpoint).eval()
    out = tmp_path_factory.mktemp("deploy")
    sizes = [(128, 171), (97, 131)]
    return {
        "deploy": export_onnx(model, out / "deploy.onnx", preprocess=True, postprocess=True,
                              verify_sizes=sizes).path,
        "raw": export_onnx(model, out / "raw.onnx", verify_sizes=sizes).path,
    }


@pytest.fixture(scope="module")
def val_images(trained_smoke) -> list[Path]:
    from helpers.voc import split_ids

    root = trained_smoke.voc_root
    return [root / "JPEGImages" / f"{i}.jpg" for i in split_ids(root, "val")[:4]]


def test_runs_without_torch_or_mmseg(graphs: dict[str, Path], val_images: list[Path],
                                     tmp_path: Path) -> None:
    """The deployment path (function and command) imports neither torch nor OpenMMLab."""
    script = textwrap.dedent(f"""
        import json, sys
        for name in ("torch", "mmseg", "mmcv", "mmengine"):
            sys.modules[name] = None  # any import of these now raises ImportError
        from helpers import deploy
        mask, over = deploy.segment_file({str(graphs["deploy"])!r}, {str(val_images[0])!r})
        code = deploy.main(["--model", {str(graphs["deploy"])!r}, "--image",
                            {str(val_images[0])!r}, "--out", {str(tmp_path)!r}])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in
                       ("torch", "mmseg", "mmcv", "mmengine") and sys.modules[m] is not None)
        print(json.dumps(dict(mask=mask.shape, overlay=over.shape, dtype=str(over.dtype),
                              classes=sorted(set(mask.ravel().tolist())), heavy=heavy,
                              code=code)))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "torch/OpenMMLab: none" in proc.stdout
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    height, width = cv2.imread(str(val_images[0])).shape[:2]
    assert result["mask"] == [height, width]
    assert result["overlay"] == [height, width, 3] and result["dtype"] == "uint8"
    assert len(result["classes"]) >= 2  # the trained model finds objects, not only background
    assert result["heavy"] == [] and result["code"] == 0
    stem = val_images[0].stem
    written = cv2.imread(str(tmp_path / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
    assert written.shape == (height, width) and set(np.unique(written)) == set(result["classes"])
    assert cv2.imread(str(tmp_path / f"{stem}_overlay.png")).shape == (height, width, 3)


def test_raw_graph_with_host_postprocessing_agrees(graphs: dict[str, Path],
                                                   val_images: list[Path]) -> None:
    """A graph without pre/postprocessing, completed in numpy/cv2, gives the same masks."""
    in_graph = deploy.make_session(graphs["deploy"])
    on_host = deploy.make_session(graphs["raw"])
    assert deploy.model_info(on_host).input_format == "nchw_float_normalized"
    for path in val_images:
        image = cv2.imread(str(path))
        a, b = deploy.segment(in_graph, image), deploy.segment(on_host, image)
        assert a.shape == b.shape == image.shape[:2]
        assert (a == b).mean() >= 0.9999


def test_phone_photo_is_segmented_upright(graphs: dict[str, Path], phone_photo, trained_smoke):
    """A photo stored sideways with an EXIF orientation: deployment sees it upright, as mmseg's
    own inference does, and finds the same mask."""
    from mmseg.apis import inference_model

    from helpers.checkpoint import init_model
    from helpers.predict import pred_mask

    phone, upright = phone_photo
    mask, drawn = deploy.segment_file(graphs["deploy"], phone)
    assert mask.shape == upright.shape[:2] and drawn.shape == upright.shape
    model = init_model(trained_smoke.config_path, trained_smoke.checkpoint)
    assert (mask == pred_mask(inference_model(model, str(phone)))).mean() >= 0.9999


def test_session_is_tuned(graphs: dict[str, Path]) -> None:
    options = deploy.make_session(graphs["deploy"]).get_session_options()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.intra_op_num_threads == deploy.physical_cores()
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.enable_mem_pattern


def test_model_info_reads_metadata(graphs: dict[str, Path], trained_smoke) -> None:
    from mmengine.config import Config

    info = deploy.model_info(deploy.make_session(graphs["deploy"]))
    assert len(info.classes) == len(info.palette) == 21 and info.classes[0] == "background"
    assert info.input_format == "nhwc_bgr_uint8" and info.postprocess and info.bgr_to_rgb
    resize = next(t for t in Config.fromfile(str(trained_smoke.config_path)).test_pipeline
                  if t["type"] == "Resize")
    assert info.test_resize == {"scale": list(resize["scale"]), "keep_ratio": True}
    assert info.min_side == 41 and info.input_hw == (None, None)


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("image", "message"), [
    (np.zeros((64, 64), np.uint8), r"shape \(H, W, 3\), got 2 dimensions"),
    (np.zeros((1, 64, 64, 3), np.uint8), r"got 4 dimensions"),
    (np.zeros((64, 64, 4), np.uint8), r"3 colour channels \(BGR\), got 4"),
    (np.zeros((64, 64, 1), np.uint8), r"3 colour channels \(BGR\), got 1"),
    (np.zeros((64, 64, 3), np.float32), r"dtype uint8 \(0-255\), got float32"),
    ([[0, 0, 0]], r"numpy array .* got list"),
])
def test_bad_images_are_refused(graphs: dict[str, Path], image, message: str) -> None:
    session = deploy.make_session(graphs["deploy"])
    with pytest.raises(DeployError, match=message):
        deploy.segment(session, image)


def test_unreadable_image_file_is_named(graphs: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DeployError, match="broken.jpg"):
        deploy.segment_file(graphs["deploy"], broken)


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.onnx.*python -m helpers\.onnx"):
        deploy.make_session(tmp_path / "nope.onnx")


def test_foreign_onnx_is_refused(tmp_path: Path) -> None:
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    value = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    out = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    model = onnx.helper.make_model(onnx.helper.make_graph([node], "g", [value], [out]))
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    session = deploy.make_session(tmp_path / "foreign.onnx")
    with pytest.raises(DeployError, match="no course metadata"):
        deploy.segment(session, np.zeros((64, 64, 3), np.uint8))


def test_image_below_minimum_side_is_refused() -> None:
    info = deploy.ModelInfo((), (), "nhwc_bgr_uint8", (), (), True, True, None, 41,
                            (None, None))
    with pytest.raises(DeployError, match="30 px .* minimum of 41 px"):
        deploy.prepare_image(np.zeros((30, 90, 3), np.uint8), info)
