"""Notebook 02's tasks: their givens and hidden probes (run inside the sandbox by the harness).

Tasks 1-3 each edit a fresh copy of mmseg's shipped Cityscapes PSPNet config (``cfg``), loaded
anew for every task: one task's grade never depends on another's edits. The probes read what the
student's config says and what mmseg and mmengine build from it (the model, the datasets, the
optimizer, the hooks). Task 4's probe runs ``final_lr`` on variants of the shipped config.

A task module (see teacher/tasks/__init__.py) imports only libraries at its top: it is compiled
inside the grading sandbox, where the course's package does not exist.
"""

import copy
import functools
import os
import warnings
from collections import Counter
from pathlib import Path

NOTEBOOK = "02_config"
PRELOAD = ("numpy", "torch", "mmengine.config", "mmengine.hooks", "mmengine.optim",
           "mmengine.registry", "mmseg.datasets", "mmseg.models", "mmseg.registry", "mmseg.utils")

BASE = "pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py"


def _config_dir() -> Path:
    import mmseg

    return Path(mmseg.__file__).parent / ".mim" / "configs"


def _shipped():
    """A fresh copy of the shipped Cityscapes config (the start of tasks 1-3)."""
    from mmengine.config import Config

    return Config.fromfile(str(_config_dir() / "pspnet" / BASE))


def _work_dir(ctx) -> str:
    return str(Path(ctx.scratch, "work_dirs", "pspnet_voc12"))


def where(node, text, path="cfg"):
    """(path, value) of every field under `node` whose key contains `text` (the notebook's)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if text in str(key):
                yield f"{path}.{key}", value
            yield from where(value, text, f"{path}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from where(value, text, f"{path}[{i}]")


def _imports(ns, ctx):
    """The notebook's imports and names before its tasks (section 1-3)."""
    import mmseg
    from mmengine.config import Config
    from mmseg.registry import DATASETS, MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    ns.update(os=os, warnings=warnings, Path=Path, mmseg=mmseg, Config=Config, MODELS=MODELS,
              DATASETS=DATASETS, register_all_modules=register_all_modules,
              config_dir=_config_dir(), base_path=_config_dir() / "pspnet" / BASE, where=where)


def _edits(ns, ctx):
    """Tasks 1-3: the imports, the shipped config as `base` and a fresh copy as `cfg`, the
    grader's VOC_ROOT, a WORK_DIR of its own and no Cityscapes checkpoint."""
    _imports(ns, ctx)
    ns.update(base=_shipped(), cfg=_shipped(), VOC_ROOT=ctx.voc_root, WORK_DIR=_work_dir(ctx),
              pretrained=None)


def _opaque(value):
    from data import plain

    return plain(value, opaque=True)


def _norms(node, where):
    """path → [type, requires_grad] of every norm_cfg under `node`."""
    found = {}
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "norm_cfg" and isinstance(value, dict):
                found[f"{where}.{key}"] = [_opaque(value.get("type")),
                                           _opaque(value.get("requires_grad", True))]
            elif key == "norm_cfg":
                found[f"{where}.{key}"] = _opaque(value)
            else:
                found.update(_norms(value, f"{where}.{key}"))
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            found.update(_norms(value, f"{where}[{i}]"))
    return found


def _model_edits(ns, ctx):
    from mmseg.registry import MODELS

    cfg = copy.deepcopy(ns["cfg"])  # the student's config, as the answer left it
    model_cfg = cfg.get("model", {})

    @functools.cache
    def built():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MODELS.build(copy.deepcopy(model_cfg))

    def norms():
        return {"config": _norms({"norm_cfg": cfg.get("norm_cfg"), "model": model_cfg}, "cfg"),
                "layers": dict(Counter(type(m).__name__ for m in built().modules()
                                       if "Norm" in type(m).__name__))}

    def classes():
        return {"config": [_opaque(model_cfg.get(h, {}).get("num_classes"))
                           for h in ("decode_head", "auxiliary_head")],
                "conv_seg": [built().decode_head.conv_seg.out_channels,
                             built().auxiliary_head.conv_seg.out_channels]}

    def weights():
        return {"pretrained": _opaque(model_cfg.get("pretrained")),
                "backbone init_cfg": _opaque(built().backbone.init_cfg)}

    return {"norm layers": norms, "classes": classes, "no ImageNet weights": weights}


def _pipe(pipeline):
    """A pipeline as plain data: each step's type name and its settings."""
    if not isinstance(pipeline, list | tuple):
        return _opaque(pipeline)
    out = []
    for step in pipeline:
        if not isinstance(step, dict):
            out.append(_opaque(step))
            continue
        kind = step.get("type")
        kind = kind if isinstance(kind, str) else getattr(kind, "__name__", _opaque(kind))
        out.append({"type": kind, **{str(k): _opaque(v) for k, v in step.items() if k != "type"}})
    return out


_LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def _data_edits(ns, ctx):
    from mmseg.registry import DATASETS

    cfg = copy.deepcopy(ns["cfg"])
    root = os.path.abspath(ctx.voc_root)

    def rel(path):  # a path as the config holds it, relative to the grader's VOC_ROOT
        return os.path.relpath(os.path.abspath(path), root) if isinstance(path, str) \
            else _opaque(path)

    def dataset(name):
        return cfg.get(name, {}).get("dataset", {})

    def kind(value):
        return value if isinstance(value, str) else getattr(value, "__name__", _opaque(value))

    def roots():
        return {"dataset_type": kind(cfg.get("dataset_type")),
                "data_root": rel(cfg.get("data_root")),
                "loaders": {n: [kind(dataset(n).get("type")), rel(dataset(n).get("data_root"))]
                            for n in _LOADERS}}

    def pipelines():
        return {"crops": [_opaque(cfg.get("crop_size")),
                          _opaque(cfg.get("data_preprocessor", {}).get("size")),
                          _opaque(cfg.get("model", {}).get("data_preprocessor", {})
                                  .get("size"))],
                "train_pipeline": _pipe(cfg.get("train_pipeline")),
                "test_pipeline": _pipe(cfg.get("test_pipeline")),
                "loaders": {n: _pipe(dataset(n).get("pipeline")) for n in _LOADERS}}

    def built(name):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            made = DATASETS.build(copy.deepcopy(dict(dataset(name))))
        return {"class": type(made).__name__, "length": len(made),
                "ann_file": rel(made.ann_file),
                "data_prefix": {k: rel(v) for k, v in sorted(made.data_prefix.items())},
                "samples": [[rel(made.get_data_info(i)[k]) for k in ("img_path", "seg_map_path")]
                            for i in ((0, len(made) - 1) if len(made) else ())]}

    def loaders():
        return {n: {"batch_size": _opaque(cfg.get(n, {}).get("batch_size")), "dataset": built(n)}
                for n in _LOADERS}

    return {"the dataset and its root": roots, "the crop and the pipelines": pipelines,
            "the loaders": loaders}


def _schedule_edits(ns, ctx):
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import HOOKS

    cfg = copy.deepcopy(ns["cfg"])
    work_root = os.path.abspath(_work_dir(ctx))

    def lr():
        wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), copy.deepcopy(cfg.optim_wrapper))
        return [_opaque(cfg.get("optimizer", {}).get("lr")),
                _opaque(cfg.get("optim_wrapper", {}).get("optimizer", {}).get("lr")),
                wrapper.param_groups[0]["lr"]]

    def loop():
        train = cfg.get("train_cfg", {})
        hooks = cfg.get("default_hooks", {})
        logger = HOOKS.build(copy.deepcopy(dict(hooks["logger"])))
        ckpt = HOOKS.build(copy.deepcopy(dict(hooks["checkpoint"])))
        return {"train_cfg": [_opaque(train.get(k)) for k in ("type", "max_iters",
                                                              "val_interval")],
                "param_scheduler": _opaque(cfg.get("param_scheduler")),
                "logger": _opaque(logger.interval),
                "checkpoint": _opaque([getattr(ckpt, a, None) for a in (
                    "interval", "by_epoch", "max_keep_ckpts", "save_best", "rules")])}

    def run():
        randomness = cfg.get("randomness")
        work = cfg.get("work_dir")
        return {"seed": _opaque(randomness.get("seed") if isinstance(randomness, dict)
                                else randomness),
                "work_dir": os.path.relpath(os.path.abspath(work), work_root)
                if isinstance(work, str) else _opaque(work),
                "load_from": _opaque(cfg.get("load_from"))}

    return {"the learning rate": lr, "the loop, the schedule and the hooks": loop,
            "the seed, the work dir and the weights": run}


# lr in optim_wrapper, lr in optimizer, power, eta_min, PolyLR's end, max_iters (begin stays 0)
_INSIDE = ((0.007, 0.01, 0.5, 0.0, 1000, 150),           # the Runner's lr is optim_wrapper's
           (0.01 / 8, 0.01 / 8, 0.9, 1e-4, 80000, 6000),  # the seed's quirk, another length
           (0.03, 0.03, 2.0, 1e-3, 500, 1))               # one step
_END = ((0.02, 0.02, 2.0, 3e-4, 120, 300),               # runs past the schedule's end
        (0.01, 0.01, 1.0, 1e-5, 1000, 999),              # t = end - 1: the last change
        (0.05, 0.05, 0.9, 1e-4, 20000, 20000))           # the schedule ends with the run


def _final_lr(ns, ctx):
    final_lr = ns["final_lr"]
    shipped = _shipped()

    def run(cases):
        got = []
        for lr, lr_copy, power, eta_min, end, iters in cases:
            cfg = copy.deepcopy(shipped)
            cfg.optim_wrapper.optimizer.lr, cfg.optimizer.lr = lr, lr_copy
            cfg.param_scheduler[0].update(power=power, eta_min=eta_min, end=end)
            cfg.train_cfg.max_iters = iters
            value = final_lr(cfg)
            value = value.item() if hasattr(value, "item") and not isinstance(value, str) \
                else value
            got.append(value if type(value) in (int, float) else f"<{type(value).__name__}>")
        return got

    return {"inside the schedule": lambda: run(_INSIDE),
            "at and past the schedule's end": lambda: run(_END)}


TASKS = {
    "model_edits": dict(
        test="model_edits_test", givens=_edits, probe=_model_edits,
        points={"norm layers": 1, "classes": 0.5, "no ImageNet weights": 0.5},
        say={"norm layers": "some norm_cfg of the config, or a norm layer of the model mmseg "
                            "builds from it, is not the asked one",
             "classes": "a head's num_classes, or the classifier mmseg builds, is not VOC's",
             "no ImageNet weights": "the backbone would still load ImageNet weights"}),
    "data_edits": dict(
        test="data_edits_test", givens=_edits, probe=_data_edits,
        points={"the dataset and its root": 1, "the crop and the pipelines": 1,
                "the loaders": 1},
        say={"the dataset and its root": "dataset_type, data_root or a loader's dataset type "
                                         "or root is not VOC's at VOC_ROOT",
             "the crop and the pipelines": "a crop size, a pipeline or a loader's copy of it "
                                           "is not the asked one",
             "the loaders": "a loader's batch size, or the dataset mmseg builds from it (its "
                            "split file, folders, samples), is not the asked one"}),
    "schedule_edits": dict(
        test="schedule_edits_test", givens=_edits, probe=_schedule_edits,
        points={"the learning rate": 0.5, "the loop, the schedule and the hooks": 1,
                "the seed, the work dir and the weights": 0.5},
        say={"the learning rate": "a copy of the learning rate, or the optimizer mmengine "
                                  "builds, does not have the homework's",
             "the loop, the schedule and the hooks": "the training loop, the lr schedule, or "
                                                     "the logger or checkpoint hook mmengine "
                                                     "builds is not the asked one",
             "the seed, the work dir and the weights": "the seed, work_dir or load_from is "
                                                       "not the asked one"}),
    "final_lr": dict(
        test="final_lr_test", givens=_imports, probe=_final_lr, rtol=1e-9, atol=1e-15,
        points={"inside the schedule": 0.5, "at and past the schedule's end": 0.5},
        say={"inside the schedule": "wrong while t is inside PolyLR's schedule (other lr, "
                                    "power, eta_min, end; lr copies that differ)",
             "at and past the schedule's end": "wrong at the schedule's last step or past "
                                               "its end"}),
}
