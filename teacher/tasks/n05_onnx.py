"""Notebook 05's tasks: their givens and hidden probes (run inside the sandbox by the harness).

A task module (see teacher/tasks/__init__.py) imports only libraries at its top: it is compiled
inside the grading sandbox, where the course's package does not exist.

:func:`fixtures` (outside the sandbox, once per grading run) writes a config (the smoke preset's
PSPNet, cut to two backbone stages and two pooling scales so that torch's exporter traces it in a
few seconds) and two fixed-seed PSPNets built from it (``graph_model.pth``, ``other_model.pth``),
and exports the first with the course's own exporter to a dynamic, verified
``pspnet_dynamic.onnx``. Task 2 exports the
*other* model (so a copy of the fixture's graph is wrong at every size); Tasks 3 and 4 run the
fixture's graph, Task 3 against the model it was exported from, rebuilt with mmseg's
``init_model``.
"""

import os
from pathlib import Path

NOTEBOOK = "05_onnx"
PRELOAD = ("numpy", "cv2", "torch", "onnx", "onnx.helper", "onnxruntime", "mmcv",
           "mmengine.config", "mmseg.apis", "mmseg.models", "mmseg.models.utils", "torch.onnx",
           "torch.export", "torch.export._trace", "torch._dynamo", "onnxscript", "onnx_ir",
           "torch.onnx._internal.exporter._core", "torch.onnx._internal.exporter._compat")

CONFIG = "pspnet_smoke.py"
GRAPH_MODEL = "graph_model.pth"  # the model of the fixture's graph (Tasks 3 and 4)
OTHER_MODEL = "other_model.pth"  # the model Task 2 exports
DYNAMIC = "pspnet_dynamic.onnx"
COURSE_METADATA = ("classes", "palette", "input_format", "test_resize", "min_side")

#: What givens made for the probe of the same task (each task runs in its own forked child).
_GIVEN: dict = {}


def warm_up():
    """torch.onnx's exporter builds its tables on its first call (seconds): one tiny export in
    the grading server, so that every hand-in's export costs what the export itself costs."""
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                              torch.nn.Upsample(scale_factor=2, mode="bilinear")).eval()
    dynamic = torch.export.Dim.DYNAMIC
    with torch.no_grad():
        torch.onnx.export(net, (torch.randn(1, 3, 16, 16),), dynamo=True, verbose=False,
                          external_data=False, opset_version=18,
                          dynamic_shapes=({2: dynamic, 3: dynamic},))


def fixtures(folder, voc_root):
    """The smoke config, two fixed-seed models and the course's dynamic export of the first."""
    import torch
    from mmseg.apis import init_model

    from helpers import voc
    from helpers.config import build_config
    from helpers.onnx import export_onnx

    folder = Path(folder)
    cfg = build_config("smoke", voc_root, str(folder / "work"))
    cfg.pop("custom_imports", None)  # helpers.checkpoint: not in the sandbox
    cfg.model.backbone.update(num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(0, 1))
    # pooling to 1 and 3 cells (not 1, 2, 3, 6): 3 divides few feature maps, so an export without
    # the exact pooling is still wrong at most sizes, and the student's export traces 10 cells,
    # not 50 (9 s instead of 13 s on 2 cores)
    cfg.model.decode_head.update(in_channels=2 * cfg.model.backbone.base_channels, in_index=1,
                                 pool_scales=(1, 3))
    cfg.model.auxiliary_head = None
    cfg.dump(str(folder / CONFIG))
    meta = {"dataset_meta": {"classes": list(voc.CLASSES),
                             "palette": [list(map(int, c)) for c in voc.PALETTE]}}
    for name, seed in ((GRAPH_MODEL, 5), (OTHER_MODEL, 6)):
        torch.manual_seed(seed)
        model = init_model(str(folder / CONFIG), None, device="cpu")
        _settle_batch_norm(model, seed)
        torch.save({"state_dict": model.state_dict(), "meta": meta}, folder / name)
    model = init_model(str(folder / CONFIG), str(folder / GRAPH_MODEL), device="cpu")
    export_onnx(model.eval(), folder / DYNAMIC, verify_sizes=[(97, 131), (161, 97)])


def _settle_batch_norm(model, seed):
    """Running statistics of random images (a fresh model's are 0 and 1): logits of a sane size,
    which differ from pixel to pixel."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # a plain average over the batches below
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model.decode_head(model.extract_feat(torch.randn(2, 3, 96, 128, generator=gen)))
    model.eval()


def _model(ctx, name):
    """A fixture's model, built as mmseg's docs do (config and checkpoint)."""
    from mmseg.apis import init_model

    return init_model(str(Path(ctx.fixtures, CONFIG)), str(Path(ctx.fixtures, name)),
                      device="cpu").eval()


def _session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------------------------
# Task 1: bin_edges
# --------------------------------------------------------------------------------------------
def _bin_edges_givens(ns, ctx):
    import numpy as np

    ns.update(np=np)


def _bin_edges(ns, ctx):
    bin_edges = ns["bin_edges"]

    def cells(cases):
        return lambda: {f"{n} into {b}": [[s, e] for s, e in bin_edges(n, b)] for n, b in cases}

    return {"sides the cells divide": cells(((63, 3), (6, 6), (300, 6), (20, 1))),
            "sides they do not divide": cells(((47, 6), (19, 2), (100, 7), (41, 6), (11, 4))),
            "fewer pixels than cells": cells(((4, 6), (1, 3), (5, 7)))}


# --------------------------------------------------------------------------------------------
# Task 2: export_exact
# --------------------------------------------------------------------------------------------
EXPORT_SIZES = ((150, 410), (61, 77), (288, 288), (45, 203))


def _export_givens(ns, ctx):
    import torch
    from course.graph import SegmentorGraph
    from course.pooling import exact_adaptive_pooling

    model = _model(ctx, OTHER_MODEL)
    onnx_dir = str(Path(ctx.scratch, "work_dirs", "pspnet_voc12", "onnx"))
    Path(onnx_dir).mkdir(parents=True)
    _GIVEN.update(model=model, onnx_dir=onnx_dir)
    ns.update(model=model, graph=SegmentorGraph(model).eval(),
              exact_adaptive_pooling=exact_adaptive_pooling, torch=torch, ONNX_DIR=onnx_dir,
              Path=Path)


def _export_exact(ns, ctx):
    import numpy as np
    import onnx
    import torch

    model, onnx_dir = _GIVEN["model"], _GIVEN["onnx_dir"]

    def written():
        path = Path(ns["my_onnx"])
        if not path.is_file():
            raise FileNotFoundError("my_onnx names no file")
        return path

    def made():
        path = written()
        proto = onnx.load(str(path), load_external_data=False)
        dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
        return {"file": os.path.relpath(path, onnx_dir),
                "course metadata": sorted({p.key for p in proto.metadata_props}
                                          & set(COURSE_METADATA)),
                "inputs": len(_session(path).get_inputs()),
                "C, H, W": ["dynamic" if isinstance(d, str) or d == 0 else d for d in dims[1:]]}

    def unchanged():
        written()
        return [f"{type(m).__module__}.{type(m).__qualname__}" for m in model.modules()]

    def sizes():
        session = _session(written())
        name = session.get_inputs()[0].name
        gen = torch.Generator().manual_seed(2025)
        got = {}
        for h, w in EXPORT_SIZES:
            x = torch.rand(1, 3, h, w, generator=gen) * 4 - 2
            try:
                out = session.run(None, {name: x.numpy()})[0]
            except Exception:  # noqa: BLE001 (a graph with baked-in cells may not run at all)
                got[f"{h}x{w}"] = "ONNX Runtime could not run it"
                continue
            top = out.argmax(1)
            got[f"{h}x{w}"] = {
                "shape": list(out.shape),
                "class mean": out.mean(axis=(0, 2, 3)).round(4),
                "class max": out.max(axis=(0, 2, 3)).round(4),
                "argmax share": (np.bincount(top.ravel(), minlength=out.shape[1])
                                 / top.size).round(4)}
        return got

    return {"a dynamic graph of your own": made, "the model unchanged": unchanged,
            "right at other sizes": sizes}


# --------------------------------------------------------------------------------------------
# Task 3: ort_vs_pytorch
# --------------------------------------------------------------------------------------------
def _ort_givens(ns, ctx):
    import numpy as np
    import onnxruntime as ort
    import torch
    from course.graph import SegmentorGraph

    ns.update(SegmentorGraph=SegmentorGraph, ort=ort, torch=torch, np=np)


def _ort_vs_pytorch(ns, ctx):
    import torch

    ort_vs_pytorch = ns["ort_vs_pytorch"]
    graph = str(Path(ctx.fixtures, DYNAMIC))
    model = _model(ctx, GRAPH_MODEL)
    from course.graph import halved_model, shifted_model

    halved = halved_model(model)  # the graph's model with its classifier's weights halved
    # lowers the class the model predicts most, by a margin measured on another image: on the
    # images compared it changes the class of many pixels, without exact ties
    other_image = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(7)) * 3 - 1.5
    shifted = shifted_model(model, other_image)

    def compare(m, h, w, seed):
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 3 - 1.5
        diff, agreement = (float(v) for v in ort_vs_pytorch(graph, m, x.clone()))
        return {"diff within float rounding": 0 <= diff <= 1e-4,
                "diff": None if 0 <= diff <= 1e-4 else diff, "agreement": agreement}

    return {"the graph's own model": lambda: compare(model, 120, 200, 8),
            "models that differ from the graph": lambda: [compare(halved, 75, 143, 9),
                                                          compare(shifted, 161, 97, 10)]}


# --------------------------------------------------------------------------------------------
# Task 4: segment_onnx
# --------------------------------------------------------------------------------------------
def _config(ctx):
    from mmengine.config import Config

    return Config.fromfile(str(Path(ctx.fixtures, CONFIG)))


def _segment_givens(ns, ctx):
    import cv2
    import numpy as np

    preprocessor = _config(ctx).model.data_preprocessor
    ns.update(cv2=cv2, np=np, MEAN=np.array(preprocessor.mean, dtype=np.float32),
              STD=np.array(preprocessor.std, dtype=np.float32))


def _conv_graph(path, classes, seed, input_name):
    """A 1 x 1 convolution from 3 channels to ``classes`` logits (float N x 3 x H x W in): its
    arg-max follows every pixel's colour, so each step of a deployment shows in the mask."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(classes, 3, 1, 1)).astype(np.float32)
    bias = rng.normal(scale=0.3, size=classes).astype(np.float32)
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes, "H", "W"])
    node = helper.make_node("Conv", [input_name, "w", "b"], ["logits"])
    graph = helper.make_graph([node], "conv1x1", [x], [y], [numpy_helper.from_array(weight, "w"),
                                                           numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def _deployment_size(cfg, image):
    """(width, height) at which the config's test-time Resize shows ``image`` to the network."""
    import mmcv

    resize = next(step for step in cfg.test_pipeline if step["type"] == "Resize")
    height, width = image.shape[:2]
    if not resize.get("keep_ratio"):
        return tuple(int(s) for s in resize["scale"])
    return tuple(mmcv.rescale_size((width, height), tuple(resize["scale"])))


def _fingerprint(mask, count=200):
    import numpy as np

    mask = np.asarray(mask)
    rng = np.random.default_rng(11)
    rows = rng.integers(0, mask.shape[0], count)
    cols = rng.integers(0, mask.shape[1], count)
    shares = np.bincount(mask.ravel().astype(np.int64), minlength=21) / mask.size
    return {"shape": list(mask.shape), "integer": bool(np.issubdtype(mask.dtype, np.integer)),
            "sampled": mask[rows, cols].astype(int).tolist(), "shares": shares.round(3)}


def _segment_onnx(ns, ctx):
    import cv2
    import numpy as np

    segment_onnx = ns["segment_onnx"]
    conv = _session(_conv_graph(Path(ctx.scratch, "conv.onnx"), classes=7, seed=21,
                                input_name="image_in"))

    def on_conv(cases):
        got = {}
        for k, (h, w, size) in enumerate(cases):
            small = np.random.default_rng(5 + k).integers(0, 256, (6, 5, 3), dtype=np.uint8)
            image = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
            got[f"{w}x{h} at {size[0]}x{size[1]}"] = _fingerprint(
                segment_onnx(conv, image.copy(), size))
        return got

    def on_network():
        cfg = _config(ctx)
        session = _session(Path(ctx.fixtures, DYNAMIC))
        ids = Path(ctx.voc_root, "ImageSets", "Segmentation", "val.txt").read_text().split()
        got = {}
        for image_id in (ids[2], ids[-1]):
            image = cv2.imread(str(Path(ctx.voc_root, "JPEGImages", f"{image_id}.jpg")))
            got[image_id] = _fingerprint(segment_onnx(session, image.copy(),
                                                      _deployment_size(cfg, image)))
        return got

    return {"a 1 x 1 convolution, image shrunk": lambda: on_conv([(77, 131, (64, 40))]),
            "a 1 x 1 convolution, image enlarged or kept": lambda: on_conv(
                [(120, 45, (90, 240)), (33, 33, (33, 33))]),
            "the exported network on validation images": on_network}


TASKS = {
    "bin_edges": dict(
        test="bin_edges_test", givens=_bin_edges_givens, probe=_bin_edges,
        points={"sides the cells divide": 0.25, "sides they do not divide": 0.5,
                "fewer pixels than cells": 0.25},
        say={"sides the cells divide": "wrong when the cell count divides the side",
             "sides they do not divide": "wrong when the cell count does not divide the side "
                                         "(neighbouring cells share pixels)",
             "fewer pixels than cells": "wrong when the side has fewer pixels than cells"}),
    "export_exact": dict(
        test="export_exact_test", givens=_export_givens, probe=_export_exact,
        uses=("graph", "pooling"), rtol=1e-4, atol=1e-3, timeout=180,
        points={"a dynamic graph of your own": 0.5, "the model unchanged": 0.5,
                "right at other sizes": 1},
        say={"a dynamic graph of your own": "not one graph of yours at ONNX_DIR/mine.onnx with "
                                            "one input whose height and width are dynamic",
             "the model unchanged": "the model is not the same after your cell (swap the "
                                    "pooling only for the export)",
             "right at other sizes": "the graph is wrong at sizes other than the traced one"}),
    "ort_vs_pytorch": dict(
        test="ort_vs_pytorch_test", givens=_ort_givens, probe=_ort_vs_pytorch, uses=("graph",),
        rtol=1e-3,
        points={"the graph's own model": 1, "models that differ from the graph": 1},
        say={"the graph's own model": "wrong for the model the graph was exported from",
             "models that differ from the graph": "wrong for a model that differs from the "
                                                  "graph (max |difference|, argmax agreement)"}),
    "segment_onnx": dict(
        test="segment_onnx_test", givens=_segment_givens, probe=_segment_onnx, atol=2e-3,
        points={"a 1 x 1 convolution, image shrunk": 1,
                "a 1 x 1 convolution, image enlarged or kept": 1,
                "the exported network on validation images": 1},
        say={"a 1 x 1 convolution, image shrunk": "wrong masks from a small graph whose logits "
                                                  "follow each pixel's colour, the network "
                                                  "seeing a smaller image",
             "a 1 x 1 convolution, image enlarged or kept": "wrong masks from a small graph "
                                                            "whose logits follow each pixel's "
                                                            "colour, the network seeing a "
                                                            "larger or same-size image",
             "the exported network on validation images": "wrong masks from the exported "
                                                          "PSPNet on validation images"}),
}
