"""Checks of notebook 05's tasks: pyramid-pooling bins, an exact dynamic export, ORT vs PyTorch.

Each ``verify_*`` returns the problems found (see `helpers.checks.check`); each ``*_reference`` is
what the lesson continues with. The truths come from elsewhere than the solutions: torch's own
``adaptive_avg_pool1d`` on one-hot rows, ONNX Runtime sessions opened here (with the course's
session options) against the untouched PyTorch model, and a model whose scores were shifted on
purpose, so that a comparison that cannot see a difference is caught.

In the notebook import it as ``from helpers.checks import onnx as onnx_tasks``: plain ``onnx``
is the ONNX package.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.checks import NotAnswered, answered

__all__ = [
    "BIN_CASES",
    "CHECK_SIZES",
    "bin_edges_reference",
    "ort_vs_pytorch_reference",
    "shifted_model",
    "verify_bin_edges",
    "verify_export",
    "verify_ort_vs_pytorch",
]

#: (side n, bins) tried on bin_edges: PSPNet's cells on a 32-pixel side, sizes that divide and
#: sizes that do not, fewer pixels than bins, one bin.
BIN_CASES = ((32, 6), (32, 3), (10, 3), (36, 6), (13, 6), (5, 6), (97, 2), (7, 1))
#: (height, width) at which an exported graph is run against PyTorch: none a multiple of 48.
CHECK_SIZES = ((97, 131), (200, 300), (333, 257))
#: the thresholds of helpers.onnx.export (float rounding; a pixel in ten thousand may tie)
MAX_LOGIT_DIFF, MIN_AGREEMENT = 1e-4, 0.9999


def bin_edges_reference(n: int, bins: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` (end excluded) of adaptive average pooling's bins along ``n``
    pixels, read off torch's ``adaptive_avg_pool1d`` applied to one-hot rows."""
    import torch
    import torch.nn.functional as F

    inside = F.adaptive_avg_pool1d(torch.eye(n, dtype=torch.float64)[None], bins)[0] > 0
    return [(int(col.nonzero()[0]), int(col.nonzero()[-1]) + 1) for col in inside.T]


def verify_bin_edges(bin_edges: Callable) -> list[str]:
    """``bin_edges(n, bins)`` on :data:`BIN_CASES` against torch's pooling."""
    for n, bins in BIN_CASES:
        where = f"bin_edges({n}, {bins})"
        got = answered(bin_edges(n, bins))
        try:
            pairs = [(int(s), int(e)) for s, e in got]
            exact = all(float(s) == int(s) and float(e) == int(e) for s, e in got)
        except (TypeError, ValueError):
            return [f"{where} returned {type(got).__name__}, not a list of (start, end) pairs"]
        if not exact:
            return [f"{where} has edges that are not whole numbers: pixel indices are ints "
                    "(floor and ceil)"]
        if len(pairs) != bins:
            return [f"{where} returned {len(pairs)} pairs, not one per bin"]
        want = bin_edges_reference(n, bins)
        wrong = [i for i in range(bins) if pairs[i] != want[i]]
        if not wrong:
            continue
        i = wrong[0]
        starts_ok = all(pairs[k][0] == want[k][0] for k in range(bins))
        short = all(pairs[k][1] <= want[k][1] for k in range(bins))
        if starts_ok and short:
            return [f"{where}: {len(wrong)} bin(s) end too early (bin {i} ends at {pairs[i][1]}): "
                    "bins overlap when the side does not divide; the end is rounded up"]
        return [f"{where}: bin {i} is {pairs[i]}, which is not the pixels adaptive pooling "
                f"averages there ({len(wrong)} wrong bin(s) of {bins})"]
    return []


def _dims(path: Path) -> list[Any]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    shape = model.graph.input[0].type.tensor_type.shape
    return [d.dim_param or d.dim_value for d in shape.dim]


def _session(path: Any) -> Any:
    """An ONNX Runtime session with the course's options that logs nothing (a graph that fails
    at some size is reported as a problem, not as errors on stderr)."""
    import onnxruntime as ort

    from helpers import deploy

    options = deploy.session_options()
    options.log_severity_level = 4
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _compare(session: Any, graph: Any, x: Any) -> tuple[float, float]:
    """max |logit difference| and argmax agreement of ``session`` against ``graph`` on ``x``."""
    import numpy as np
    import torch

    with torch.no_grad():
        want = graph(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    if got.shape != want.shape:
        raise ValueError(f"the graph returns shape {tuple(got.shape)} where PyTorch's whole-image "
                         f"logits have {tuple(want.shape)}")
    return float(np.abs(got - want).max()), float((got.argmax(1) == want.argmax(1)).mean())


def verify_export(onnx_path: Any, model: Any) -> list[str]:
    """An ONNX file of ``SegmentorGraph(model)`` with dynamic height and width, exact at
    :data:`CHECK_SIZES` against the untouched PyTorch model; the model itself left unchanged."""
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
    if len(session.get_inputs()) != 1:
        return [f"the graph has {len(session.get_inputs())} inputs; export SegmentorGraph(model) "
                "as it is (one image tensor in, logits out)"]
    dims = _dims(path)
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
            diff, agreement = _compare(session, graph, x)
        except Exception as err:  # a graph with baked-in pooling may not run at other sizes
            text = str(err).split("Status Message:")[-1].strip().splitlines()[0][:200]
            problems.append(f"at {height}x{width} ONNX Runtime could not run it ({text})")
            continue
        if diff > MAX_LOGIT_DIFF or agreement < MIN_AGREEMENT:
            problems.append(f"at {height}x{width} it differs from PyTorch: max |logit diff| "
                            f"{diff:.3g}, argmax agreement {100 * agreement:.2f} %")
    if problems:
        problems.append("a graph right only at the traced size has the traced pooling bins "
                        "baked in: export inside exact_adaptive_pooling(model)")
    return problems


def ort_vs_pytorch_reference(onnx_path: Any, model: Any, x: Any) -> tuple[float, float]:
    """(max |logit difference|, argmax agreement as a fraction) of the graph against PyTorch."""
    from helpers.onnx import SegmentorGraph

    return _compare(_session(onnx_path), SegmentorGraph(model).eval(), x)


def shifted_model(model: Any, x: Any) -> Any:
    """A copy of ``model`` that disagrees with it on about half the pixels of ``x``: the score
    of the class it predicts most is lowered (classifier bias) by that class's median margin."""
    import torch

    from helpers.onnx import SegmentorGraph

    with torch.no_grad():
        logits = SegmentorGraph(model).eval()(x)
    top = logits.argmax(1)
    cls = int(top.flatten().mode().values)
    best2 = logits.topk(2, dim=1).values
    margin = float((best2[:, 0] - best2[:, 1])[top == cls].median())
    other = copy.deepcopy(model).eval()
    with torch.no_grad():
        other.decode_head.conv_seg.bias[cls] -= margin
    return other


def verify_ort_vs_pytorch(ort_vs_pytorch: Callable, model: Any, onnx_path: Any) -> list[str]:
    """``ort_vs_pytorch(onnx_path, model, x)`` on the graph's own model and on a shifted copy."""
    import torch

    x = torch.randn(1, 3, 97, 131, generator=torch.Generator().manual_seed(6))
    problems = []
    for name, other in (("the model the graph was exported from", model),
                        ("a copy of the model that changes the class of about half the pixels",
                         shifted_model(model, x))):
        got = answered(ort_vs_pytorch(onnx_path, other, x.clone()))
        try:
            diff, agreement = (float(v) for v in got)
        except (TypeError, ValueError):
            return [f"it returned {got!r}, not two numbers (max |diff|, agreement)"]
        if not 0 <= agreement <= 1:
            return [f"for {name} the agreement is {agreement:g}: give it as a fraction of the "
                    "pixels, between 0 and 1"]
        want_diff, want_agreement = ort_vs_pytorch_reference(onnx_path, other, x)
        if want_diff <= MAX_LOGIT_DIFF:  # float rounding: its size depends on the session
            diff_ok = 0 <= diff <= MAX_LOGIT_DIFF
        else:
            diff_ok = abs(diff - want_diff) <= 1e-4 + 1e-3 * want_diff
        if not diff_ok:
            problems.append(f"for {name} your max |logit difference| is {diff:.4g}: not the "
                            "largest absolute difference between ORT's and PyTorch's logits")
        if abs(agreement - want_agreement) > 2e-3:
            problems.append(f"for {name} your argmax agreement is {100 * agreement:.2f} %: not "
                            "the share of pixels whose best class (over the class axis) is equal")
        if problems:
            break
    return problems
