"""teacher.leaderboard: the students' own models ranked on a hidden split, each in a sandbox.

Nothing is trained: two checkpoints are made with the course's own code (the smoke preset's
model, fixed seed, saved with its config in ``meta`` as mmengine's Runner saves it), one of them
with a classifier bias towards the background, which scores higher on the demo data; which one is
better is measured here with helpers.evaluate, not assumed. One leaderboard run (module fixture)
holds them, a meta-less state dict, and every kind of broken hand-in.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from teacher import leaderboard as lb
from teacher import sandbox

WHY = sandbox.unavailable()
needs_sandbox = pytest.mark.skipif(WHY is not None, reason=f"no sandbox can start here: {WHY}")
HIDDEN_IMAGES = 3


class _Payload:
    """A pickle that would run a shell command when loaded."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture(scope="module")
def hidden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lb.make_hidden(tmp_path_factory.mktemp("lb") / "hidden", HIDDEN_IMAGES, seed=2718)


def _smoke_model(base: Path):
    """(config, random smoke-preset model with seed 0) built with helpers.config."""
    import torch
    from mmseg.apis import init_model

    from helpers.config import build_config

    splits = base / "voc" / "ImageSets" / "Segmentation"
    splits.mkdir(parents=True)
    for split in ("train", "val"):
        (splits / f"{split}.txt").write_text("x\n")
    cfg = build_config("smoke", base / "voc", base / "work_dir")
    torch.manual_seed(0)
    return cfg, init_model(cfg, None, device="cpu")


@pytest.fixture(scope="module")
def board(hidden: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One leaderboard run over good, meta-less and broken hand-ins."""
    import torch
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

    from helpers.voc import CLASSES

    if WHY is not None:
        pytest.skip(f"no sandbox can start here: {WHY}")
    base = tmp_path_factory.mktemp("board")
    cfg, model = _smoke_model(base)
    state = weights_to_cpu(model.state_dict())
    meta = dict(cfg=cfg.pretty_text, dataset_meta=dict(classes=CLASSES))
    biased = {k: v.clone() for k, v in state.items()}
    biased["decode_head.conv_seg.bias"][0] += 20.0  # background everywhere
    submitted, scratch = base / "submitted", base / "scratch"
    files = {name: submitted / name / "checkpoint.pth" for name in (
        "random", "biased", "nometa", "wrongarch", "bytes", "html", "empty", "evil", "big",
        "linked")}
    for path in files.values():
        path.parent.mkdir(parents=True)
    (submitted / "<b>absent&").mkdir()  # no checkpoint, and a name the page must escape
    save_checkpoint(dict(meta=meta, state_dict=state), str(files["random"]))
    save_checkpoint(dict(meta=meta, state_dict=biased), str(files["biased"]))
    save_checkpoint(dict(state_dict=state), str(files["nometa"]))  # the smoke preset fits
    save_checkpoint(dict(meta=meta, state_dict={"backbone.conv1.weight": torch.zeros(3, 3, 3, 3)}),
                    str(files["wrongarch"]))
    files["bytes"].write_bytes(os.urandom(4096))
    files["html"].write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>\n")
    files["empty"].write_bytes(b"")
    marker = scratch / "evil" / "PWNED"
    torch.save(dict(state_dict={}, meta=_Payload(f"touch {marker}")), files["evil"])
    with files["big"].open("wb") as f:  # sparse: 1 GiB + 1 byte, no disk used
        f.truncate((lb.DEFAULT_MAX_MB << 20) + 1)
    files["linked"].symlink_to(next((hidden / "labels").iterdir()))  # a label, smuggled in
    out = base / "out" / "board.html"
    entries = lb.leaderboard(submitted, out, hidden, scratch=scratch, threads=2,
                             limits=sandbox.Limits(wall_seconds=300), max_bytes=None)
    return dict(entries={e.student: e for e in entries}, order=[e.student for e in entries],
                out=out, scratch=scratch, marker=marker, files=files, model=model, cfg=cfg,
                biased=biased)


def _evaluate(model, hidden: Path, tmp: Path) -> float:
    """mIoU of `model` on the hidden split, the course's way (helpers.evaluate on a VOC view)."""
    import numpy as np
    from mmseg.apis import inference_model

    from helpers.evaluate import evaluate_predictions
    from helpers.predict import pred_mask, read_image
    from helpers.voc import MASK_DIR, SPLIT_DIR

    root = tmp / "VOC2012"
    (root / SPLIT_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copytree(hidden / "labels", root / MASK_DIR, dirs_exist_ok=True)
    ids = sorted(p.stem for p in (hidden / "labels").iterdir())
    (root / SPLIT_DIR / "val.txt").write_text("".join(f"{i}\n" for i in ids))
    preds = {i: pred_mask(inference_model(model, np.ascontiguousarray(
        read_image(hidden / "images" / f"{i}.jpg")[..., ::-1]))) for i in ids}
    return evaluate_predictions(preds, root, "val", progress=False).metrics["mIoU"]


@needs_sandbox
def test_ranks_the_models_by_their_measured_miou(board, hidden, tmp_path):
    import copy

    from helpers.voc import CLASSES

    entries = board["entries"]
    model = board["model"]
    random_miou = _evaluate(model, hidden, tmp_path)
    biased_model = copy.deepcopy(model)
    biased_model.load_state_dict(board["biased"])
    biased_miou = _evaluate(biased_model, hidden, tmp_path)
    assert biased_miou > random_miou  # measured: the background-biased model is the better one
    assert entries["biased"].mIoU == pytest.approx(biased_miou, abs=0.01)
    assert entries["random"].mIoU == pytest.approx(random_miou, abs=0.01)
    assert entries["biased"].rank == 1 and entries["random"].rank == 2
    # a bare state_dict is built as the smoke preset: the same weights, the same score
    assert entries["nometa"].rank == 2 and entries["nometa"].mIoU == entries["random"].mIoU
    assert board["order"][:3] == ["biased", "nometa", "random"]
    assert list(entries["biased"].per_class) == list(CLASSES)


@needs_sandbox
def test_broken_hand_ins_get_their_reason_and_the_run_goes_on(board):
    entries = board["entries"]
    reasons = {name: e.reason for name, e in entries.items() if e.rank is None}
    assert set(reasons) == {"wrongarch", "bytes", "html", "empty", "evil", "big", "linked",
                            "<b>absent&"}
    assert reasons["<b>absent&"] == "no checkpoint handed in"
    assert "does not fit the model" in reasons["wrongarch"]
    assert "not a loadable checkpoint" in reasons["bytes"]
    assert "HTML" in reasons["html"]
    assert "is empty" in reasons["empty"]
    assert "REFUSED" in reasons["evil"] and "Nothing from it was executed" in reasons["evil"]
    assert "LEADERBOARD_MAX_MB" in reasons["big"]
    assert "not a plain file" in reasons["linked"]
    assert not (board["scratch"] / "linked").exists()  # never bound into a sandbox
    assert all("\n" not in r for r in reasons.values())


@needs_sandbox
def test_a_crafted_pickle_never_runs(board):
    evil = board["scratch"] / "evil"
    assert (evil / "result.json").is_file()  # the sandbox could write there...
    assert not board["marker"].exists()  # ...and the payload's command never ran
    assert not any(p.name == "PWNED" for p in board["scratch"].rglob("*"))


@needs_sandbox
def test_the_page_and_its_json(board):
    page = board["out"].read_text()
    assert "&lt;b&gt;absent&amp;" in page and "<b>absent&" not in page
    assert page.index("biased") < page.index("random") < page.index("REFUSED")
    data = json.loads(Path(f"{board['out']}.json").read_text())
    assert [d["student"] for d in data] == board["order"]
    first = data[0]
    assert first["rank"] == 1 and first["per_class"]["background"] is not None
    assert first["per_class"]["bicycle"] is None  # absent from the demo data


@needs_sandbox
def test_the_sandbox_shows_the_images_but_never_the_labels(hidden, tmp_path):
    checkpoint = tmp_path / "checkpoint.pth"
    checkpoint.write_bytes(b"data")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    label = next((hidden / "labels").iterdir())
    probe = f"""
import json, os, sys
def opens(p):
    try:
        open(p, 'rb').close()
        return True
    except OSError:
        return False
sys.path.insert(0, {str(lb.REPO)!r})
import helpers.voc
print(json.dumps(dict(
    images=sorted(os.listdir({str(hidden / 'images')!r})),
    label=opens({str(label)!r}), labels_dir=os.path.exists({str(hidden / 'labels')!r}),
    hidden_listing=sorted(os.listdir({str(hidden)!r})),
    teacher=os.path.exists({str(lb.REPO / 'teacher')!r}),
    checkpoint=opens({str(checkpoint)!r}))))
"""
    setup = lb.sandbox_setup(hidden / "images", checkpoint, scratch)
    done = sandbox.run([sys.executable, "-I", "-c", probe], timeout=120, **setup)
    assert done.returncode == 0, done.output
    seen = json.loads(done.output.strip().splitlines()[-1])
    assert len(seen["images"]) == HIDDEN_IMAGES
    assert seen["checkpoint"] is True
    assert seen["label"] is False and seen["labels_dir"] is False
    assert seen["hidden_listing"] == ["images"]
    assert seen["teacher"] is False


def test_make_hidden_keeps_its_seed_secret_and_reproducible(tmp_path, monkeypatch):
    monkeypatch.delenv("LEADERBOARD_SEED", raising=False)
    assert lb.main(["make-hidden", str(tmp_path / "a"), "--images", "1"]) == 0
    seed_file = tmp_path / "a" / "seed.txt"
    assert stat.S_IMODE(seed_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["images", "labels", "seed.txt"]
    (image,), (label,) = ((tmp_path / "a" / d).iterdir() for d in ("images", "labels"))
    assert image.suffix == ".jpg" and label.suffix == ".png" and image.stem == label.stem
    monkeypatch.setenv("LEADERBOARD_SEED", seed_file.read_text().strip())
    again = lb.make_hidden(tmp_path / "b", 1)
    assert (again / "seed.txt").read_text() == seed_file.read_text()
    assert (again / "labels" / label.name).read_bytes() == label.read_bytes()
    with pytest.raises(FileExistsError):
        lb.make_hidden(tmp_path / "a", 1)


def test_predictions_are_read_as_data_only(tmp_path):
    import numpy as np

    label = np.zeros((4, 5), np.uint8)
    label[1:3, 1:4], label[0, 0] = 15, 255
    pred = tmp_path / "pred"
    pred.mkdir()
    np.save(pred / "a.npy", np.where(label == 255, 0, label).astype(np.uint8))
    summary, per_class = lb.score({"a": label}, pred)
    assert summary["mIoU"] == 100.0 and per_class["person"] == 100.0
    assert per_class["cat"] is None
    bad = {
        "missing": None,
        "wide": np.zeros((5, 4), np.uint8),  # the same bytes, the other shape
        "int64": np.zeros((4, 5), np.int64),
        "objects": np.array([{"x": 1}] * 20, dtype=object).reshape(4, 5),
        "linked": "link",
    }
    for name, value in bad.items():
        if isinstance(value, np.ndarray):
            np.save(pred / f"{name}.npy", value, allow_pickle=True)
        elif value == "link":
            (pred / f"{name}.npy").symlink_to(pred / "a.npy")
        with pytest.raises(ValueError):
            lb.score({name: label}, pred)
