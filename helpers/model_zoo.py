"""The model notebooks 04 and 05 use: the student's own run, else mmseg's, else a quick one.

Notebooks 04 and 05 evaluate and export the model the student trained in notebook 03.
:func:`ensure_checkpoint` finds it by the run's own record, not by file dates, and otherwise
picks a stand-in, in order:

1. **trained**: the run in ``work_dir`` (notebook 03's ``WORK_DIR``). mmengine's
   ``last_checkpoint`` file names the run's latest checkpoint; the message hub saved in it names
   the run's best checkpoint (``best_ckpt``), and that checkpoint's ``meta.cfg`` is the config
   the run really trained (on a CPU notebook 03 shrinks the student's config): it is written
   beside the checkpoint (``best_mIoU_iter_N.py``) for ``init_model``;
2. **model zoo**: mmseg's own PSPNet R50-D8 trained on VOC2012 + SBD (``OFFICIAL_CONFIG``, 76.78
   mIoU on VOC val in mmseg's model zoo), downloaded once when the machine is online and loaded
   by the course's safe loader (``helpers.checkpoint``: ``weights_only=True``, strict). Its
   address and score are read from mmseg's own metafile, not typed here;
3. **smoke**: offline (or with downloads off, as under ``SMOKE=1``), the ``smoke`` preset is
   trained first (a slim PSPNet, about half a minute on an idle 2-core CPU, minutes on a busy
   one) into ``work_dir/smoke_fallback``.

``print(choice)`` is a one-line banner: whose model it is, or that the student has no run yet,
which model stands in and how to get theirs. Nothing is written into ``work_dir`` but the
config beside a checkpoint, so notebook 03 can still train there afterwards (and is then
preferred). :func:`zoo_checkpoint` alone gives notebook 04's "quick win": a real VOC model's
predictions before any training.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from helpers.downloads import urlopen_within

__all__ = [
    "FALLBACK_DIR",
    "ModelChoice",
    "ZOO_DIR",
    "ensure_checkpoint",
    "online",
    "zoo_checkpoint",
    "zoo_config",
    "zoo_entry",
]

ZOO_DIR = "model_zoo"
"""Subfolder of a work dir holding the config written for the model-zoo checkpoint."""

FALLBACK_DIR = "smoke_fallback"
"""Subfolder of a work dir where the offline fallback trains the ``smoke`` preset."""


@dataclass(frozen=True)
class ModelChoice:
    """The config and checkpoint a notebook goes on with, and where they came from."""

    source: str  #: "trained", "model_zoo" or "smoke"
    config: Path
    checkpoint: Path
    banner: str  #: one line for the reader: whose model this is, or what stands in and why

    def __str__(self) -> str:
        return self.banner


def zoo_entry(name: str | None = None) -> dict:
    """mmseg's metafile entry of a PSPNet config: ``{"name", "url", "miou", "config"}``.

    ``name`` defaults to ``helpers.config.OFFICIAL_CONFIG``; read from
    ``mmseg/.mim/configs/pspnet/metafile.yaml`` (the model zoo's own table).
    """
    import mmengine

    from helpers.config import OFFICIAL_CONFIG, mmseg_config_dir

    stem = Path(name or OFFICIAL_CONFIG).stem
    metafile = mmseg_config_dir() / "pspnet" / "metafile.yaml"
    for model in mmengine.load(str(metafile))["Models"]:
        if model["Name"] == stem:
            results = model["Results"]  # one dict, or a list of them (one per dataset)
            metrics = (results[0] if isinstance(results, list) else results)["Metrics"]
            return {"name": stem, "url": model["Weights"], "miou": float(metrics["mIoU"]),
                    "config": f"{stem}.py"}
    raise KeyError(f"{metafile} has no model named {stem!r}")


def online(url: str, timeout: float = 5.0) -> str:
    """"" when the server of ``url`` answers within ``timeout`` s (name lookup included), else
    why not (one line).

    A short probe first, so that an offline machine finds out in seconds: the download itself
    has no time limit.
    """
    host = urllib.parse.urlparse(url).netloc
    try:
        with urlopen_within(urllib.request.Request(url, method="HEAD"), timeout):
            return ""
    except urllib.error.HTTPError:  # the server answered; the download reports real errors
        return ""
    except (urllib.error.URLError, OSError) as err:
        return f"cannot reach {host} ({getattr(err, 'reason', err)})"


def zoo_checkpoint(download: bool = True, timeout: float = 5.0) -> Path | None:
    """The model zoo's VOC checkpoint as a local file, downloading it (~190 MB) once if allowed.

    Returns None, after printing why, when it is not in the cache and ``download`` is False, the
    machine is offline, or the download fails. Never raises for those.
    """
    from helpers.checkpoint import CheckpointError, checkpoint_cache_path, download_checkpoint

    entry = zoo_entry()
    cached = checkpoint_cache_path(entry["url"])
    if cached.is_file():
        return cached
    if not download:
        print(f"Model zoo: {entry['name']} is not downloaded yet and downloads are off here "
              "(SMOKE=1): skipped.")
        return None
    why = online(entry["url"], timeout)
    if why:
        print(f"Model zoo: offline, {why}: skipped.")
        return None
    print(f"Model zoo: downloading {entry['url']} (~190 MB, once) ...")
    try:
        return download_checkpoint(entry["url"])
    except CheckpointError as err:
        print(f"Model zoo: {err}")
        return None


def zoo_config(voc_root: str | Path, out_dir: str | Path) -> Path:
    """Write the config the model-zoo checkpoint fits: the course's ``official`` preset (mmseg's
    VOC recipe with BN and ``VOC_ROOT``'s val split), to ``out_dir/<CONFIG_NAME>``."""
    from helpers.config import CONFIG_NAME, build_config, save_config

    cfg = build_config("official", voc_root, out_dir, load_from=None)
    return save_config(cfg, Path(out_dir) / CONFIG_NAME)


def _trained(work_dir: Path) -> tuple[Path, Path, str] | None:
    """(config, checkpoint, what) of the run in ``work_dir`` from the run's own record, or None.

    The latest checkpoint is the one mmengine's ``last_checkpoint`` names; the best one is the
    ``best_ckpt`` its message hub recorded (the latest itself when the run kept no best). The
    config written beside the checkpoint is the one saved in it (``meta.cfg``): the config the
    run trained, which notebook 03 may have shrunk from the file in ``work_dir``.
    """
    from mmengine.runner import find_latest_checkpoint

    from helpers.checkpoint import load_checkpoint

    named = find_latest_checkpoint(str(work_dir)) if work_dir.is_dir() else None
    latest = work_dir / Path(named).name if named else None  # the names hold while a folder moves
    if latest is None or not latest.is_file():
        return None
    ckpt = load_checkpoint(latest)
    info = ckpt.get("message_hub", {}).get("runtime_info", {})
    best = work_dir / Path(info["best_ckpt"]).name if info.get("best_ckpt") else latest
    if best != latest and best.is_file():
        ckpt = load_checkpoint(best)
    else:
        best = latest
    config = best.with_suffix(".py")
    text = ckpt.get("meta", {}).get("cfg")
    if not text:  # pragma: no cover - every checkpoint mmengine's Runner saves holds its config
        raise ValueError(f"{best} holds no config (meta.cfg): it was not saved by a Runner.")
    if not config.is_file() or config.read_text() != text:
        config.write_text(text)
    score = info.get("best_score")
    what = (f"best val mIoU {score:.1f} at iteration {ckpt['meta'].get('iter')}"
            if best != latest and score is not None else f"iteration {ckpt['meta'].get('iter')}")
    return config, best, what


def ensure_checkpoint(work_dir: str | Path, voc_root: str | Path, download: bool = True,
                      timeout: float = 5.0) -> ModelChoice:
    """The model notebooks 04 and 05 go on with: your run's, else the model zoo's, else smoke.

    Args:
        work_dir: notebook 03's work dir (``WORK_DIR``).
        voc_root: the dataset the configs point at (``VOC_ROOT``); it must exist.
        download: allow downloading the model-zoo checkpoint (False under ``SMOKE``: a copy
            already in the cache is still used).
        timeout: seconds the online probe waits.

    ``print(choice)`` shows its one-line banner; see the module doc for the order.
    """
    from helpers.config import CONFIG_NAME, build_config, save_config

    work_dir = Path(work_dir)
    found = _trained(work_dir)
    if found:
        config, checkpoint, what = found
        return ModelChoice("trained", config, checkpoint,
                           f"Your model: {checkpoint.name} of your run in {work_dir} (notebook "
                           f"03; {what}), with the config it trained, {config.name}.")
    instead = f"No run of yours in {work_dir} yet (run notebook 03 to train it): using"
    zoo = zoo_checkpoint(download, timeout)
    if zoo is not None:
        entry = zoo_entry()
        return ModelChoice(
            "model_zoo", zoo_config(voc_root, work_dir / ZOO_DIR), zoo,
            f"{instead} mmseg's model-zoo PSPNet R50-D8 (VOC2012 + SBD, {entry['miou']} mIoU "
            "on VOC val, mmseg's figure) instead.")
    fallback = work_dir / FALLBACK_DIR
    found = _trained(fallback)
    if found:
        return ModelChoice("smoke", *found[:2], f"{instead} the smoke model trained earlier in "
                           f"{fallback} instead (offline: no model-zoo checkpoint).")
    from helpers.train import train

    print(f"No run in {work_dir} and no model-zoo checkpoint: training the smoke preset first (a "
          f"slim PSPNet from scratch, about a minute on a CPU) into {fallback}.")
    cfg = build_config("smoke", voc_root, fallback)
    save_config(cfg, fallback / CONFIG_NAME)
    metrics = train(cfg)
    found = _trained(fallback)
    if not found:  # pragma: no cover - the smoke preset saves its best checkpoint
        raise RuntimeError(f"training the smoke preset left no checkpoint in {fallback}")
    return ModelChoice("smoke", *found[:2], f"{instead} the smoke model trained just now in "
                       f"{fallback} instead (val mIoU {metrics.get('mIoU', 0):.1f}; offline: no "
                       "model-zoo checkpoint).")
