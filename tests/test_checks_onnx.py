"""Notebook 05's task checks (helpers.checks.onnx): blank, right and plausible wrong answers.

The export and comparison checks run the real stack: torch's dynamo exporter, ONNX Runtime and
the smoke model trained once per session (conftest's ``trained_smoke``).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from helpers.checkpoint import init_model
from helpers.checks import evaluate
from helpers.checks import onnx as tasks
from helpers.onnx import ExactAdaptiveAvgPool2d, SegmentorGraph, exact_adaptive_pooling, export_onnx
from helpers.onnx.graph import conv_graph, deployment_size, halved_model, shifted_model


def edges_right(n, bins):
    return [(i * n // bins, -(-(i + 1) * n // bins)) for i in range(bins)]


def test_bin_edges_blank_and_right():
    assert evaluate(None, tasks.verify_bin_edges) == ("unanswered", [])
    assert evaluate(lambda n, b: None, tasks.verify_bin_edges) == ("unanswered", [])
    assert evaluate(edges_right, tasks.verify_bin_edges) == ("correct", [])
    floats = lambda n, b: [(math.floor(i * n / b), math.ceil((i + 1) * n / b)) for i in range(b)]  # noqa: E731
    assert evaluate(floats, tasks.verify_bin_edges) == ("correct", [])
    generator = lambda n, b: ((s, e) for s, e in edges_right(n, b))  # noqa: E731
    assert evaluate(generator, tasks.verify_bin_edges) == ("correct", [])


def test_torch_pools_32_pixels_into_six_equal_overlapping_cells():
    """The lesson's example, written as data: six cells of 6 pixels, neighbours sharing one."""
    cells = [(0, 6), (5, 11), (10, 16), (16, 22), (21, 27), (26, 32)]
    x = torch.arange(32, dtype=torch.float64).view(1, 1, 32)
    pooled = torch.nn.functional.adaptive_avg_pool1d(x, 6).flatten().tolist()
    assert [float(np.mean(range(s, e))) for s, e in cells] == pooled
    assert evaluate(lambda n, b: cells if (n, b) == (32, 6) else edges_right(n, b),
                    tasks.verify_bin_edges) == ("correct", [])


def test_the_task_module_ships_no_answer():
    assert set(tasks.TASKS) == {"bin_edges", "export_exact", "ort_vs_pytorch", "segment_onnx"}
    assert not [n for n in dir(tasks) if n.endswith("_reference")]


@pytest.mark.parametrize(("wrong", "says"), [
    (lambda n, b: [(i * n // b, (i + 1) * n // b) for i in range(b)], "end too early"),
    (lambda n, b: [(round(i * n / b), round((i + 1) * n / b)) for i in range(b)],
     "not the pixels"),
    (lambda n, b: [(i * n / b, (i + 1) * n / b) for i in range(b)], "not whole numbers"),
    (lambda n, b: [(i * n // b, -(-(i + 1) * n // b)) for i in range(b - 1)], "one per cell"),
    (lambda n, b: [(i * n // b, -(-(i + 1) * n // b) + 1) for i in range(b)], "outside"),
    (lambda n, b: [(i * n // b + 1, -(-(i + 1) * n // b)) for i in range(b)], "not the pixels"),
    (lambda n, b: [i * n // b for i in range(b)], "not a list of (start, end) pairs"),
    (lambda n, b: edges_right(32, 6), "bin_edges(32, 3)"),  # hard-coded for the lesson's case
])
def test_bin_edges_mistakes_are_named_without_the_answer(wrong, says):
    status, problems = evaluate(wrong, tasks.verify_bin_edges)
    assert status == "wrong" and says in problems[0], problems
    assert "(5, 11)" not in problems[0] and "(10, 16)" not in problems[0]


# --------------------------------------------------------------------------------------------
# the export and the comparison, on the trained smoke model
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(trained_smoke):
    return init_model(trained_smoke.config_path, trained_smoke.checkpoint).eval()


def export(model, path: Path, exact: bool = True) -> Path:
    """What the task asks for (exact=True), or the same without the pooling swap."""
    dynamic = torch.export.Dim.DYNAMIC
    swap = exact_adaptive_pooling(model) if exact else torch.no_grad()
    with torch.no_grad(), swap:
        torch.onnx.export(SegmentorGraph(model).eval(), (torch.randn(1, 3, 256, 320),), str(path),
                          dynamo=True, external_data=False, verbose=False, input_names=["input"],
                          output_names=["logits"], dynamic_shapes=({2: dynamic, 3: dynamic},))
    return path


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory) -> Path:
    return export(model, tmp_path_factory.mktemp("task_onnx") / "mine.onnx")


def test_export_blank_missing_and_right(model, exported, tmp_path):
    verify = lambda path: tasks.verify_export(path, model)  # noqa: E731
    assert evaluate(None, verify) == ("unanswered", [])
    assert evaluate(tmp_path / "never_written.onnx", verify) == ("unanswered", [])
    assert evaluate(exported, verify) == ("correct", [])
    assert evaluate(str(exported), verify) == ("correct", [])


def test_an_export_without_the_exact_pooling_is_wrong(model, tmp_path):
    path = export(model, tmp_path / "baked.onnx", exact=False)
    status, problems = evaluate(path, lambda p: tasks.verify_export(p, model))
    assert status == "wrong" and len(problems) >= 2, problems
    assert "exact_adaptive_pooling" in problems[-1]
    assert all(("could not run it" in p or "differs from PyTorch" in p) for p in problems[:-1])


def test_a_graph_the_course_exported_is_not_the_students(model, tmp_path):
    """export_onnx (and python -m helpers.onnx) write deployment metadata into the file."""
    report = export_onnx(model, tmp_path / "course.onnx", verify_sizes=[(97, 131)])
    status, problems = evaluate(report.path, lambda p: tasks.verify_export(p, model))
    assert status == "wrong" and "course's exporter" in problems[0], problems


def test_a_static_graph_is_wrong(model, tmp_path):
    """A graph whose input is 1x3x256x320 (built with onnx.helper: only its input is read)."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 256, 320])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 256, 320])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(tmp_path / "static.onnx"))
    status, problems = evaluate(tmp_path / "static.onnx", lambda p: tasks.verify_export(p, model))
    assert status == "wrong" and "fixed (256 x 320)" in problems[0], problems


def test_a_graph_under_another_name_is_reported(model, exported, tmp_path):
    """The grader reads ONNX_DIR/mine.onnx, as the task asks: the check says so too."""
    other = tmp_path / "other.onnx"
    other.write_bytes(exported.read_bytes())
    status, problems = evaluate(other, lambda p: tasks.verify_export(p, model))
    assert status == "wrong" and "ONNX_DIR/mine.onnx" in problems[0], problems


def test_a_model_left_with_the_swapped_pooling_is_wrong(model, exported):
    swapped = copy.deepcopy(model)
    stage = swapped.decode_head.psp_modules[0]
    stage[0] = ExactAdaptiveAvgPool2d(stage[0].output_size)
    status, problems = evaluate(exported, lambda p: tasks.verify_export(p, swapped))
    assert status == "wrong" and "still holds ExactAdaptiveAvgPool2d" in problems[0]


def ort_vs_pytorch_right(onnx_path, model, x):
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = SegmentorGraph(model).eval()(x).numpy()
    return float(np.abs(got - want).max()), float((got.argmax(1) == want.argmax(1)).mean())


def test_the_shifted_model_changes_about_half_the_pixels(model):
    x = torch.randn(1, 3, 97, 131, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        a = SegmentorGraph(model).eval()(x)
        b = SegmentorGraph(shifted_model(model, x)).eval()(x)
    assert 0.3 < float((a.argmax(1) == b.argmax(1)).float().mean()) < 0.7
    assert float((a - b).abs().max()) > 0.1


def test_the_halved_model_changes_every_logit(model):
    x = torch.randn(1, 3, 97, 131, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        a = SegmentorGraph(model).eval()(x)
        b = SegmentorGraph(halved_model(model)).eval()(x)
    assert float((a - b).abs().max()) > 1e-2
    with torch.no_grad():  # the model itself is left as it was
        assert torch.equal(SegmentorGraph(model).eval()(x), a)


def test_ort_vs_pytorch_blank_and_right(model, exported):
    verify = lambda fn: tasks.verify_ort_vs_pytorch(fn, model, exported)  # noqa: E731
    assert evaluate(None, verify) == ("unanswered", [])
    assert evaluate(lambda p, m, x: None, verify) == ("unanswered", [])
    assert evaluate(ort_vs_pytorch_right, verify) == ("correct", [])


def _with(result):
    """An answer that compares correctly, then returns `result(diff, agreement, got, want)`."""
    def answer(onnx_path, model, x):
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        with torch.no_grad():
            want = SegmentorGraph(model).eval()(x).numpy()
        return result(got, want)
    return answer


@pytest.mark.parametrize(("wrong", "says"), [
    (_with(lambda g, w: (float(np.abs(g - w).mean()), float((g.argmax(1) == w.argmax(1)).mean()))),
     "max |logit difference|"),
    (_with(lambda g, w: (float(np.abs(g - w).max()), float((g.argmax(-1) == w.argmax(-1)).mean()))),
     "argmax agreement"),
    (_with(lambda g, w: (float(np.abs(g - w).max()),
                         100 * float((g.argmax(1) == w.argmax(1)).mean()))), "as a fraction"),
    (_with(lambda g, w: (float(np.abs(g - g).max()), 1.0)), "max |logit difference|"),  # ORT vs ORT
    (lambda p, m, x: (0.0, 1.0), "max |logit difference|"),  # hard-coded
    (lambda p, m, x: float(np.abs(ort_vs_pytorch_right(p, m, x)[0])), "not two numbers"),
])
def test_ort_vs_pytorch_mistakes_are_named(model, exported, wrong, says):
    status, problems = evaluate(wrong, lambda fn: tasks.verify_ort_vs_pytorch(fn, model, exported))
    assert status == "wrong" and says in " ".join(problems), problems


def test_comparing_with_the_model_at_one_eighth_is_reported(model, exported):
    """model(x) gives the decode head's logits at 1/8 size: a shape error, shown as ✗."""
    def raw(onnx_path, model, x):
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        with torch.no_grad():
            want = model(x).numpy()
        return float(np.abs(got - want).max()), float((got.argmax(1) == want.argmax(1)).mean())

    status, problems = evaluate(raw, lambda fn: tasks.verify_ort_vs_pytorch(fn, model, exported))
    assert status == "wrong" and "your code raised" in problems[0], problems


def test_check_finds_the_tasks_and_passes_their_context(model, exported, capsys):
    from helpers.checks import check

    assert check("export_exact", exported, model=model) == exported
    assert check("ort_vs_pytorch", ort_vs_pytorch_right, model=model,
                 onnx_path=exported) is ort_vs_pytorch_right
    assert check("bin_edges", edges_right) is edges_right
    assert capsys.readouterr().out.count("✓") == 3


# --------------------------------------------------------------------------------------------
# the deployment by hand (Task 4), on the trained smoke model and a 1 x 1 convolution graph
# --------------------------------------------------------------------------------------------
def deployment(channels="rgb", resize_logits=True, resize_first=True, size_as_hw=False):
    """The task's answer, or one that goes wrong in the named way."""
    def segment_onnx(session, image, size, *, mean, std):
        size = size[::-1] if size_as_hw else size  # reads (w, h) as (h, w)
        if resize_first:
            resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
            rgb = resized[..., ::-1] if channels == "rgb" else resized
            x = (rgb.astype(np.float32) - mean) / std
        else:  # normalises the full image, then resizes floats
            rgb = image[..., ::-1] if channels == "rgb" else image
            x = cv2.resize((rgb.astype(np.float32) - mean) / std, size,
                           interpolation=cv2.INTER_LINEAR)
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        logits = session.run(None, {session.get_inputs()[0].name: x})[0][0]
        height, width = image.shape[:2]
        if not resize_logits:  # arg-max at the network's size, then the mask resized
            small = logits.argmax(0).astype(np.uint8)
            return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
        logits = cv2.resize(logits.transpose(1, 2, 0), (width, height),
                            interpolation=cv2.INTER_LINEAR)
        return logits.argmax(axis=-1).astype(np.uint8)
    return segment_onnx


@pytest.fixture(scope="module")
def segment_context(model, exported, trained_smoke):
    mean = np.array(model.cfg.model.data_preprocessor.mean, dtype=np.float32)
    std = np.array(model.cfg.model.data_preprocessor.std, dtype=np.float32)
    ctx = dict(model=model, onnx_path=exported, voc_root=trained_smoke.voc_root)
    return ctx, dict(mean=mean, std=std)


def _bind(fn, stats):
    return lambda session, image, size: fn(session, image, size, **stats)


def test_segment_onnx_blank_and_right(segment_context):
    ctx, stats = segment_context
    verify = lambda fn: tasks.verify_segment_onnx(fn, **ctx)  # noqa: E731
    assert evaluate(None, verify) == ("unanswered", [])
    assert evaluate(lambda s, i, z: None, verify) == ("unanswered", [])
    assert evaluate(_bind(deployment(), stats), verify) == ("correct", [])


def test_segment_onnx_in_float64_with_cvtcolor_is_right(segment_context):
    """Another correct way: float64 arithmetic, cv2.cvtColor, an int64 mask."""
    ctx, stats = segment_context

    def other(session, image, size):
        rgb = cv2.cvtColor(cv2.resize(image, size), cv2.COLOR_BGR2RGB)
        x = ((rgb - stats["mean"].astype(np.float64)) / stats["std"]).astype(np.float32)
        feed = {session.get_inputs()[0].name: x.transpose(2, 0, 1)[None].copy()}
        logits = session.run(None, feed)[0][0].transpose(1, 2, 0)
        return cv2.resize(logits, image.shape[1::-1]).argmax(-1)

    assert evaluate(other, lambda fn: tasks.verify_segment_onnx(fn, **ctx)) == ("correct", [])


@pytest.mark.parametrize(("wrong", "says"), [
    (deployment(channels="bgr"), "channels stay in OpenCV's BGR order"),
    (deployment(resize_logits=False), "arg-max was taken before resizing back"),
    (deployment(size_as_hw=True), "(height, width) instead of (width, height)"),
    (deployment(resize_first=False), "another class"),  # not a classic one: no name
])
def test_segment_onnx_mistakes_are_named(segment_context, wrong, says):
    ctx, stats = segment_context
    status, problems = evaluate(_bind(wrong, stats),
                                lambda fn: tasks.verify_segment_onnx(fn, **ctx))
    assert status == "wrong" and says in problems[0], problems
    assert "1 x 1 convolution" in problems[0], problems
    named = [why for why in tasks.MISTAKES.values() if why in problems[0]]
    assert len(named) == (says != "another class"), problems  # one name, and only when it fits


def test_segment_onnx_shape_and_type_mistakes(segment_context):
    ctx, stats = segment_context
    right = _bind(deployment(), stats)
    verify = lambda fn: tasks.verify_segment_onnx(fn, **ctx)  # noqa: E731
    status, problems = evaluate(lambda s, i, z: right(s, i, z)[:, :-1], verify)
    assert status == "wrong" and "image's own (H, W)" in problems[0], problems
    status, problems = evaluate(lambda s, i, z: right(s, i, z).astype(np.float32), verify)
    assert status == "wrong" and "integers" in problems[0], problems
    status, problems = evaluate(lambda s, i, z: right(s, i, z).tolist(), verify)
    assert status == "wrong" and "not a numpy array" in problems[0], problems


def test_conv_graph_follows_every_pixel(tmp_path):
    session = ort.InferenceSession(str(conv_graph(tmp_path / "c.onnx", classes=5)),
                                   providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 3, 17, 23)).astype(np.float32)
    logits = session.run(None, {"pixels": x})[0]
    assert logits.shape == (1, 5, 17, 23)
    assert len(np.unique(logits.argmax(1))) >= 3


def test_deployment_size_is_mmcvs_keep_ratio_resize(model):
    scale = next(t["scale"] for t in model.cfg.test_pipeline if t["type"] == "Resize")
    image = np.zeros((375, 500, 3), np.uint8)
    width, height = deployment_size(model.cfg, image)
    assert max(width, height) <= max(scale) and min(width, height) <= min(scale)
    assert abs(width / height - 500 / 375) < 0.02
