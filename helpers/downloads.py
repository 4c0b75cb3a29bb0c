"""Downloads from the internet: the VOC2012 dataset and the homework's pretrained checkpoint.

Neither runs in CI (the test machines are offline); both are tested offline against a local
HTTP server. `download_voc` (notebook 01) fetches, checks and extracts the 2 GB VOC2012 archive,
and does nothing when VOC is already there; it never extracts over the synthetic demo dataset.
`fetch_pretrained` (notebook 02) fetches the Cityscapes PSPNet checkpoint that the ``seed``
preset fine-tunes through `helpers.checkpoint.download_checkpoint` (cache keyed by the full URL,
SHA-256 prefix checked, an HTTP error is an error). Loading any checkpoint goes through
`helpers.checkpoint`.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from helpers.outputs import atomic_path
from helpers.voc import IMAGE_DIR, MASK_DIR, DatasetError, split_ids

__all__ = [
    "PRETRAINED_URL",
    "VOC_MD5",
    "VOC_URL",
    "download_voc",
    "fetch_pretrained",
    "pretrained_path",
    "urlopen_within",
    "voc_present",
]

VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
VOC_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"

PRETRAINED_URL = (
    "https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/"
    "pspnet_r50-d8_512x1024_80k_cityscapes/"
    "pspnet_r50-d8_512x1024_80k_cityscapes_20200606_112131-2376f12b.pth"
)
"""The Cityscapes PSPNet checkpoint the homework fine-tunes (``load_from`` of ``seed``)."""


def urlopen_within(request: str | urllib.request.Request, timeout: float):
    """``urllib.request.urlopen(request)``, given up after ``timeout`` s in all.

    urlopen's own timeout bounds each socket operation, not the host-name lookup before them: on
    a network that drops DNS packets the lookup alone can take minutes. Here the whole call runs
    in a daemon thread, and after ``timeout`` s this raises ``URLError`` whatever it waits for.
    """
    done: dict = {}

    def call() -> None:
        try:
            done["response"] = urllib.request.urlopen(request, timeout=timeout)
        except BaseException as err:  # noqa: BLE001  (re-raised in the caller's thread)
            done["error"] = err

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise urllib.error.URLError(f"no answer within {timeout:g} s (name lookup or network)")
    if "error" in done:
        raise done["error"]
    return done["response"]


def pretrained_path() -> Path:
    """Where the Cityscapes checkpoint is kept once fetched: torch's hub cache (``TORCH_HOME``),
    in the folder of its full URL (`helpers.checkpoint.checkpoint_cache_path`)."""
    from helpers.checkpoint import checkpoint_cache_path

    return checkpoint_cache_path(PRETRAINED_URL)


def fetch_pretrained(timeout: float = 5.0) -> Path | None:
    """Download the homework's Cityscapes checkpoint (once) and return its path.

    Returns None, with a clear notice, when the machine is offline: training then starts from
    scratch. An HTTP error (the file moved, access denied) raises ``CheckpointError``: it is
    not a sign of being online. The download goes through
    `helpers.checkpoint.download_checkpoint`, which checks the SHA-256 prefix in the file name.
    Configs refer to the file by its URL (``load_from``), so on several machines without a
    shared disk each one downloads it for itself.
    """
    from helpers.checkpoint import CheckpointError, download_checkpoint

    path = pretrained_path()
    if path.is_file():
        return path
    try:  # a short probe, so that an offline machine answers in seconds, not minutes
        urlopen_within(PRETRAINED_URL, timeout).close()
    except urllib.error.HTTPError as err:
        raise CheckpointError(
            f"{PRETRAINED_URL}: the server answered HTTP {err.code} ({err.reason}); the file may "
            "have moved. Find its current address in MMSegmentation's PSPNet model zoo, download "
            f"it yourself and put it at {path}.") from None
    except (urllib.error.URLError, OSError) as err:
        print(f"OFFLINE: cannot reach {PRETRAINED_URL.split('/')[2]} ({err}).\n"
              "Training will start from scratch (random weights): expect a much lower mIoU.\n"
              f"On a machine with internet, run helpers.downloads.fetch_pretrained() or put the "
              f"file at {path}.")
        return None
    return download_checkpoint(PRETRAINED_URL)


def voc_present(root: str | Path) -> bool:
    """Whether ``root`` holds an extracted VOC2012 segmentation set: split files train and val,
    and an image and a mask for every id they list (a real one: no demo-data marker)."""
    from helpers.demo_data import is_demo_dataset

    root = Path(root)
    try:
        ids = set(split_ids(root, "train")) | set(split_ids(root, "val"))
        images, masks = (set(os.listdir(root / d)) for d in (IMAGE_DIR, MASK_DIR))
    except (DatasetError, OSError):
        return False
    return bool(ids) and not is_demo_dataset(root) and all(
        f"{i}.jpg" in images and f"{i}.png" in masks for i in ids)


def download_voc(dest: str | Path = "data") -> Path:
    """Download VOC2012 trainval (2 GB), check its md5 and extract it under `dest`.

    Returns the VOC root `dest/VOCdevkit/VOC2012`. Nothing is downloaded or extracted when that
    root already holds VOC (`voc_present`); an archive already at `dest` is reused. A demo
    dataset at that root is never extracted over: a `DatasetError` says what to do.
    """
    from helpers.demo_data import DEMO_MARKER, is_demo_dataset

    dest = Path(dest)
    root = dest / "VOCdevkit" / "VOC2012"
    if is_demo_dataset(root):
        raise DatasetError(
            f"{root} holds the synthetic demo dataset ({DEMO_MARKER}); VOC2012 is never "
            "extracted over it. Download VOC elsewhere (download_voc('data/voc')) and point "
            "VOC_ROOT there, or delete the demo folder yourself.")
    if voc_present(root):
        return root
    dest.mkdir(parents=True, exist_ok=True)
    tar_path = dest / Path(VOC_URL).name
    if not tar_path.is_file():
        try:
            with atomic_path(tar_path) as partial, partial.open("wb") as out, \
                    urllib.request.urlopen(VOC_URL, timeout=30) as resp:
                total = int(resp.headers.get("Content-Length", 0)) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=tar_path.name) as bar:
                    while chunk := resp.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
        except urllib.error.URLError as err:  # HTTPError included
            raise DatasetError(f"could not download {VOC_URL} ({err}). Check the network, or "
                               f"download the archive yourself to {tar_path}.") from None
    md5 = hashlib.md5()
    with tar_path.open("rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
    if md5.hexdigest() != VOC_MD5:
        raise DatasetError(
            f"{tar_path}: md5 {md5.hexdigest()} != {VOC_MD5}; the download is corrupt. "
            "Delete the file and run download_voc again."
        )
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    return root
