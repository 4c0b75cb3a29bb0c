"""Session fixtures shared by every test module.

- ``demo_root``: a small synthetic VOC2012 tree (``helpers.demo_data``), made once per session.
- ``trained_smoke``: the ``smoke`` preset trained once on ``demo_root`` (one to two minutes on
  two idle CPU cores); tests that need a real trained model (prediction, evaluation, export) use it.
- ``phone_photo``: a validation image saved as a phone saves photos: stored sideways, with an
  EXIF orientation that says how to turn it upright.

Both are read-only for the tests that use them: copy what you need to change into ``tmp_path``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@dataclass(frozen=True)
class TrainedRun:
    """A finished smoke-preset training run (see the ``trained_smoke`` fixture)."""

    work_dir: Path  #: the run's mmengine work_dir
    config_path: Path  #: the config it was trained with (``helpers.config.CONFIG_NAME``)
    checkpoint: Path  #: the best-mIoU checkpoint
    last_checkpoint: Path  #: the checkpoint of the final iteration
    voc_root: Path  #: the dataset it was trained on (``demo_root``)
    metrics: dict[str, float] = field(default_factory=dict)  #: final validation metrics


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic VOC2012 folder (``VOCdevkit/VOC2012``) with the generator's default splits."""
    from helpers.demo_data import make_demo_dataset

    base = tmp_path_factory.mktemp("demo_voc")
    return Path(make_demo_dataset(base / "VOCdevkit" / "VOC2012", seed=0))


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

    work_dir = tmp_path_factory.mktemp("smoke_run") / "pspnet_voc12"
    cfg = build_config("smoke", demo_root, work_dir)
    config_path = save_config(cfg, work_dir / CONFIG_NAME)
    metrics = train(cfg)
    return TrainedRun(
        work_dir=work_dir,
        config_path=config_path,
        checkpoint=find_checkpoint(work_dir, "best"),
        last_checkpoint=find_checkpoint(work_dir, "last"),
        voc_root=demo_root,
        metrics=metrics,
    )
