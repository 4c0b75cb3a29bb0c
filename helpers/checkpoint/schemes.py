"""mmengine's checkpoint address schemes, every one pointed at a safe loader or a refusal."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mmengine
import torch
from mmengine.dist import get_dist_info
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from helpers.checkpoint.errors import CheckpointError, _one_line
from helpers.checkpoint.safe_load import load_checkpoint

__all__ = ["checkpoint_cache_path", "download_checkpoint", "register_safe_loaders"]


def checkpoint_cache_path(url: str) -> Path:
    """Where :func:`download_checkpoint` keeps ``url``: torch's hub cache, keyed by the full URL
    (two URLs ending in the same file name never share a file)."""
    name = Path(urllib.parse.urlparse(url).path).name or "checkpoint.pth"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(torch.hub.get_dir()) / "checkpoints" / "by_url" / key / name


def download_checkpoint(url: str) -> Path:
    """Download ``url`` once into :func:`checkpoint_cache_path` and return the file (not loaded).

    A name carrying a SHA-256 prefix, like OpenMMLab's ``..._20200606_112131-2376f12b.pth``, is
    checked against the downloaded bytes. An HTTP error status is an error, never a file.
    """
    cached = checkpoint_cache_path(url)
    name = cached.name
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        digest = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z]+$", name)
        try:  # writes a temporary file and moves it into place only when complete and checked
            torch.hub.download_url_to_file(url, str(cached), digest and digest.group(1),
                                           progress=sys.stderr.isatty())
        except Exception as err:  # HTTP status, no network, hash mismatch, disk full
            raise CheckpointError(
                f"could not download {url} ({type(err).__name__}: {_one_line(err)}). Check the "
                "address and the network, or download the file yourself and pass its local path."
            ) from err
    return cached


def _load_from_local_safe(filename: str, map_location: Any = None) -> dict:
    """mmengine scheme ``''`` (local files): :func:`load_checkpoint`."""
    return load_checkpoint(filename, map_location)


def _load_from_http_safe(filename: str, map_location: Any = None) -> dict:
    """mmengine schemes ``http(s)://``: :func:`download_checkpoint`, then :func:`load_checkpoint`.

    As mmengine's own http loader: rank 0 downloads first; then every other rank whose node lacks
    the file (no shared disk) downloads it for itself.
    """
    rank, world_size = get_dist_info()
    if rank == 0:
        path = download_checkpoint(filename)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            path = download_checkpoint(filename)
    return load_checkpoint(path, map_location)


def _torchvision_models() -> dict[str, str]:
    try:
        return mm_checkpoint.get_torchvision_models()
    except ImportError:  # no torchvision installed: mmengine's own table of torchvision's URLs
        return mmengine.load(os.path.join(mmengine.__path__[0], "hub", "torchvision_0.12.json"))


def _load_from_zoo_safe(filename: str, map_location: Any = None) -> dict:
    """mmengine's model-zoo schemes: resolve the name as mmengine does, then load safely."""
    scheme, name = filename.split("://", 1)
    if scheme in ("open-mmlab", "openmmlab"):
        name = mm_checkpoint.get_deprecated_model_names().get(name, name)
        table = mm_checkpoint.get_external_models()
    else:
        table = mm_checkpoint.get_mmcls_models() if scheme == "mmcls" else _torchvision_models()
    if name not in table:
        raise CheckpointError(f"{filename}: mmengine's {scheme}:// table has no model named "
                              f"{name!r}. Check the name, or pass a local file or URL.")
    url = table[name]
    if url.startswith(("http://", "https://")):
        ckpt = _load_from_http_safe(url, map_location)
    else:  # an open-mmlab:// entry naming a file under MMENGINE_HOME
        ckpt = load_checkpoint(Path(mm_checkpoint._get_mmengine_home()) / url, map_location)
    return mm_checkpoint._process_mmcls_checkpoint(ckpt) if scheme == "mmcls" else ckpt


def _refuse(filename: str, map_location: Any = None) -> dict:
    """Every other scheme: mmengine's loaders for them unpickle without ``weights_only``."""
    raise CheckpointError(
        f"{filename}: refused - the course loads checkpoints only from local files, http(s) URLs "
        "and mmengine's model-zoo names (open-mmlab://, openmmlab://, mmcls://, torchvision://, "
        "modelzoo://), all with weights_only=True; this scheme's loader has no such protection. "
        "Download the file yourself and pass its local path.")


# mmengine prints "Loads checkpoint by <name[10:]> backend": name them load_from_*.
_SAFE_LOADERS: dict[str, Callable[..., dict]] = {"": _load_from_local_safe}
for _loader, _prefixes in (
    (_load_from_http_safe, ("http://", "https://")),
    (_load_from_zoo_safe, ("open-mmlab://", "openmmlab://", "mmcls://", "torchvision://",
                           "modelzoo://")),
):
    _SAFE_LOADERS.update(dict.fromkeys(_prefixes, _loader))
_load_from_local_safe.__name__ = "load_from_local(safe)"
_load_from_http_safe.__name__ = "load_from_http(safe)"
_load_from_zoo_safe.__name__ = "load_from_model_zoo(safe)"
_refuse.__name__ = "load_from_nothing(refused)"


def register_safe_loaders() -> dict[str, Callable[..., dict]]:
    """Point every prefix registered with mmengine's ``CheckpointLoader`` at a safe loader.

    Known schemes get the safe loaders above; every other one, whatever registered it, gets a
    loader that refuses. Idempotent; runs when this module is imported. Returns the table.
    """
    for prefix in {*CheckpointLoader._schemes, *_SAFE_LOADERS}:
        CheckpointLoader.register_scheme(prefix, _SAFE_LOADERS.get(prefix, _refuse), force=True)
    return dict(CheckpointLoader._schemes)


register_safe_loaders()
