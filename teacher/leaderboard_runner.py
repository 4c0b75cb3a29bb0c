"""The leaderboard's runner, run inside one student's sandbox (see teacher/leaderboard.py).

    python -I runner.py REPO CHECKPOINT IMAGES OUT

``teacher.leaderboard`` copies this file into the student's scratch folder OUT (teacher/ is not
in the sandbox) and runs it there. The sandbox holds, read-only, the hidden *images* folder
(never the labels), the student's checkpoint file and this repository's ``helpers/`` package;
OUT is the only writable folder. ``-I`` ignores PYTHONPATH, so REPO (the repository root) is put
on ``sys.path`` here for ``helpers`` to import.

1. The checkpoint is data: it is read with the course's safe loader
   (``helpers.checkpoint.load_checkpoint``: ``weights_only=True`` plus an allowlist), so a
   crafted pickle is refused before anything in it runs.
2. The model is built from the config mmengine saved as text in ``meta['cfg']`` (parsed with
   ``Config.fromstring``; mmengine configs are Python, so this runs the config's code, here in
   the sandbox), or, when the checkpoint has none, from the course's ``smoke`` preset, and the
   weights are loaded strictly (``helpers.checkpoint.init_model``).
3. Every image of IMAGES is predicted with mmseg's ``inference_model`` and written as
   ``OUT/pred/<stem>.npy`` (uint8 class ids, the image's size).

OUT/result.json ends it: ``{"ok": true, "images": N}`` or ``{"ok": false, "reason": "one
line"}``. The grader reads the .npy files with ``allow_pickle=False`` and scores them outside.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _smoke_config(scratch: Path):
    """The smoke preset's config (the course's CPU model), built on a stand-in VOC root that only
    holds split files: build_config checks them, the model never reads data."""
    from helpers.config import build_config

    root = scratch / "smoke_voc"
    splits = root / "ImageSets" / "Segmentation"
    splits.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        (splits / f"{split}.txt").write_text("hidden\n")
    return build_config("smoke", root, scratch / "work_dir")


def predict(checkpoint: Path, images: Path, out: Path) -> int:
    """Write one prediction per image of `images` into `out`; return how many."""
    import numpy as np
    from mmengine.config import Config
    from mmseg.apis import inference_model

    from helpers.checkpoint import init_model, load_checkpoint
    from helpers.predict import find_images, pred_mask, read_image

    ckpt = load_checkpoint(checkpoint)  # weights_only + allowlist: nothing in it runs
    meta = ckpt.get("meta")
    text = meta.get("cfg") if isinstance(meta, dict) else None
    del ckpt
    if isinstance(text, str) and text.strip():
        cfg = Config.fromstring(text, ".py")
    else:  # a bare state_dict: the course's smoke model
        cfg = _smoke_config(out.parent)
    model = init_model(cfg, checkpoint, device="cpu")  # strict: a state dict that misfits fails
    count = 0
    for path in find_images(images):
        bgr = np.ascontiguousarray(read_image(path)[..., ::-1])
        mask = pred_mask(inference_model(model, bgr))
        np.save(out / f"{path.stem}.npy", np.ascontiguousarray(mask, dtype=np.uint8))
        count += 1
    return count


def main(argv: list[str]) -> int:
    repo, checkpoint, images, out = argv
    sys.path.insert(0, repo)
    out_dir = Path(out)
    pred = out_dir / "pred"
    pred.mkdir(parents=True, exist_ok=True)
    try:
        status = {"ok": True, "images": predict(Path(checkpoint), Path(images), pred)}
    except BaseException as err:  # noqa: BLE001 - every failure becomes the student's reason
        traceback.print_exc()
        ours = type(err).__name__.endswith("CheckpointError")  # their message names the fix
        reason = str(err) if ours else f"{type(err).__name__}: {err}"
        status = {"ok": False, "reason": _one_line(reason.replace(checkpoint, "checkpoint.pth"))}
    (out_dir / "result.json").write_text(json.dumps(status))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
