"""Notebook 04's tasks: their givens and hidden probes (run inside the sandbox by the harness).

A task module (see teacher/tasks/__init__.py) imports only libraries at its top: it is compiled
inside the grading sandbox, where the course's package does not exist.
"""

from pathlib import Path

NOTEBOOK = "04_predict_evaluate"
PRELOAD = ("numpy", "torch", "PIL.Image", "mmcv", "mmengine.config", "mmseg.apis")

CONFIG = "probe_model.py"
CHECKPOINT = "probe_model.pth"


def fixtures(folder, voc_root):
    """The model segment_my_image is probed with, made once outside the sandbox: the course's
    smoke PSPNet with random weights from a fixed seed (helpers.checks.evaluation.probe_model),
    its config written without the course's custom_imports (no ``helpers`` in the sandbox) and
    its weights and VOC classes saved as a checkpoint that mmseg's init_model reads."""
    import torch
    from mmengine.config import Config

    from helpers.checks.evaluation import probe_model

    model = probe_model(voc_root)
    cfg = model.cfg.to_dict()
    cfg.pop("custom_imports", None)
    Config(cfg).dump(str(Path(folder, CONFIG)))
    meta = {"dataset_meta": {"classes": list(model.dataset_meta["classes"]),
                             "palette": [[int(v) for v in c]
                                         for c in model.dataset_meta["palette"]]}}
    torch.save({"meta": meta, "state_dict": model.state_dict()}, Path(folder, CHECKPOINT))


def _numpy(ns, ctx):
    import numpy as np

    ns.update(np=np)


def _model(ctx):
    from mmseg.apis import init_model

    return init_model(str(Path(ctx.fixtures, CONFIG)), str(Path(ctx.fixtures, CHECKPOINT)),
                      device="cpu")


def _segmentation(ns, ctx):
    """Task 4's givens: the notebook's imports and a model (the fixtures' seeded random one)."""
    import mmcv
    import numpy as np
    from mmseg.apis import inference_model
    from PIL import Image

    ns.update(np=np, mmcv=mmcv, Image=Image, Path=Path, inference_model=inference_model,
              model=_model(ctx))


def _blend(ns, ctx):
    import numpy as np

    blend = ns["blend"]

    def cases(specs):
        rng = np.random.default_rng(2404)
        got = {}
        for case, (h, w, n, opacity, dtype) in specs:
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            mask = rng.integers(0, n, (h, w)).astype(dtype)
            palette = [[int(v) for v in rng.integers(0, 256, 3)] for _ in range(n)]
            given = image.copy()
            out = np.asarray(blend(given, mask, palette, opacity))
            ys, xs = rng.integers(0, h, 100), rng.integers(0, w, 100)
            got[case] = {
                "array": f"{out.dtype} {'x'.join(str(s) for s in out.shape)}",
                "image unchanged": bool(np.array_equal(given, image)),
                "sampled pixels": (out[ys, xs].astype(int).tolist()
                                   if out.shape == image.shape else None),
            }
        return got

    return {"21 classes, a uint8 mask": lambda: cases([("a", (29, 41, 21, 0.35, np.uint8))]),
            "few classes, other mask types": lambda: cases([("b", (48, 64, 6, 0.7, np.int64)),
                                                           ("c", (17, 23, 3, 1.0, np.int32))])}


def _matrices():
    import numpy as np

    rng = np.random.default_rng(3104)
    cms = {}
    m = rng.integers(0, 400, (21, 21))
    m[np.arange(21), np.arange(21)] += rng.integers(0, 5000, 21)
    m[[4, 11, 17], :] = 0  # 4 and 11: nowhere (NaN); 17: only predicted (IoU 0)
    m[:, [4, 11]] = 0
    m[:, 9] = 0  # 9: true, never predicted (IoU 0)
    cms["21 classes"] = m
    m = rng.integers(0, 60, (7, 7)).astype(np.int32)
    m[2, :], m[:, 2], m[5, 5] = 0, 0, 0  # 2: nowhere (NaN); 5: present, never right (IoU 0)
    cms["7 classes, int32"] = m
    cms["2 classes"] = np.array([[0, 0], [0, 12]])
    cms["3 classes"] = np.array([[7, 3, 0], [2, 0, 5], [1, 4, 9]])
    return cms


def _iou_per_class(ns, ctx):
    import numpy as np

    iou_per_class = ns["iou_per_class"]

    def cases(with_tp):
        got = {}
        for name, m in _matrices().items():
            before = m.copy()
            with np.errstate(all="ignore"):
                iou = np.asarray(iou_per_class(m), dtype=float)
            classes = np.flatnonzero((np.diag(m) > 0) == with_tp)  # from the input, not a truth
            got[name] = {"IoU %": np.round(iou[classes], 6),
                         "matrix unchanged": bool(np.array_equal(m, before))}
        return got

    return {"classes with true positives": lambda: cases(True),
            "classes without (absent, or never right)": lambda: cases(False)}


def _most_confused(ns, ctx):
    import numpy as np

    most_confused = ns["most_confused"]

    def cases():
        rng = np.random.default_rng(3604)
        got = {}
        for n, i, j, dtype in ((5, 4, 1, np.int64), (12, 2, 9, np.int32), (21, 0, 20, np.int64),
                               (21, 13, 0, np.int64)):
            m = rng.integers(0, 900, (n, n)).astype(dtype)
            m[(i + 1) % n, :] = 1000  # the most errors in one row, but no single largest entry
            m[:, (j + 2) % n] = 1000  # and in one column
            m[i, j], m[j, i] = 1500, 1200  # the one largest confusion; its transpose holds less
            m[np.arange(n), np.arange(n)] += 5000  # right answers outnumber every confusion
            before = m.copy()
            got[f"{n} classes, answer {i}, {j}"] = {
                "pair": [int(v) for v in most_confused(m)],
                "matrix unchanged": bool(np.array_equal(m, before))}
        m = np.array([[90, 3, 7, 0], [7, 80, 1, 7], [2, 7, 70, 5], [7, 0, 0, 60]])
        got["a tie"] = {"pair": [int(v) for v in most_confused(m.copy())]}
        return got

    return {"confusion matrices": cases}


def _image_files(voc_root, folder, source, size):
    """One VOC photo at `size` written as a greyscale PNG, an opaque RGBA PNG, a JPEG and a
    palette PNG (PIL only): name → path."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(Path(voc_root, "JPEGImages", f"{source}.jpg")) as img:
        rgb = img.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    variants = {
        "greyscale PNG": (rgb.convert("L"), "grey.png", {}),
        "RGBA PNG": (rgb.convert("RGBA"), "rgba.png", {}),
        "JPEG": (rgb, "photo.jpg", {"quality": 90}),
        "palette PNG": (rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
                        "palette.png", {}),
    }
    paths = {}
    for name, (picture, filename, options) in variants.items():
        paths[name] = folder / filename
        picture.save(paths[name], **options)
    return paths


def _segment_my_image(ns, ctx):
    import numpy as np

    segment_my_image = ns["segment_my_image"]
    model = _model(ctx)  # its own: the answer cell's top-level code cannot have touched it
    val_ids = Path(ctx.voc_root, "ImageSets", "Segmentation", "val.txt").read_text().split()
    files = []
    for k, (source, size) in enumerate(((val_ids[1], (203, 157)), (val_ids[-2], (97, 233)))):
        for name, path in _image_files(ctx.voc_root, Path(ctx.scratch, str(k)), source,
                                       size).items():
            files.append((f"{k}: {name}", str(path), size))
    done = {}

    def call(path, opacity):
        if (path, opacity) not in done:
            args = (model, path) if opacity is None else (model, path, opacity)
            done[path, opacity] = tuple(segment_my_image(*args))
        return done[path, opacity]

    def masks():
        got = {}
        for name, path, _ in files:
            mask = np.asarray(call(path, None)[0])
            got[name] = ctx.digest(mask.astype(np.int64))
        return got

    def overlays():
        rng = np.random.default_rng(4404)
        got = {}
        for (name, path, (w, h)), opacity in zip(files, (0.3, 0.8) * 4, strict=True):
            overlay = np.asarray(call(path, opacity)[1])
            ys, xs = rng.integers(0, h, 60), rng.integers(0, w, 60)
            got[name] = {
                "overlay": f"{overlay.dtype} {'x'.join(str(s) for s in overlay.shape)}",
                "pixels": (overlay[ys, xs].astype(int).tolist()
                           if overlay.shape == (h, w, 3) else None)}
        return got

    def shares():
        # in hundredths of a percent: the task's atol of 1 accepts shares rounded to 2 decimals
        return {name: {str(c): 100 * float(v) for c, v in dict(call(path, None)[2]).items()}
                for name, path, _ in files}

    return {"the mask": masks, "the overlay at opacities other than 0.5": overlays,
            "the class shares": shares}


TASKS = {
    "blend": dict(
        test="blend_test", givens=_numpy, probe=_blend, atol=1.0,  # a blend may round
        points={"21 classes, a uint8 mask": 1, "few classes, other mask types": 1},
        say={"21 classes, a uint8 mask": "wrong on a 21-class uint8 mask (the colours, their "
                                         "weight, the dtype, or the image changed)",
             "few classes, other mask types": "wrong on int32/int64 masks of a few classes, at "
                                              "opacities above 0.5 up to 1"}),
    "iou_per_class": dict(
        test="iou_per_class_test", givens=_numpy, probe=_iou_per_class,
        points={"classes with true positives": 1, "classes without (absent, or never right)": 1},
        say={"classes with true positives": "wrong IoU for classes with true positives (or the "
                                            "matrix changed, or not in percent)",
             "classes without (absent, or never right)": "wrong for classes without a true "
                                                         "positive: 0 when present or predicted, "
                                                         "NaN when nowhere"}),
    "most_confused": dict(
        test="most_confused_test", givens=_numpy, probe=_most_confused,
        points={"confusion matrices": 1},
        say={"confusion matrices": "wrong pair on some matrices (the diagonal, rows versus "
                                   "columns, a tie, or the matrix changed)"}),
    "segment_my_image": dict(
        test="segment_my_image_test", givens=_segmentation, probe=_segment_my_image,
        atol=1.0, timeout=240,  # overlays may round (shares are sent in 1/100 %)
        points={"the mask": 1, "the overlay at opacities other than 0.5": 1,
                "the class shares": 1},
        say={"the mask": "wrong mask for some kinds of file (greyscale, RGBA, JPEG, palette "
                         "PNG): not the model's prediction at the file's own size",
             "the overlay at opacities other than 0.5": "wrong overlay at an opacity other than "
                                                        "0.5 (RGB, uint8, palette colours at "
                                                        "that opacity)",
             "the class shares": "wrong shares: {class name: percent of the pixels} for "
                                 "exactly the classes in the mask"}),
}
