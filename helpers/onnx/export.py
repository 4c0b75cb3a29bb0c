"""Export an mmseg segmentor to ONNX, verify the graph, report; the command line (notebook 05).

:func:`export_onnx` swaps in the exact pooling of :mod:`helpers.onnx.pooling`, exports the
:class:`~helpers.onnx.graph.SegmentorGraph` with torch's dynamo exporter, then verifies what it
wrote (``onnx.checker``, then ONNX Runtime against PyTorch on several sizes); only a graph that
passes is moved to the requested path. :func:`torchscript_dump_hidden` keeps the old TorchScript
exporter's graph dump off screen while notebook 05 shows the homework's failure.

Command line::

    python -m helpers.onnx --config FILE --checkpoint FILE --out FILE.onnx \\
        [--size H W | --dynamic] [--deploy] [--int8 --calib DIR] [--force]

Exit status: 0 when the graph passed verification and was written; 1 when it failed
verification (nothing written); 2 on bad input (missing or broken files, an unsafe or
mismatched checkpoint, an output that exists without ``--force``), with a one-line error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from helpers import deploy
from helpers.checkpoint import cli_guard, init_model
from helpers.onnx.graph import (
    ExportError,
    SegmentorGraph,
    graph_metadata,
    min_input_side,
    output_stride,
)
from helpers.onnx.pooling import exact_adaptive_pooling
from helpers.onnx.quantize import calibration_images, quantize_int8
from helpers.outputs import atomic_path, refuse_existing

__all__ = [
    "MAX_LOGIT_DIFF",
    "MIN_AGREEMENT",
    "VERIFY_SIZES",
    "ExportReport",
    "SizeCheck",
    "export_onnx",
    "torchscript_dump_hidden",
    "main",
    "verify_onnx",
]

#: Sizes (height, width) checked after every dynamic export: square, landscape, portrait, odd,
#: and sides that are multiples of neither 8 nor 48.
VERIFY_SIZES: tuple[tuple[int, int], ...] = (
    (256, 256), (375, 500), (500, 375), (97, 131), (333, 257))
#: Acceptance thresholds of the verification: logits within float rounding, argmax identical
#: but for a pixel in ten thousand where two classes tie.
MAX_LOGIT_DIFF = 1e-4
MIN_AGREEMENT = 0.9999


@dataclass
class SizeCheck:
    """Verification of one input size: ORT against PyTorch."""

    height: int
    width: int
    max_abs_diff: float
    agreement: float
    error: str = ""  #: ONNX Runtime's error when the graph could not even run at this size

    @property
    def passed(self) -> bool:
        return (not self.error and self.max_abs_diff <= MAX_LOGIT_DIFF
                and self.agreement >= MIN_AGREEMENT)


@dataclass
class ExportReport:
    """What :func:`export_onnx` did and whether the graph passed verification."""

    path: Path
    dynamic: bool
    preprocess: bool
    postprocess: bool
    checker_ok: bool = False
    checks: list[SizeCheck] = field(default_factory=list)
    size_mb: float = 0.0
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.checker_ok and bool(self.checks) and all(c.passed for c in self.checks)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per verified size (handy for ``pandas.DataFrame``)."""
        return [dict(size=f"{c.height}x{c.width}", max_abs_logit_diff=c.max_abs_diff,
                     argmax_agreement=c.agreement, passed=c.passed, error=c.error)
                for c in self.checks]

    def __str__(self) -> str:
        kind = "dynamic batch/H/W" if self.dynamic else "static"
        head = (f"{'PASSED' if self.passed else 'FAILED'}: {self.path} ({kind}, "
                f"preprocess={self.preprocess}, postprocess={self.postprocess}, "
                f"{self.size_mb:.1f} MB)\n  onnx.checker: {'ok' if self.checker_ok else 'FAILED'}")
        lines = [f"  {c.height:>4}x{c.width:<4} max|logit diff| {c.max_abs_diff:.2e} "
                 f"(<= {MAX_LOGIT_DIFF:g})  argmax agreement {100 * c.agreement:.4f} % "
                 f"(>= {100 * MIN_AGREEMENT:g} %)  {'ok' if c.passed else 'FAIL'}"
                 if not c.error else f"  {c.height:>4}x{c.width:<4} FAIL: {c.error}"
                 for c in self.checks]
        tail = [f"  error: {self.error}"] if self.error else []
        return "\n".join([head, *lines, *tail])


def _example_inputs(graph: SegmentorGraph, batch: int, height: int, width: int,
                    seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    if graph.preprocess:
        x = torch.randint(0, 256, (batch, height, width, 3), generator=gen, dtype=torch.uint8)
    else:
        x = torch.randn(batch, 3, height, width, generator=gen)
    if graph.postprocess:
        # an output size unlike the input's, as after a test-time Resize
        return x, torch.tensor([height * 3 // 4 + 1, width * 4 // 5 + 1])
    return (x,)


def verify_onnx(segmentor: nn.Module, onnx_path: str | Path, sizes: Sequence[tuple[int, int]],
                preprocess: bool = False, postprocess: bool = False,
                batch: int = 1) -> list[SizeCheck]:
    """Run the graph in ONNX Runtime and the untouched PyTorch model on the same random inputs.

    The reference uses the model's own ``nn.AdaptiveAvgPool2d``, so this also proves the
    pooling swap exact. Returns one :class:`SizeCheck` per size.
    """
    session = deploy.make_session(onnx_path)
    reference = SegmentorGraph(segmentor, preprocess, postprocess).eval()
    names = [i.name for i in session.get_inputs()]
    # A graph that fails to run is a failed check with ORT's message (below); ORT's logger would
    # also print that message to stderr, where a notebook shows it as an error box.
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4
    checks = []
    for k, (height, width) in enumerate(sizes):
        inputs = _example_inputs(reference, batch, height, width, seed=k)
        with torch.no_grad():
            expected = reference(*inputs)
        try:
            got = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)},
                              quiet)
        except Exception as err:  # a wrong graph may not even run; that is a failed check
            message = str(err).split("Status Message:")[-1].strip().splitlines()[0]
            checks.append(SizeCheck(height, width, float("inf"), 0.0, error=message))
            continue
        ref_logits = expected[1] if postprocess else expected
        ort_logits = got[1] if postprocess else got[0]
        ref_mask = ref_logits.argmax(1).numpy()
        ort_mask = got[0] if postprocess else ort_logits.argmax(1)
        diff = float(np.abs(ort_logits - ref_logits.numpy()).max())
        checks.append(SizeCheck(height, width, diff, float((ort_mask == ref_mask).mean())))
    return checks


def export_onnx(segmentor: nn.Module, out: str | Path, size: tuple[int, int] | None = None,
                preprocess: bool = False, postprocess: bool = False,
                verify_sizes: Sequence[tuple[int, int]] | None = None,
                opset: int = 18, exact_pooling: bool = True) -> ExportReport:
    """Export ``segmentor`` to one self-contained ``.onnx``, verify it, then move it into place.

    ``size=(H, W)`` gives a static graph for batch 1 at that size; ``size=None`` a graph with
    dynamic batch, height and width. The graph is written to a temporary file next to ``out``;
    only when ``onnx.checker`` and ORT-vs-PyTorch verification pass is it renamed to ``out``.
    A failed export keeps nothing at ``out`` from this run and raises :class:`ExportError`
    carrying the report (``err.report``). ``exact_pooling=False`` exports the model's own
    ``nn.AdaptiveAvgPool2d`` as torch does (to see the failure it causes).
    """
    out = Path(out)
    segmentor = segmentor.eval().cpu()
    min_side = min_input_side(segmentor)
    if size is not None:
        height, width = (int(s) for s in size)
        if min(height, width) < min_side:
            raise ExportError(
                f"static size {height}x{width} is too small for this network: its smallest "
                f"side is {min_side} px (output stride {output_stride(segmentor)} and the "
                f"{max(getattr(segmentor.decode_head, 'pool_scales', (1,)))}x-bin pyramid "
                f"pooling need at least one feature pixel per bin). Use --size with sides "
                f">= {min_side}.")
        sizes = [(height, width)] if verify_sizes is None else list(verify_sizes)
    else:
        height, width = 256, 320
        sizes = list(VERIFY_SIZES if verify_sizes is None else verify_sizes)
    report = ExportReport(out, size is None, preprocess, postprocess)
    graph = SegmentorGraph(segmentor, preprocess, postprocess).eval()
    example = _example_inputs(graph, 1 if size is not None else 2, height, width)
    input_names = ["image" if preprocess else "input"] + (["out_size"] if postprocess else [])
    output_names = ["mask", "logits"] if postprocess else ["logits"]
    dynamic_shapes = None
    if size is None:
        dims = torch.export.Dim
        hw = (1, 2) if preprocess else (2, 3)
        spec = {0: dims("batch", max=256), hw[0]: dims("height", min=min_side, max=8192),
                hw[1]: dims("width", min=min_side, max=8192)}
        dynamic_shapes = (spec, None) if postprocess else (spec,)

    with atomic_path(out) as tmp:  # deleted on any failure, Ctrl-C included
        try:
            swap = exact_adaptive_pooling(segmentor) if exact_pooling else \
                contextlib.nullcontext()
            with torch.no_grad(), swap:
                torch.onnx.export(graph, example, str(tmp), dynamo=True, external_data=False,
                                  input_names=input_names, output_names=output_names,
                                  dynamic_shapes=dynamic_shapes, opset_version=opset,
                                  verbose=False)
            model = onnx.load(str(tmp))
            onnx.helper.set_model_props(model, graph_metadata(graph, min_side))
            onnx.save(model, str(tmp))
            onnx.checker.check_model(str(tmp), full_check=True)
            report.checker_ok = True
            report.checks = verify_onnx(segmentor, tmp, sizes, preprocess, postprocess)
            report.size_mb = tmp.stat().st_size / 2**20
        except Exception as err:  # reported below; the graph never reaches `out`
            report.error = f"{type(err).__name__}: {err}"
        if not report.passed:
            exc = ExportError(f"export failed verification, nothing written to {out}\n{report}")
            exc.report = report  # type: ignore[attr-defined]
            raise exc
    return report


@contextlib.contextmanager
def torchscript_dump_hidden():
    """Keep the dump torch's TorchScript exporter (``dynamo=False``) writes on failure off screen.

    On failure that exporter prints the whole TorchScript graph (tens of kB) onto the process's
    stderr from C++, whatever ``verbose`` says; inside this block it goes to a temporary file
    instead, which also keeps a Jupyter kernel from blocking on that output. Exceptions pass
    through unchanged: the caller catches and shows the exporter's own error.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


@cli_guard  # CheckpointError (not found, not a checkpoint, unsafe, mismatched): status 2
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.onnx``: export, verify, print the report (exit status: see above)."""
    parser = argparse.ArgumentParser(prog="python -m helpers.onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="config file the model was trained with")
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pth)")
    parser.add_argument("--out", required=True, type=Path, help="output FILE.onnx")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="static size")
    shape.add_argument("--dynamic", action="store_true", help="dynamic batch/height/width")
    parser.add_argument("--deploy", action="store_true",
                        help="put preprocessing (BGR uint8 in) and postprocessing (mask out) "
                             "in the graph")
    parser.add_argument("--int8", action="store_true", help="also write FILE.int8.onnx")
    parser.add_argument("--calib", type=Path, help="folder of training images for --int8")
    parser.add_argument("--calib-count", type=int, default=16)
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)
    if args.int8 and args.calib is None:
        parser.error("--int8 needs --calib DIR (a folder of training images)")
    if args.size is None and not args.dynamic:
        args.size = [512, 512]
    int8_out = args.out.with_suffix(".int8.onnx")
    try:
        refuse_existing([args.out, *([int8_out] if args.int8 else [])], force=args.force)
        calib = calibration_images(args.calib, args.calib_count) if args.int8 else []
        segmentor = init_model(args.config, args.checkpoint, device="cpu").eval()
    except (FileNotFoundError, FileExistsError, ExportError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    try:
        report = export_onnx(segmentor, args.out, size=None if args.dynamic else args.size,
                             preprocess=args.deploy, postprocess=args.deploy)
        print(report)
        if args.int8:
            int8 = quantize_int8(args.out, int8_out, calib)
            print(f"INT8: {int8} ({int8.stat().st_size / 2**20:.1f} MB)")
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
