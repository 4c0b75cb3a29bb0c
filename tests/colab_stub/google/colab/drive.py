"""Stand-in for `google.colab.drive`: "mounting" links the mount point to a local folder.

The folder is ``COLAB_STUB_DRIVE`` (it gets a ``MyDrive/`` inside, as on Colab). Without it the
mount fails, as it does on Colab when the student refuses consent.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["mount"]


def mount(mountpoint: str, force_remount: bool = False) -> None:
    """Link `mountpoint` to ``$COLAB_STUB_DRIVE`` (created, with ``MyDrive/``)."""
    folder = os.environ.get("COLAB_STUB_DRIVE")
    if not folder:
        raise ValueError("mount failed: no consent (COLAB_STUB_DRIVE is not set)")
    (Path(folder) / "MyDrive").mkdir(parents=True, exist_ok=True)
    point = Path(mountpoint)
    if point.is_symlink() and point.resolve() == Path(folder).resolve() and not force_remount:
        print(f"Drive already mounted at {mountpoint}; to attempt to forcibly remount, call "
              f"drive.mount(\"{mountpoint}\", force_remount=True).")
        return
    if point.is_symlink():
        point.unlink()
    point.parent.mkdir(parents=True, exist_ok=True)
    point.symlink_to(Path(folder).resolve(), target_is_directory=True)
    print(f"Mounted at {mountpoint}")
