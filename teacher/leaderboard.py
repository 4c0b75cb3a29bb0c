"""A leaderboard of the students' own models, scored on a hidden split (source/README.md).

    python -m teacher.leaderboard make-hidden DIR [--images N]
    python -m teacher.leaderboard rank SUBMITTED OUT --hidden DIR [--create-hidden]
                                       [--scratch DIR] [--threads N]

``make-hidden`` writes a hidden split made by the course's demo-data generator
(``helpers.demo_data``) with a seed the students never see: ``LEADERBOARD_SEED``, else a random
one, kept in ``DIR/seed.txt`` (mode 600). ``DIR/images/ID.jpg`` and ``DIR/labels/ID.png``
(palette PNGs of class ids, 255 = void) are two separate folders; a real hidden split in VOC's
format goes in the same layout, one label per image.

``rank`` reads ``SUBMITTED/STUDENT/checkpoint.pth`` (the best_*.pth of the student's notebook-03
run). Each checkpoint is run in a sandbox of its own (``teacher.sandbox``, the teacher's
MEM_LIMIT, PROC_LIMIT, CPU_LIMIT, WALL_LIMIT) that holds, read-only, the hidden *images* folder
(never the labels), that one file and ``helpers/``; it writes one ``.npy`` mask per image into
its scratch folder (``teacher/leaderboard_runner.py``, copied there). Outside, each mask is read
with ``np.load(allow_pickle=False)`` after its size is checked against its label, and scored with
mmseg's ``IoUMetric``. The models are ranked by mIoU, then aAcc; a student without a score gets
the one-line reason in the table (no checkpoint, over ``LEADERBOARD_MAX_MB``, not a checkpoint,
refused as unsafe, a state dict that does not fit, a sandbox limit...). OUT (HTML) and OUT.json.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from teacher import sandbox

REPO = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).with_name("leaderboard_runner.py")
CHECKPOINT_NAME = "checkpoint.pth"
DEFAULT_IMAGES = 100
DEFAULT_MAX_MB = 1024
NPY_SLACK = 4096
"""Bytes a .npy file may hold beyond its H*W pixels (its header is 128)."""
MAX_RESULT_BYTES = 1 << 16

__all__ = ["Entry", "hidden_pairs", "leaderboard", "main", "make_hidden", "rank", "read_labels",
           "sandbox_setup", "score", "write"]


# --- The hidden split ---------------------------------------------------------------------------

def make_hidden(folder: str | os.PathLike, n_images: int = DEFAULT_IMAGES,
                seed: int | None = None) -> Path:
    """Write a hidden demo split into `folder`/images and `folder`/labels; return `folder`.

    The seed: `seed`, else ``LEADERBOARD_SEED``, else a random one; it is kept in
    ``folder/seed.txt`` (mode 600) so that the same split can be made again.
    """
    from helpers.demo_data import make_demo_dataset
    from helpers.voc import IMAGE_DIR, MASK_DIR

    folder = Path(folder)
    images, labels = folder / "images", folder / "labels"
    if images.exists() or labels.exists():
        raise FileExistsError(f"{folder} already holds a hidden split; choose a new folder")
    if seed is None:
        text = os.environ.get("LEADERBOARD_SEED", "").strip()
        seed = int(text) if text else secrets.randbelow(2**31)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "seed.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{seed}\n")
    os.chmod(folder / "seed.txt", 0o600)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".making-") as tmp:
        root = make_demo_dataset(Path(tmp) / "voc", n_train=0, n_val=n_images, seed=seed,
                                 n_unlabelled=0)
        images.mkdir()
        labels.mkdir()
        for image in sorted((root / IMAGE_DIR).glob("*.jpg")):
            shutil.move(image, images / image.name)
        for label in sorted((root / MASK_DIR).glob("*.png")):
            shutil.move(label, labels / label.name)
    return folder


def hidden_pairs(hidden: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """(id, image, label) of every label in ``hidden/labels``; each must have one image."""
    from helpers.voc import IMAGE_SUFFIXES

    hidden = Path(hidden)
    images, labels = hidden / "images", hidden / "labels"
    for folder in (images, labels):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not a folder. A hidden split holds images/ID.jpg "
                                    "and labels/ID.png (make-hidden writes one)")
    by_stem: dict[str, list[Path]] = {}
    for path in images.iterdir():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            by_stem.setdefault(path.stem, []).append(path)
    pairs = []
    for label in sorted(labels.glob("*.png")):
        found = by_stem.get(label.stem, [])
        if len(found) != 1:
            raise ValueError(f"{label}: {len(found)} images named {label.stem}.* in {images}; "
                             "each label needs exactly one")
        pairs.append((label.stem, found[0], label))
    if not pairs:
        raise FileNotFoundError(f"{labels}: no labels (*.png)")
    return pairs


# --- One student's model, in its sandbox ---------------------------------------------------------

def sandbox_setup(images: Path, checkpoint: Path, scratch: Path, threads: int = 1) -> dict:
    """The keyword arguments of ``sandbox.run`` for one student (the probe test uses them too):
    read-only the hidden images, the checkpoint file and ``helpers/``; writable the scratch."""
    n = str(threads)
    env = {"HOME": str(scratch), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
           "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": n,
           "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "LANG": "C.UTF-8"}
    return dict(read_only=[str(images), str(checkpoint), str(REPO / "helpers")],
                writable=[str(scratch)], env=env, cwd=str(scratch))


def _run_model(checkpoint: Path, images: Path, scratch: Path, limits: sandbox.Limits,
               threads: int, use_sandbox: bool) -> str | None:
    """Predict the hidden images into scratch/pred; None, or why there are no predictions."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    runner = scratch / "runner.py"
    shutil.copyfile(RUNNER, runner)
    argv = [sys.executable, "-I", str(runner), str(REPO), str(checkpoint), str(images),
            str(scratch)]
    setup = sandbox_setup(images, checkpoint, scratch, threads)
    if use_sandbox:
        done = sandbox.run(argv, limits=limits, **setup)
        limit, output, code = done.message, done.output, done.returncode
    else:  # UNSAFE_NO_SANDBOX=1: the teacher's own rights, labels readable
        try:
            proc = subprocess.run(argv, env=setup["env"], cwd=scratch, capture_output=True,
                                  text=True, timeout=limits.wall_seconds, check=False)
            limit, output, code = None, proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired:
            limit, output, code = limits.message("wall"), "", -9
    (scratch / "output.txt").write_text(output[-(1 << 20):])
    result = scratch / "result.json"
    status = None
    if result.is_file() and not result.is_symlink() and result.stat().st_size < MAX_RESULT_BYTES:
        try:
            status = json.loads(result.read_text(errors="replace"))
        except ValueError:
            status = None
    if limit:
        return limit
    if isinstance(status, dict) and status.get("ok") is True:
        return None
    if isinstance(status, dict) and isinstance(status.get("reason"), str):
        return " ".join(status["reason"].split())[:400]
    last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
    return f"the model run ended with status {code} and no result: {last.strip()[:300]}"


def _read_prediction(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A .npy mask of `shape`, uint8, read without following links and after a size check."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(f"no prediction for {path.stem} ({err.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        pixels = shape[0] * shape[1]
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a plain file")
        if not pixels < info.st_size <= pixels + NPY_SLACK:
            raise ValueError(f"{path.name}: {info.st_size} bytes, not a uint8 mask of size "
                             f"{shape[1]}x{shape[0]}")
        try:
            mask = np.load(f, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ValueError(f"{path.name}: not a .npy array ({err})") from None
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.shape != shape:
        raise ValueError(f"{path.name}: {getattr(mask, 'dtype', '?')} "
                         f"{getattr(mask, 'shape', '?')}, expected uint8 {shape}")
    return mask


def read_labels(pairs: list[tuple[str, Path, Path]]) -> dict[str, np.ndarray]:
    """Every label of the hidden split (read once, before any model runs: a bad label is the
    teacher's error, not a student's)."""
    from helpers.voc import read_mask

    return {image_id: read_mask(label) for image_id, _, label in pairs}


def score(labels: dict[str, np.ndarray], pred_dir: Path) -> tuple[dict, dict]:
    """(aAcc, mIoU, mAcc) and per-class IoU (None where absent) of the masks in `pred_dir`, with
    mmseg's IoUMetric against `labels` (id -> mask); ValueError names the first bad prediction."""
    import torch
    from mmengine.logging import MMLogger
    from mmseg.evaluation import IoUMetric

    from helpers.voc import CLASSES, IGNORE_INDEX

    if pred_dir.is_symlink() or not pred_dir.is_dir():
        raise ValueError("no prediction folder")
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # IoUMetric logs a table and a prefix notice
    try:
        metric = IoUMetric(ignore_index=IGNORE_INDEX)
        metric.dataset_meta = dict(classes=tuple(CLASSES))
        for image_id, label in labels.items():
            pred = _read_prediction(pred_dir / f"{image_id}.npy", label.shape)
            metric.process({}, [dict(pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
                                     gt_sem_seg=dict(data=torch.from_numpy(label)[None]))])
        results = list(metric.results)
        summary = {k: round(float(v), 2) for k, v in metric.compute_metrics(results).items()}
    finally:
        logger.setLevel(level)
    totals = [sum(r[i] for r in results) for i in range(4)]
    iou = IoUMetric.total_area_to_metrics(*totals, ["mIoU"])["IoU"]
    per_class = {c: (None if np.isnan(v) else round(100 * float(v), 2))
                 for c, v in zip(CLASSES, np.asarray(iou, dtype=float), strict=True)}
    return summary, per_class


# --- The board ----------------------------------------------------------------------------------

@dataclass
class Entry:
    """One student's line of the leaderboard."""

    student: str
    rank: int | None = None
    mIoU: float | None = None  # noqa: N815 - mmseg's metric names
    aAcc: float | None = None  # noqa: N815
    mAcc: float | None = None  # noqa: N815
    per_class: dict[str, float | None] = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0


def _max_bytes() -> int:
    text = os.environ.get("LEADERBOARD_MAX_MB", "").strip()
    return int(float(text) * (1 << 20)) if text else DEFAULT_MAX_MB << 20


def _check_file(path: Path, max_bytes: int) -> str | None:
    if not path.exists() and not path.is_symlink():
        return "no checkpoint handed in"
    if path.is_symlink() or not path.is_file():
        return f"{CHECKPOINT_NAME} is not a plain file (a link or a folder?)"
    size = path.stat().st_size
    if size > max_bytes:
        return (f"{CHECKPOINT_NAME} has {size:,} bytes, over the limit of "
                f"{max_bytes / (1 << 20):g} MB (LEADERBOARD_MAX_MB); not run")
    return None


def leaderboard(submitted: str | os.PathLike, out: str | os.PathLike,
                hidden: str | os.PathLike, scratch: str | os.PathLike | None = None,
                limits: sandbox.Limits | None = None, threads: int | None = None,
                max_bytes: int | None = None, use_sandbox: bool | None = None) -> list[Entry]:
    """Score every ``submitted/STUDENT/checkpoint.pth`` on `hidden`; write `out` and `out`.json.

    `scratch` keeps each student's sandbox folder (scratch/STUDENT: runner, predictions, its
    output); by default a temporary folder, deleted at the end. Returns the entries, ranked.
    """
    submitted, out, hidden = Path(submitted), Path(out), Path(hidden).resolve()
    pairs = hidden_pairs(hidden)
    labels = read_labels(pairs)
    students = sorted(p for p in submitted.iterdir() if p.is_dir())
    if not students:
        raise FileNotFoundError(f"{submitted}: no student folders; expected "
                                f"SUBMITTED/STUDENT/{CHECKPOINT_NAME}")
    if use_sandbox is None:
        use_sandbox = os.environ.get("UNSAFE_NO_SANDBOX") != "1"
    if use_sandbox and (why := sandbox.unavailable()):
        raise RuntimeError(why)
    limits = limits or sandbox.Limits.from_env()
    threads = threads or os.cpu_count() or 1
    max_bytes = _max_bytes() if max_bytes is None else max_bytes
    temporary = None if scratch else tempfile.TemporaryDirectory(prefix="leaderboard-")
    base = Path(scratch or temporary.name).resolve()
    entries = []
    try:
        for folder in students:
            entry = Entry(student=folder.name)
            began = time.monotonic()
            checkpoint = folder / CHECKPOINT_NAME
            entry.reason = _check_file(checkpoint, max_bytes) or ""
            if not entry.reason:
                work = base / folder.name
                entry.reason = _run_model(checkpoint.resolve(), hidden / "images", work,
                                          limits, threads, use_sandbox) or ""
                if not entry.reason:
                    try:
                        summary, entry.per_class = score(labels, work / "pred")
                        entry.mIoU, entry.aAcc = summary["mIoU"], summary["aAcc"]
                        entry.mAcc = summary.get("mAcc")
                    except ValueError as err:
                        entry.reason = f"predictions refused: {err}"
            entry.seconds = round(time.monotonic() - began, 1)
            print(f"{entry.student}: " + (f"mIoU {entry.mIoU:.2f}, aAcc {entry.aAcc:.2f}"
                                          if entry.mIoU is not None else entry.reason),
                  file=sys.stderr)
            entries.append(entry)
    finally:
        if temporary:
            temporary.cleanup()
    entries = rank(entries)
    write(entries, out, n_images=len(pairs))
    return entries


def rank(entries: list[Entry]) -> list[Entry]:
    """Scored entries by mIoU, then aAcc (higher first; equal ones share a rank), then the rest."""
    scored = sorted((e for e in entries if e.mIoU is not None),
                    key=lambda e: (-e.mIoU, -e.aAcc, e.student))
    for k, e in enumerate(scored):
        prev = scored[k - 1] if k else None
        e.rank = prev.rank if prev and (prev.mIoU, prev.aAcc) == (e.mIoU, e.aAcc) else k + 1
    return scored + sorted((e for e in entries if e.mIoU is None), key=lambda e: e.student)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def write(entries: list[Entry], out: Path, n_images: int) -> None:
    """OUT: an HTML page with the table (every text escaped); OUT.json: the same as data."""
    esc = html.escape
    rows = []
    for e in entries:
        classes = "".join(f"<tr><td>{esc(c)}</td><td>{'n/a' if v is None else f'{v:.2f}'}"
                          "</td></tr>" for c, v in e.per_class.items())
        detail = (f"<details><summary>per class</summary><table>{classes}</table></details>"
                  if classes else esc(e.reason))
        rows.append(f"<tr><td>{e.rank or '–'}</td><td>{esc(e.student)}</td>"
                    f"<td>{_number(e.mIoU)}</td><td>{_number(e.aAcc)}</td><td>{detail}</td></tr>")
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Leaderboard</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;vertical-align:top}}</style></head><body>
<h1>Leaderboard of the students' models</h1>
<p>{len(entries)} students, {n_images} hidden images; mIoU and aAcc in %, mmseg's IoUMetric.
Ranked by mIoU, then aAcc.</p>
<table><tr><th>rank</th><th>student</th><th>mIoU</th><th>aAcc</th><th>per-class IoU / why no
score</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    Path(f"{out}.json").write_text(json.dumps([asdict(e) for e in entries], indent=1) + "\n")


# --- Command line -------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m teacher.leaderboard",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-hidden", help="write a hidden demo split into DIR")
    make.add_argument("dir")
    make.add_argument("--images", type=int, default=DEFAULT_IMAGES)
    board = sub.add_parser("rank", help="score SUBMITTED/STUDENT/checkpoint.pth, write OUT")
    board.add_argument("submitted")
    board.add_argument("out")
    board.add_argument("--hidden", required=True, help="DIR with images/ and labels/")
    board.add_argument("--create-hidden", action="store_true",
                       help="make a hidden demo split at --hidden when it does not exist")
    board.add_argument("--scratch", help="keep each student's sandbox folder here")
    board.add_argument("--threads", type=int, help="threads per model (default: every core)")
    args = parser.parse_args(argv)
    try:
        if args.command == "make-hidden":
            folder = make_hidden(args.dir, args.images)
            print(f"hidden split: {folder}/images, {folder}/labels (seed in {folder}/seed.txt)")
            return 0
        if args.create_hidden and not Path(args.hidden, "labels").exists():
            make_hidden(args.hidden)
            print(f"made a hidden demo split at {args.hidden}", file=sys.stderr)
        entries = leaderboard(args.submitted, args.out, args.hidden, scratch=args.scratch,
                              threads=args.threads)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.out}: {sum(e.rank is not None for e in entries)} of {len(entries)} models "
          "scored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
