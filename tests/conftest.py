"""Session fixtures shared by every test module.

- ``demo_root``: a small synthetic VOC2012 tree (``helpers.demo_data``), made once per session.
- ``trained_smoke``: the ``smoke`` preset trained once on ``demo_root`` (one to two minutes on
  two idle CPU cores); tests that need a real trained model (prediction, evaluation, export) use it.
- ``phone_photo``: a validation image saved as a phone saves photos: stored sideways, with an
  EXIF orientation that says how to turn it upright.

Both are read-only for the tests that use them: copy what you need to change into ``tmp_path``.
Under pytest-xdist (``make test`` runs two workers) the first worker that needs one makes it in
the run's shared temporary folder and the other reads it there (:func:`_shared`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # xdist workers share the cores, not each all
    _THREADS = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, _THREADS)

#: The files that take minutes (``--durations``), started first so that the xdist workers
#: (``make test``: ``--dist loadfile --no-loadscope-reorder``) end together.
SLOW_FIRST = ("test_grading.py", "test_grading_cluster.py", "test_checks_onnx.py",
              "test_export.py", "test_grading_runs.py", "test_train.py",
              "test_checks_training.py", "test_command_lines.py", "test_leaderboard.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: same order else


@dataclass(frozen=True)
class TrainedRun:
    """A finished smoke-preset training run (see the ``trained_smoke`` fixture)."""

    work_dir: Path  #: the run's mmengine work_dir
    config_path: Path  #: the config it was trained with (``helpers.config.CONFIG_NAME``)
    checkpoint: Path  #: the best-mIoU checkpoint
    last_checkpoint: Path  #: the checkpoint of the final iteration
    voc_root: Path  #: the dataset it was trained on (``demo_root``)
    metrics: dict[str, float] = field(default_factory=dict)  #: final validation metrics


def _shared(tmp_path_factory: pytest.TempPathFactory, name: str,
            make: Callable[[Path], dict]) -> dict:
    """``make(folder)`` once per test run, whatever the number of xdist workers: its JSON result
    is kept beside the folder, and a worker that finds it (under the lock) reads it instead."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above every worker's own
    folder, done = base / f"shared-{name}", base / f"shared-{name}.json"
    with FileLock(str(base / f"shared-{name}.lock")):
        if not done.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            done.write_text(json.dumps(make(folder)))
    return json.loads(done.read_text())


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic VOC2012 folder (``VOCdevkit/VOC2012``) with the generator's default splits."""
    from helpers.demo_data import make_demo_dataset

    def make(base: Path) -> dict:
        return {"root": str(make_demo_dataset(base / "VOCdevkit" / "VOC2012", seed=0))}

    return Path(_shared(tmp_path_factory, "demo_voc", make)["root"])


@pytest.fixture
def phone_photo(demo_root: Path, tmp_path: Path):
    """(path of a JPEG stored rotated with EXIF orientation 6, the upright RGB image)."""
    import numpy as np
    from PIL import Image

    from helpers.voc import IMAGE_DIR, split_ids

    with Image.open(demo_root / IMAGE_DIR / f"{split_ids(demo_root, 'val')[0]}.jpg") as img:
        upright = np.array(img)
    stored = Image.fromarray(np.rot90(upright, k=1))  # turned 90 degrees counter-clockwise
    exif = stored.getexif()
    exif[0x0112] = 6  # orientation 6: "turn 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    return path, upright


@pytest.fixture(scope="session")
def trained_smoke(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """Train the ``smoke`` preset once on ``demo_root`` and describe the result."""
    from helpers.checkpoint import find_checkpoint
    from helpers.config import CONFIG_NAME, build_config, save_config
    from helpers.train import train

    def make(base: Path) -> dict:
        work_dir = base / "pspnet_voc12"
        cfg = build_config("smoke", demo_root, work_dir)
        config_path = save_config(cfg, work_dir / CONFIG_NAME)
        metrics = {k: float(v) for k, v in train(cfg).items()}
        return dict(work_dir=str(work_dir), config_path=str(config_path),
                    checkpoint=str(find_checkpoint(work_dir, "best")),
                    last_checkpoint=str(find_checkpoint(work_dir, "last")), metrics=metrics)

    run = _shared(tmp_path_factory, "smoke_run", make)
    return TrainedRun(
        work_dir=Path(run["work_dir"]),
        config_path=Path(run["config_path"]),
        checkpoint=Path(run["checkpoint"]),
        last_checkpoint=Path(run["last_checkpoint"]),
        voc_root=demo_root,
        metrics=run["metrics"],
    )
