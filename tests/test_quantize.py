"""helpers.onnx.quantize: the INT8 forms for VNNI and AMX kernels are the same quantized model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from helpers.onnx import calibration_images
from helpers.onnx.quantize import TARGETS, cpu_int8_target, quantize_int8, retarget_int8


def _conv_net(path: Path, side: int = 48) -> Path:
    """A small fp32 conv net (conv, relu, conv) with the course's deploy metadata."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.3
    w2 = rng.standard_normal((8, 16, 1, 1)).astype(np.float32) * 0.3
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["logits"])]
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
             numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b2")]
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                     [1, 3, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 8, side, side])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.helper.set_model_props(model, {
        "classes": json.dumps([f"c{i}" for i in range(8)]), "palette": "[]",
        "input_format": "nchw_float_normalized", "mean": "[120.0, 110.0, 100.0]",
        "std": "[60.0, 60.0, 60.0]", "bgr_to_rgb": "true", "postprocess": "false",
        "test_resize": "null", "min_side": "8"})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def int8_vnni(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("quant")
    images = calibration_images(demo_root / "JPEGImages", limit=4)
    return quantize_int8(_conv_net(tmp / "net.onnx"), tmp / "net.int8.onnx", images,
                         target="vnni")


def _dequantized(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every DequantizeLinear whose data is an initializer, evaluated: s * (q - z)."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            q, s = inits[node.input[0]].astype(np.float64), inits[node.input[1]]
            z = inits[node.input[2]].astype(np.float64)
            shape = [-1] + [1] * (q.ndim - 1) if s.ndim == 1 and q.ndim > 1 else []
            out[node.input[0]] = s.reshape(shape) * (q - z.reshape(shape)) if shape else s * (q - z)
    return out


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def test_quantize_records_target_and_vnni_form(int8_vnni: Path) -> None:
    model = onnx.load(str(int8_vnni))
    props = {p.key: p.value for p in model.metadata_props}
    assert "target vnni" in props["quantization"] and props["input_format"]
    inits = {t.name: t for t in model.graph.initializer}
    zps = [inits[n.input[2]] for n in model.graph.node
           if n.op_type == "QuantizeLinear" and n.input[2] in inits]
    assert zps and all(z.data_type == TensorProto.UINT8 for z in zps)  # u8 activations


def test_retarget_is_exact_both_ways(int8_vnni: Path) -> None:
    vnni = onnx.load(str(int8_vnni))
    amx = onnx.load(str(int8_vnni))
    counts = retarget_int8(amx, "amx")
    assert counts["weights re-stored"] == 2 and counts["weights kept"] == 0
    assert counts["activation zero points"] >= 2
    inits = {t.name: numpy_helper.to_array(t) for t in amx.graph.initializer}
    weight_zps = [inits[n.input[2]] for n in amx.graph.node
                  if n.op_type == "DequantizeLinear" and n.input[0] in ("w1_quantized",
                                                                         "w2_quantized")]
    assert len(weight_zps) == 2 and all((z == -1).all() for z in weight_zps)
    # the same real numbers: every weight and bias dequantizes to exactly the same values
    before, after = _dequantized(vnni), _dequantized(amx)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    # ONNX Runtime computes the same logits up to one output quantization step
    x = np.random.default_rng(1).standard_normal((1, 3, 48, 48)).astype(np.float32)
    np.testing.assert_allclose(_run(amx, x), _run(vnni, x), atol=0.2)
    # and back: the original model, bit for bit
    retarget_int8(amx, "vnni")
    original = {t.name: t for t in vnni.graph.initializer}
    for t in amx.graph.initializer:
        assert t.data_type == original[t.name].data_type
        np.testing.assert_array_equal(numpy_helper.to_array(t),
                                      numpy_helper.to_array(original[t.name]))


def test_retarget_keeps_a_weight_that_does_not_fit(int8_vnni: Path) -> None:
    model = onnx.load(str(int8_vnni))
    inits = {t.name: t for t in model.graph.initializer}
    w = numpy_helper.to_array(inits["w1_quantized"]).copy()
    w.flat[0] = -128  # cannot be stored as w - 1
    inits["w1_quantized"].CopyFrom(numpy_helper.from_array(w, "w1_quantized"))
    counts = retarget_int8(model, "amx")
    assert counts["weights kept"] == 1 and counts["weights re-stored"] == 1
    np.testing.assert_array_equal(numpy_helper.to_array(inits["w1_quantized"]), w)


def test_bad_target_and_cpu_detection(int8_vnni: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="amx"):
        retarget_int8(onnx.load(str(int8_vnni)), "avx9")
    amx = tmp_path / "cpuinfo_amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_vnni amx_tile amx_int8\n")
    vnni = tmp_path / "cpuinfo_vnni"
    vnni.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_vnni avx512_bf16\n")
    assert cpu_int8_target(amx) == "amx" and cpu_int8_target(vnni) == "vnni"
    assert cpu_int8_target(tmp_path / "missing") == "vnni"
    assert set(TARGETS) == {"vnni", "amx"}


def test_quantize_never_replaces_its_input_and_cleans_up_when_interrupted(
        demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.onnx import ExportError

    fp32 = _conv_net(tmp_path / "net.onnx")
    before = fp32.read_bytes()
    images = calibration_images(demo_root / "JPEGImages", limit=2)
    with pytest.raises(ExportError, match="would replace its own fp32 input"):
        quantize_int8(fp32, tmp_path / "." / "net.onnx", images)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("helpers.onnx.quantize.retarget_int8", interrupt)
    with pytest.raises(KeyboardInterrupt):
        quantize_int8(fp32, tmp_path / "net.int8.onnx", images)
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"] and fp32.read_bytes() == before
