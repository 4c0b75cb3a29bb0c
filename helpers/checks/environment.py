"""Checks of notebook 00's tasks: shipped configs, mmcv versions, a registry-built head, recipes.

Each ``verify_*`` takes the student's answer and returns the problems found (see
`helpers.checks.check`), registered in :data:`TASKS`. The checks use a made-up folder whose answer
is written here as data, mmengine's ``digit_version``, mmseg's registries and two shipped
configs whose recipes are written here as data.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from helpers.checks import Task, answered

__all__ = ["config_dir", "verify_voc_configs", "verify_mmcv_accepted", "verify_voc_head",
           "verify_recipe", "VERSIONS", "RECIPES", "TASKS"]

#: mmcv versions the mmcv_accepted task is tried on (rc releases and a two-digit minor included).
VERSIONS = ("1.7.2", "2.0.0rc3", "2.0.0rc4", "2.0.0", "2.1.0", "2.1.1", "2.2.0", "2.10.0", "3.0.0")

# Files of a made-up config folder: only the two `.py` files with "voc12" in their name count.
_DECOYS = ("a_voc12aug-512x512.py", "b_cityscapes-512x1024.py", "voc12_notes.txt",
           "pspnet_voc12.py.bak", "c_voc12-256x256.py", "README.md")
_DECOYS_VOC = ["a_voc12aug-512x512.py", "c_voc12-256x256.py"]


def config_dir(model: str = "pspnet") -> Path:
    """mmseg's shipped configs of one model family (``mmseg/.mim/configs/<model>``)."""
    import mmseg

    return Path(mmseg.__file__).parent / ".mim" / "configs" / model


def _list_problems(got: object, want: list[str], where: str) -> list[str]:
    if not isinstance(got, list | tuple) or not all(isinstance(n, str) for n in got):
        kinds = sorted({type(n).__name__ for n in got}) if isinstance(got, list | tuple) else []
        return [f"for {where} it returned {type(got).__name__} {kinds or ''}, not a list of "
                "file names (str); a Path's name is `path.name`"]
    problems = []
    extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
    not_py = [n for n in extra if not n.endswith(".py")]
    if not_py:
        problems.append(f"for {where} it includes {len(not_py)} file(s) that are not Python "
                        "configs (*.py)")
    if len(extra) > len(not_py):
        problems.append(f"for {where} it includes {len(extra) - len(not_py)} config(s) that are "
                        "not VOC configs")
    if missing:
        problems.append(f"for {where} it misses {len(missing)} VOC config(s)")
    if not problems and list(got) != want:
        problems.append(f"for {where} the names are right but not sorted (or repeated)")
    return problems


def verify_voc_configs(voc_configs: Callable) -> list[str]:
    """`voc_configs(folder)` on mmseg's pspnet folder and on a made-up folder with decoys."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in _DECOYS:
            Path(tmp, name).write_text("# made-up config\n")
        Path(tmp, "old_voc12.py.d").mkdir()
        problems = _list_problems(answered(voc_configs(Path(tmp))), _DECOYS_VOC,
                                  "a made-up folder")
    folder = config_dir("pspnet")
    got = answered(voc_configs(folder))
    if not problems and (not got or any("voc12" not in n or not n.endswith(".py")
                                        or not (folder / n).is_file() for n in got)):
        problems.append("for mmseg's pspnet folder it returns no VOC configs, or names that are "
                        "not *voc12*.py files of that folder")
    return problems


def _mmseg_accepts(version: str) -> bool:
    """mmseg's own import-time rule, with mmengine's ``digit_version``."""
    import mmseg
    from mmengine.utils import digit_version

    return digit_version(mmseg.MMCV_MIN) <= digit_version(version) < digit_version(mmseg.MMCV_MAX)


def verify_mmcv_accepted(mmcv_accepted: Callable) -> list[str]:
    """`mmcv_accepted(version)` on :data:`VERSIONS`, then with mmseg's bounds moved."""
    import mmseg

    problems = []
    for version in VERSIONS:
        got = answered(mmcv_accepted(version))
        if not isinstance(got, bool):
            return [f"mmcv_accepted({version!r}) returned {type(got).__name__}, not a bool"]
        if got != _mmseg_accepts(version):
            problems.append(f"mmcv_accepted({version!r}) is {got}, but mmseg "
                            f"{'accepts' if not got else 'refuses'} that version")
    bounds = mmseg.MMCV_MIN, mmseg.MMCV_MAX
    try:  # a function that reads mmseg's bounds follows them when they move
        mmseg.MMCV_MIN, mmseg.MMCV_MAX = "2.1.0", "2.3.0"
        moved = [v for v in ("2.0.0", "2.2.0") if mmcv_accepted(v) != _mmseg_accepts(v)]
    finally:
        mmseg.MMCV_MIN, mmseg.MMCV_MAX = bounds
    if moved and not problems:
        problems.append("with other bounds in mmseg (mmseg.MMCV_MIN / mmseg.MMCV_MAX) your "
                        "function still gives the old answers: read the bounds from mmseg, "
                        "don't type them")
    return problems


def verify_voc_head(head: object) -> list[str]:
    """A PSPHead built by the MODELS registry, sized for VOC, that runs on a feature map."""
    import torch
    from mmseg.registry import DATASETS, MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    psp_head = MODELS.get("PSPHead")
    if not isinstance(head, psp_head):
        return [f"`head` is a {type(head).__name__}, not the class MODELS holds for 'PSPHead'"]
    n_classes = len(DATASETS.get("PascalVOCDataset").METAINFO["classes"])
    problems = []
    if head.num_classes != n_classes:
        problems.append(f"num_classes is {head.num_classes}: it must equal the number of classes "
                        "in PascalVOCDataset's METAINFO (count them, don't guess)")
    for field, want in (("in_channels", 64), ("channels", 16), ("pool_scales", (1, 2, 3, 6))):
        got = getattr(head, field)
        if (tuple(got) if field == "pool_scales" else got) != want:
            problems.append(f"{field} is {got}, not what the task asks for")
    if problems:
        return problems
    head.eval()
    with torch.no_grad():
        out = head([torch.zeros(1, 64, 8, 8)])
    if tuple(out.shape) != (1, n_classes, 8, 8):
        problems.append(f"on a 1×64×8×8 feature map the head returns {tuple(out.shape)}, "
                        "not one 8×8 score map per class")
    return problems


#: What `recipe` must return for two shipped configs, written as data (from the files' own text:
#: 4 GPUs x 2 or 4 images, 80k or 20k iterations, 512-pixel crops).
RECIPES = {
    "pspnet/pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py": {
        "model": "EncoderDecoder", "backbone": "ResNetV1c-50", "heads": ["PSPHead", "FCNHead"],
        "num_classes": 19, "crop": (512, 1024), "batch_size": 2, "iterations": 80000,
        "dataset": "CityscapesDataset"},
    "pspnet/pspnet_r50-d8_4xb4-20k_voc12aug-512x512.py": {
        "model": "EncoderDecoder", "backbone": "ResNetV1c-50", "heads": ["PSPHead", "FCNHead"],
        "num_classes": 21, "crop": (512, 512), "batch_size": 4, "iterations": 20000,
        "dataset": "PascalVOCDataset"},
}

# A child of the Cityscapes file that changes the crop_size *variable* and the decode head only:
# the training pipeline keeps its base's crop, the auxiliary head its 19 classes.
_CHILD = ("_base_ = [{base!r}]\ncrop_size = (256, 256)\n"
          "model = dict(decode_head=dict(num_classes=21))\ntrain_dataloader = dict(batch_size=8)\n")
_CHILD_RECIPE = dict(RECIPES["pspnet/pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py"],
                     num_classes=21, batch_size=8)


def _recipe_problems(got: object, want: dict, where: str) -> list[str]:
    if not isinstance(got, dict):
        return [f"for {where} it returned {type(got).__name__}, not a dict"]
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    problems = []
    if missing:
        problems.append(f"for {where} the dict lacks the key(s) {', '.join(missing)}")
    if extra:
        problems.append(f"for {where} the dict has key(s) the task does not ask for: "
                        f"{', '.join(map(str, extra))}")
    for key in want:
        if key in got and not _same_value(got[key], want[key]):
            problems.append(f"for {where} {key!r} is not what the config says: see the task's "
                            "table for where it comes from")
    return problems


def _same_value(got: object, want: object) -> bool:
    if isinstance(want, tuple):
        return isinstance(got, tuple) and list(got) == list(want)
    if isinstance(want, list):
        return isinstance(got, list) and got == want
    return type(got) is type(want) and got == want


def verify_recipe(recipe: Callable, configs: Path) -> list[str]:
    """`recipe(path)` on two shipped configs and on a child that changes variables."""
    problems = []
    for name, want in RECIPES.items():
        problems += _recipe_problems(answered(recipe(Path(configs, name))), want, name)
    if problems:
        return problems
    with tempfile.TemporaryDirectory() as tmp:
        child = Path(tmp, "child.py")
        child.write_text(_CHILD.format(base=str(Path(configs, next(iter(RECIPES))))))
        problems = _recipe_problems(answered(recipe(str(child))), _CHILD_RECIPE,
                                    "a child config that sets the crop_size variable")
    return problems


#: The tasks of notebook 00 and their hints (an API or a concept, never the code).
TASKS = {
    "voc_configs": Task(verify_voc_configs, hint="pathlib's glob patterns; a Path's file name; "
                                                 "a config file ends in .py"),
    "mmcv_accepted": Task(verify_mmcv_accepted, hint="packaging.version: versions are not "
                                                     "strings; the upper bound is excluded"),
    "voc_head": Task(verify_voc_head, hint="mmengine registries build objects from a dict with "
                                           "`type`; a dataset class's METAINFO"),
    "recipe": Task(verify_recipe, hint="mmengine's Config reads bases and gives attribute access; "
                                       "what a config's train_dataloader holds; optional keys"),
}
