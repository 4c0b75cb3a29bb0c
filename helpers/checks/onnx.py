"""Checks of notebook 05's tasks: pyramid-pooling cells, an exact dynamic export, ORT vs PyTorch,
and a deployment by hand (numpy, OpenCV and an ONNX Runtime session).

Each ``verify_*`` takes the student's answer (and the task's context) and returns the problems
found (see `helpers.checks.check`), registered in :data:`TASKS`. The truths come from elsewhere
than the solutions: torch's own ``adaptive_avg_pool2d`` on ramps (the mean of a cell of
``0, 1, 2, ...`` and of its squares tells which pixels the cell holds), ONNX Runtime sessions
opened here against the untouched PyTorch model, and a model whose scores were shifted on
purpose, so that a comparison that cannot see a difference is caught. A deployment is compared
with mmseg's ``inference_model`` on validation images, and on a small graph (a 1 x 1 convolution,
``helpers.onnx.graph.conv_graph``) whose logits follow every pixel, with the truth built from
mmcv's resize, the model's own data preprocessor and mmseg's resize of the logits; a wrong mask
that equals one of the classic mistakes' (:data:`MISTAKES`) is named, as notebook 04's check does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.checks import NotAnswered, Task, answered

__all__ = ["BIN_CASES", "CHECK_SIZES", "COURSE_METADATA", "MISTAKES", "TASKS", "verify_bin_edges",
           "verify_export", "verify_ort_vs_pytorch", "verify_segment_onnx"]

#: (side n, bins) tried on bin_edges: PSPNet's cells on a 32-pixel side, sizes that divide and
#: sizes that do not, fewer pixels than bins, one bin.
BIN_CASES = ((32, 6), (32, 3), (10, 3), (36, 6), (13, 6), (5, 6), (97, 2), (7, 1))
#: (height, width) at which an exported graph is run against PyTorch: none a multiple of 48.
CHECK_SIZES = ((97, 131), (200, 300), (333, 257))
#: the thresholds of helpers.onnx.export (float rounding; a pixel in ten thousand may tie)
MAX_LOGIT_DIFF, MIN_AGREEMENT = 1e-4, 0.9999
#: Metadata keys the course's exporter (``export_onnx``, ``python -m helpers.onnx``) writes into
#: its graphs for deployment; ``torch.onnx.export`` alone writes none of them.
COURSE_METADATA = ("classes", "palette", "input_format", "test_resize", "min_side")


def _pooled_ramps(n: int, bins: int) -> list[list[float]]:
    """torch's adaptive average pooling of the ramp 0..n-1 and of its squares into `bins`."""
    import torch
    import torch.nn.functional as F

    ramp = torch.arange(n, dtype=torch.float64).view(1, 1, n, 1)
    return [F.adaptive_avg_pool2d(ramp ** p, (bins, 1)).flatten().tolist() for p in (1, 2)]


def _averages_like_torch(start: int, end: int, pooled: list[list[float]], i: int) -> bool:
    """Whether the pixels start..end-1 average the ramps as torch's cell `i` does."""
    if end <= start:
        return False
    pixels = range(start, end)
    mean = sum(pixels) / len(pixels)
    mean_sq = sum(p * p for p in pixels) / len(pixels)
    return abs(mean - pooled[0][i]) < 1e-9 and abs(mean_sq - pooled[1][i]) < 1e-9


def verify_bin_edges(bin_edges: Callable) -> list[str]:
    """``bin_edges(n, bins)`` on :data:`BIN_CASES` against what torch's pooling averages."""
    for n, bins in BIN_CASES:
        where = f"bin_edges({n}, {bins})"
        got = answered(bin_edges(n, bins))
        try:
            got = list(got)
            pairs = [(int(s), int(e)) for s, e in got]
            exact = all(float(s) == int(s) and float(e) == int(e) for s, e in got)
        except (TypeError, ValueError):
            return [f"{where} returned {type(got).__name__}, not a list of (start, end) pairs"]
        if not exact:
            return [f"{where} has edges that are not whole numbers: pixel indices are ints "
                    "(floor and ceil)"]
        if len(pairs) != bins:
            return [f"{where} returned {len(pairs)} pairs, not one per cell"]
        if any(not 0 <= s <= e <= n for s, e in pairs):
            return [f"{where} has a cell outside the side's pixels 0 to {n} (or one that ends "
                    "before it starts)"]
        pooled = _pooled_ramps(n, bins)
        wrong = [i for i, (s, e) in enumerate(pairs) if not _averages_like_torch(s, e, pooled, i)]
        if not wrong:
            continue
        i = wrong[0]
        if all(_averages_like_torch(pairs[k][0], pairs[k][1] + 1, pooled, k) for k in wrong):
            return [f"{where}: {len(wrong)} cell(s) end too early (cell {i} ends at "
                    f"{pairs[i][1]}): cells overlap when the side does not divide; the end is "
                    "rounded up"]
        return [f"{where}: cell {i} is {pairs[i]}, which is not the pixels adaptive pooling "
                f"averages there ({len(wrong)} wrong cell(s) of {bins})"]
    return []


def _input_dims_and_keys(path: Path) -> tuple[list[Any], list[str]]:
    """The graph's first input's dimensions and its metadata keys."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return dims, sorted(p.key for p in model.metadata_props)


def _session(path: Any) -> Any:
    """An ONNX Runtime session that logs nothing (a graph that fails at some size is reported
    as a problem, not as errors on stderr)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _logits(session: Any, graph: Any, x: Any) -> tuple[Any, Any]:
    """ONNX Runtime's and PyTorch's logits for ``x`` (numpy arrays of the same shape)."""
    import torch

    with torch.no_grad():
        want = graph(x).numpy()
    feed = {session.get_inputs()[0].name: x.numpy()}
    got = session.run(None, feed)[0]
    if got.shape != want.shape:
        raise ValueError(f"the graph returns shape {tuple(got.shape)} where PyTorch's whole-image "
                         f"logits have {tuple(want.shape)}")
    return got, want


def verify_export(onnx_path: Any, model: Any) -> list[str]:
    """An ONNX file of ``SegmentorGraph(model)`` written by ``torch.onnx.export``, with dynamic
    height and width, exact at :data:`CHECK_SIZES` against the untouched PyTorch model; the
    model itself left unchanged."""
    import numpy as np
    import torch

    from helpers.onnx import ExactAdaptiveAvgPool2d, SegmentorGraph

    path = Path(answered(onnx_path, "the answer"))
    if not path.is_file():
        raise NotAnswered(f"no file at {path}")
    if any(isinstance(m, ExactAdaptiveAvgPool2d) for m in model.modules()):
        return ["after your export the model still holds ExactAdaptiveAvgPool2d modules: swap "
                "them in only for the export (a `with` block puts the originals back)"]
    try:
        session = _session(path)
    except Exception as err:
        return [f"ONNX Runtime cannot load {path} ({' '.join(str(err).split())[:200]})"]
    dims, keys = _input_dims_and_keys(path)
    if set(COURSE_METADATA) & set(keys):
        return [f"{path.name} was written by the course's exporter (it carries deployment "
                "metadata): export the graph yourself with torch.onnx.export"]
    if len(session.get_inputs()) != 1:
        return [f"the graph has {len(session.get_inputs())} inputs; export SegmentorGraph(model) "
                "as it is (one image tensor in, logits out)"]
    if len(dims) != 4:
        return [f"the graph's input has {len(dims)} dimensions, not N x 3 x H x W"]
    fixed = [name for name, d in zip(("height", "width"), dims[2:], strict=True)
             if isinstance(d, int) and d > 0]
    if fixed:
        return [f"the input's {' and '.join(fixed)} are fixed ({dims[2]} x {dims[3]}): mark them "
                "dynamic, so that one file serves every image size"]
    graph = SegmentorGraph(model).eval()
    problems = []
    gen = torch.Generator().manual_seed(5)
    for height, width in CHECK_SIZES:
        x = torch.randn(1, 3, height, width, generator=gen)
        try:
            got, want = _logits(session, graph, x)
        except Exception as err:  # a graph with baked-in pooling may not run at other sizes
            text = str(err).split("Status Message:")[-1].strip().splitlines()[0][:200]
            problems.append(f"at {height}x{width} ONNX Runtime could not run it ({text})")
            continue
        diff = float(np.abs(got - want).max())
        agreement = float((got.argmax(1) == want.argmax(1)).mean())
        if diff > MAX_LOGIT_DIFF or agreement < MIN_AGREEMENT:
            problems.append(f"at {height}x{width} it differs from PyTorch: max |logit diff| "
                            f"{diff:.3g}, argmax agreement {100 * agreement:.2f} %")
    if problems:
        problems.append("a graph right only at the traced size has the traced pooling cells "
                        "baked in: export inside exact_adaptive_pooling(model)")
    elif path.name != "mine.onnx":
        problems.append(f"the file is {path.name}: write it to ONNX_DIR/mine.onnx, as the task "
                        "asks")
    return problems


def verify_ort_vs_pytorch(ort_vs_pytorch: Callable, model: Any, onnx_path: Any) -> list[str]:
    """``ort_vs_pytorch(onnx_path, model, x)`` on the graph's own model, on a copy with its
    classifier halved and on a shifted copy, against the logits of an ONNX Runtime session and
    of PyTorch computed here."""
    import numpy as np
    import torch

    from helpers.onnx.graph import SegmentorGraph
    from helpers.onnx.graph import halved_model as _halved
    from helpers.onnx.graph import shifted_model as _shifted

    x = torch.randn(1, 3, 97, 131, generator=torch.Generator().manual_seed(6))
    session = _session(onnx_path)
    problems = []
    for name, other in (("the model the graph was exported from", model),
                        ("a copy of the model with its classifier's weights halved",
                         _halved(model)),
                        ("a copy of the model that changes the class of about half the pixels",
                         _shifted(model, x))):
        got = answered(ort_vs_pytorch(onnx_path, other, x.clone()))
        try:
            diff, agreement = (float(v) for v in got)
        except (TypeError, ValueError):
            return [f"it returned {got!r}, not two numbers (max |diff|, agreement)"]
        if not 0 <= agreement <= 1:
            return [f"for {name} the agreement is {agreement:g}: give it as a fraction of the "
                    "pixels, between 0 and 1"]
        ort_logits, torch_logits = _logits(session, SegmentorGraph(other).eval(), x)
        gap = np.abs(ort_logits - torch_logits)
        if float(gap.max()) <= MAX_LOGIT_DIFF:  # float rounding: its size depends on the session
            diff_ok = 0 <= diff <= MAX_LOGIT_DIFF
        else:
            diff_ok = abs(diff - float(gap.max())) <= 1e-4 + 1e-3 * float(gap.max())
        if not diff_ok:
            problems.append(f"for {name} your max |logit difference| is {diff:.4g}: not the "
                            "largest absolute difference between ORT's and PyTorch's logits")
        same_class = ort_logits.argmax(1) == torch_logits.argmax(1)
        if abs(agreement - float(same_class.mean())) > 2e-3:
            problems.append(f"for {name} your argmax agreement is {100 * agreement:.2f} %: not "
                            "the share of pixels whose best class (over the class axis) is equal")
        if problems:
            break
    return problems


#: A classic deployment mistake → what the check says when a mask is exactly that mistake's.
MISTAKES = {
    "bgr": "the channels stay in OpenCV's BGR order: the data preprocessor turns them to RGB "
           "(bgr_to_rgb) before MEAN and STD, which are in RGB order",
    "hw": "the network saw the image at (height, width) instead of (width, height): `size` is "
          "(w, h), and cv2.resize's dsize is (width, height) too",
    "argmax_first": "the arg-max was taken before resizing back: resize the logits to the "
                    "image's own size first, then take the arg-max (a mask of class ids cannot "
                    "be interpolated)",
}


def _pipeline_mask(session: Any, model: Any, image: Any, size: tuple[int, int],
                   mistake: str = "") -> Any:
    """The mask mmseg's inference would give with ``session`` as the network: mmcv's resize,
    the model's data preprocessor, the graph, mmseg's resize of the logits, the arg-max; or, with
    ``mistake`` (a key of :data:`MISTAKES`), that mistake's mask."""
    import cv2
    import mmcv
    import torch
    from mmseg.models.utils import resize

    seen = size[::-1] if mistake == "hw" else size
    resized = mmcv.imresize(image, seen, interpolation="bilinear")
    if mistake == "bgr":
        resized = resized[..., ::-1]  # the preprocessor's swap then undoes the one not done
    chw = torch.from_numpy(resized.transpose(2, 0, 1).copy())
    with torch.no_grad():
        x = model.data_preprocessor(dict(inputs=[chw]), False)["inputs"].float()
    logits = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    if mistake == "argmax_first":
        small = logits.argmax(1)[0].numpy().astype("uint8")
        return cv2.resize(small, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    back = resize(logits, size=image.shape[:2], mode="bilinear", align_corners=False,
                  warning=False)
    return back.argmax(1)[0].numpy()


def _smooth_image(seed: int, height: int, width: int) -> Any:
    """A BGR uint8 test image: random colours, smoothly interpolated."""
    import cv2
    import numpy as np

    coarse = np.random.default_rng(seed).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def _mask_problem(got: Any, want: Any, where: str) -> str:
    """'' when ``got`` is ``want``'s mask (but for a pixel in a thousand, ties), else why not."""
    import numpy as np

    if not isinstance(got, np.ndarray):
        return f"{where}: it returned {type(got).__name__}, not a numpy array"
    if got.shape != want.shape:
        return (f"{where}: the mask has shape {got.shape}, not the image's own (H, W) = "
                f"{want.shape}")
    if not np.issubdtype(got.dtype, np.integer):
        return f"{where}: the mask's dtype is {got.dtype}: class ids are integers"
    differ = float((got != want).mean())
    if differ > 1e-3:
        return (f"{where}: {100 * differ:.1f} % of the pixels have another class than mmseg's "
                "inference gives (test-time Resize, data preprocessor, resize of the logits, "
                "arg-max)")
    return ""


def verify_segment_onnx(segment_onnx: Callable, model: Any, onnx_path: Any,
                        voc_root: Any) -> list[str]:
    """``segment_onnx(session, image, size)`` on a 1 x 1 convolution graph (truth: mmcv, the
    model's data preprocessor, mmseg's resize) and on the exported model with validation
    images (truth: mmseg's ``inference_model``)."""
    import tempfile

    import cv2
    import onnxruntime as ort
    from mmseg.apis import inference_model

    from helpers.onnx.graph import conv_graph, deployment_size

    with tempfile.TemporaryDirectory() as tmp:
        conv = ort.InferenceSession(str(conv_graph(Path(tmp) / "conv.onnx", seed=3)),
                                    providers=["CPUExecutionProvider"])
    for height, width, size in ((61, 83, (120, 90)), (90, 70, (45, 58)), (33, 33, (33, 33))):
        image = _smooth_image(height * width, height, width)
        got = answered(segment_onnx(conv, image.copy(), size))
        problem = _mask_problem(got, _pipeline_mask(conv, model, image, size),
                                f"on a 1 x 1 convolution graph, a {width}x{height} image seen at "
                                f"{size[0]}x{size[1]}")
        if problem:
            named = [why for mistake, why in MISTAKES.items() if not _mask_problem(
                got, _pipeline_mask(conv, model, image, size, mistake), "")]
            return [problem + (f": {named[0]}" if named else "")]
    session = _session(onnx_path)
    ids = (Path(voc_root) / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    for image_id in ids[:2]:
        path = Path(voc_root) / "JPEGImages" / f"{image_id}.jpg"
        image = cv2.imread(str(path))
        got = answered(segment_onnx(session, image.copy(), deployment_size(model.cfg, image)))
        want = inference_model(model, str(path)).pred_sem_seg.data[0].cpu().numpy()
        problem = _mask_problem(got, want, f"on {path.name} with the exported model")
        if problem:
            return [problem]
    return []


#: The tasks of notebook 05 and their hints (an API or a concept, never the code).
TASKS = {
    "bin_edges": Task(verify_bin_edges, hint="the start rounds down and the end rounds up, as in "
                                             "the rule above; Python's // is a floor, and a "
                                             "ceiling can be written as a floor of negatives"),
    "export_exact": Task(verify_export, hint="torch.onnx.export's `dynamic_shapes` (torch's "
                                             "docs: torch.export, dynamic shapes, "
                                             "torch.export.Dim); section 3's context manager "
                                             "that swaps the pooling only inside its block"),
    "ort_vs_pytorch": Task(verify_ort_vs_pytorch, hint="InferenceSession.run and the session's "
                                                       "input names (get_inputs); the class axis "
                                                       "of N x C x H x W logits; numpy's "
                                                       "reductions"),
    "segment_onnx": Task(verify_segment_onnx, hint="mmseg's test pipeline (mmcv's Resize), "
                                                   "SegDataPreProcessor (bgr_to_rgb, mean, std), "
                                                   "the NCHW layout, and mmseg's resize of the "
                                                   "logits before the arg-max; OpenCV's "
                                                   "cv2.resize and its dsize order"),
}
