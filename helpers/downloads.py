"""Downloads from the internet: the VOC2012 dataset and the homework's pretrained checkpoint.

Neither runs in CI (the test machines are offline); both are tested offline. `download_voc`
(notebook 01) fetches and checks the 2 GB VOC2012 archive; `fetch_pretrained` (notebook 02)
fetches the Cityscapes PSPNet checkpoint that the ``seed`` preset fine-tunes, into
``checkpoints/`` beside the course. Loading any checkpoint goes through `helpers.checkpoint`.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from helpers.voc import DatasetError

__all__ = [
    "PRETRAINED_URL",
    "VOC_MD5",
    "VOC_URL",
    "download_voc",
    "fetch_pretrained",
    "pretrained_path",
]

VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
VOC_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"

PRETRAINED_URL = (
    "https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/"
    "pspnet_r50-d8_512x1024_80k_cityscapes/"
    "pspnet_r50-d8_512x1024_80k_cityscapes_20200606_112131-2376f12b.pth"
)
"""The Cityscapes PSPNet checkpoint the homework fine-tunes (``load_from`` of ``seed``)."""


def pretrained_path(dest: str | Path | None = None) -> Path:
    """Where the Cityscapes checkpoint lives locally: ``<repo>/checkpoints/<file name>``."""
    if dest is None:
        from helpers.env import repo_root

        dest = repo_root() / "checkpoints"
    return Path(dest) / PRETRAINED_URL.rsplit("/", 1)[1]


def fetch_pretrained(dest: str | Path | None = None, timeout: float = 5.0) -> Path | None:
    """Download the homework's Cityscapes checkpoint into ``checkpoints/`` (once).

    Returns its path, or None (with a clear notice) when the machine is offline: training then
    starts from scratch. The file's SHA-256 prefix (in its name) is checked by torch.hub.
    """
    path = pretrained_path(dest)
    if path.is_file():
        return path
    try:  # a short probe, so that an offline machine answers in seconds, not minutes
        urllib.request.urlopen(urllib.request.Request(PRETRAINED_URL, method="HEAD"),
                               timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # the server answered (e.g. no HEAD allowed): we are online
    except (urllib.error.URLError, OSError) as err:
        print(f"OFFLINE: cannot reach {PRETRAINED_URL.split('/')[2]} ({err}).\n"
              "Training will start from scratch (random weights): expect a much lower mIoU.\n"
              f"On a machine with internet, run helpers.downloads.fetch_pretrained() or put the "
              f"file at {path}.")
        return None
    import torch.hub

    path.parent.mkdir(parents=True, exist_ok=True)
    hash_prefix = re.search(r"-([0-9a-f]{8})\.pth$", path.name)
    torch.hub.download_url_to_file(
        PRETRAINED_URL, str(path), hash_prefix=hash_prefix.group(1) if hash_prefix else None
    )
    return path


def download_voc(dest: str | Path = "data") -> Path:
    """Download VOC2012 trainval (2 GB), check its md5 and extract it under `dest`.

    Returns the VOC root `dest/VOCdevkit/VOC2012`. An existing complete download is reused.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tar_path = dest / Path(VOC_URL).name
    if not tar_path.is_file():
        partial = tar_path.with_suffix(".part")
        with urllib.request.urlopen(VOC_URL, timeout=30) as resp, partial.open("wb") as out:
            total = int(resp.headers.get("Content-Length", 0)) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=tar_path.name) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        partial.rename(tar_path)
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
    return dest / "VOCdevkit" / "VOC2012"
