"""Notebook 00's tasks: their givens and hidden probes (run inside the sandbox by the harness).

A task module (see teacher/tasks/__init__.py) imports only libraries at its top: it is compiled
inside the grading sandbox, where the course's package does not exist.
"""

import os
from pathlib import Path

NOTEBOOK = "00_environment"
PRELOAD = ("numpy", "torch", "mmengine.config", "mmseg.registry", "mmseg.utils",
           "packaging.version")


def _configs():
    import mmseg

    return Path(mmseg.__file__).parent / ".mim" / "configs"


def _library(ns, ctx):
    """What every answer of this notebook is given: the notebook's imports and CONFIGS."""
    import mmseg
    from mmengine.config import Config
    from mmseg.registry import DATASETS, METRICS, MODELS, TRANSFORMS
    from mmseg.utils import register_all_modules

    register_all_modules()
    ns.update(os=os, Path=Path, mmseg=mmseg, Config=Config, DATASETS=DATASETS, MODELS=MODELS,
              TRANSFORMS=TRANSFORMS, METRICS=METRICS, CONFIGS=_configs())


def _voc_configs(ns, ctx):
    voc_configs = ns["voc_configs"]

    def made_up():
        folder = Path(ctx.scratch, "made_up")
        folder.mkdir()
        for name in ("z_voc12.py", "b_voc12.py", "y_ade20k.py", "voc12.txt", "a_voc12.py.orig"):
            (folder / name).touch()
        (folder / "m_voc12.py.d").mkdir()
        return voc_configs(str(folder))

    return {"mmseg's folder": lambda: [voc_configs(_configs() / "pspnet"),
                                       voc_configs(str(_configs() / "pspnet"))],
            "other folders": made_up}


VERSIONS = ("2.0.0rc2", "2.0.0rc4", "2.0.1", "2.1.0", "2.1.99", "2.2.0rc1", "2.2.0", "2.11.0",
            "10.0")


def _mmcv_accepted(ns, ctx):
    mmcv_accepted, mmseg = ns["mmcv_accepted"], ns["mmseg"]

    def moved():  # a function that reads mmseg's bounds follows them when they move
        mmseg.MMCV_MIN, mmseg.MMCV_MAX = "2.1.0", "2.12.0"
        return [mmcv_accepted(v) for v in VERSIONS]

    return {"mmseg's bounds": lambda: [mmcv_accepted(v) for v in VERSIONS],
            "other bounds": moved}


def _voc_head(ns, ctx):
    import torch

    head = ns.get("head")

    def layers():
        kind = type(head)
        return {"class": f"{kind.__module__}.{kind.__qualname__}",
                "state": [[k, list(v.shape)] for k, v in head.state_dict().items()],
                "bins": [m[0].output_size for m in head.psp_modules]}

    def scores():
        with torch.no_grad():
            return list(head.eval()([torch.rand(2, 64, 12, 12)]).shape)

    return {"the head's layers": layers, "its scores": scores}


_SHIPPED = ("deeplabv3plus/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py",
            "fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py",
            "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py",
            "pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-769x769.py")


def _recipe(ns, ctx):
    recipe = ns["recipe"]
    base = str(_configs() / "pspnet" / "pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py")

    def made(name, text, as_path):
        path = Path(ctx.scratch, name)
        path.write_text(text)
        return dict(recipe(path if as_path else str(path)))

    return {
        "shipped configs": lambda: {n: dict(recipe(_configs() / n)) for n in _SHIPPED},
        "a child that changes variables only": lambda: made(
            "crop_and_pipeline_variables.py",
            f"_base_ = [{base!r}]\ncrop_size = (128, 128)\ntrain_pipeline = [dict(type="
            "'LoadImageFromFile'), dict(type='RandomCrop', crop_size=(64, 64))]\n", False),
        "no auxiliary head, a ConcatDataset": lambda: [made(
            "voc_like.py", f"_base_ = [{base!r}]\nmodel = dict(auxiliary_head=None, "
            "decode_head=dict(num_classes=21))\ntrain_dataloader = dict(batch_size=8)\n"
            "train_cfg = dict(max_iters=4000)\n", True), made(
            "standalone.py", "model = dict(type='EncoderDecoder', backbone=dict(type="
            "'MobileNetV2', widen_factor=1.0), decode_head=dict(type='ASPPHead', num_classes=7))"
            "\n_pipe = [dict(type='RandomResize', scale=(300, 200)), dict(type='RandomCrop', "
            "crop_size=[96, 160], cat_max_ratio=0.75)]\ntrain_dataloader = dict(batch_size=3, "
            "dataset=dict(type='ConcatDataset', datasets=[dict(type='PascalContextDataset', "
            "pipeline=_pipe), dict(type='ADE20KDataset', pipeline=[])]))\ntrain_cfg = dict("
            "type='IterBasedTrainLoop', max_iters=1234)\n", False)],
    }


TASKS = {
    "voc_configs": dict(
        test="voc_configs_test", givens=_library, probe=_voc_configs,
        points={"mmseg's folder": 0.5, "other folders": 0.5},
        say={"other folders": "wrong on a folder of made-up files (other suffixes, a folder "
                              "whose name ends in .py)"}),
    "mmcv_accepted": dict(
        test="mmcv_accepted_test", givens=_library, probe=_mmcv_accepted,
        points={"mmseg's bounds": 0.5, "other bounds": 0.5},
        say={"mmseg's bounds": "wrong for some versions (release candidates, 2.10 and above?)",
             "other bounds": "wrong once mmseg.MMCV_MIN and MMCV_MAX change: read them, don't "
                             "type them"}),
    "voc_head": dict(
        test="voc_head_test", givens=_library, probe=_voc_head,
        points={"the head's layers": 1, "its scores": 1},
        say={"the head's layers": "not a PSPHead with the asked channels, pooling scales and "
                                  "classes",
             "its scores": "its scores on a batch have the wrong shape"}),
    "recipe": dict(
        test="recipe_test", givens=_library, probe=_recipe,
        points={"shipped configs": 1, "a child that changes variables only": 1,
                "no auxiliary head, a ConcatDataset": 1},
        say={"shipped configs": "wrong on some configs that mmseg ships",
             "a child that changes variables only": "wrong on a config whose child changes "
                                                     "only variables of its base",
             "no auxiliary head, a ConcatDataset": "wrong on a config without an auxiliary "
                                                    "head or with a ConcatDataset"}),
}
