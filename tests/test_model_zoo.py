"""helpers.model_zoo: the model notebooks 04 and 05 use, tested offline.

Order: the student's run in WORK_DIR, found by its own record (last_checkpoint, best_ckpt);
mmseg's model-zoo VOC checkpoint when online (here the download is replaced by a checkpoint in
the 2020 format with random weights, put where the download would put it); offline, the smoke
preset trained into WORK_DIR/smoke_fallback.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from helpers import model_zoo
from helpers.checkpoint import CheckpointError, checkpoint_cache_path, init_model
from helpers.config import CONFIG_NAME, OFFICIAL_CONFIG


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache (where downloads go)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(model_zoo, "online", lambda url, timeout=5.0: "cannot reach it (test)")


def test_the_model_zoo_entry_comes_from_mmseg_s_metafile():
    entry = model_zoo.zoo_entry()
    assert entry["name"] == Path(OFFICIAL_CONFIG).stem and entry["miou"] == 76.78
    assert entry["url"].startswith("https://download.openmmlab.com/") and \
        entry["url"].endswith("voc12aug_20200617_101958-ed5dfbd9.pth")
    with pytest.raises(KeyError, match="no model named"):
        model_zoo.zoo_entry("pspnet_r50-d8_made-up.py")


def test_online_answers_quickly_when_nothing_listens():
    why = model_zoo.online("http://127.0.0.1:9/checkpoint.pth", timeout=2)
    assert why.startswith("cannot reach 127.0.0.1:9")


def test_online_gives_up_on_a_name_lookup_that_hangs(monkeypatch):
    import socket
    import time

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(30))  # dropped DNS
    start = time.monotonic()
    why = model_zoo.online("https://download.example.org/checkpoint.pth", timeout=1)
    assert time.monotonic() - start < 5
    assert why == ("cannot reach download.example.org "
                   "(no answer within 1 s (name lookup or network))")


def test_zoo_checkpoint_says_why_it_is_skipped(hub, offline, capsys):
    assert model_zoo.zoo_checkpoint(download=False) is None
    assert "downloads are off" in capsys.readouterr().out
    assert model_zoo.zoo_checkpoint() is None
    assert "offline, cannot reach it (test): skipped" in capsys.readouterr().out


def test_a_failed_download_is_a_message_not_an_error(hub, monkeypatch, capsys):
    monkeypatch.setattr(model_zoo, "online", lambda url, timeout=5.0: "")

    def fail(url):
        raise CheckpointError(f"could not download {url} (HTTPError: 404)")

    monkeypatch.setattr("helpers.checkpoint.download_checkpoint", fail)
    assert model_zoo.zoo_checkpoint() is None
    assert "HTTPError: 404" in capsys.readouterr().out


def test_a_trained_run_comes_first(trained_smoke, hub, monkeypatch, tmp_path):
    monkeypatch.setattr(model_zoo, "zoo_checkpoint", lambda *a, **k: pytest.fail("not needed"))
    work = tmp_path / "pspnet_voc12"  # a copy: the chooser writes the run's config beside it
    shutil.copytree(trained_smoke.work_dir, work)
    # a stray best checkpoint, newer than the run's (another run's leftover): not chosen
    shutil.copy(work / trained_smoke.checkpoint.name, work / "best_mIoU_iter_9999.pth")
    choice = model_zoo.ensure_checkpoint(work, trained_smoke.voc_root)
    assert choice.source == "trained" and choice.checkpoint == work / trained_smoke.checkpoint.name
    banner = str(choice)
    assert "\n" not in banner and banner.startswith("Your model: best_mIoU_iter_")
    assert "notebook 03" in banner and "best val mIoU" in banner
    # the config beside it is the one the run trained (meta.cfg), not the file in the work dir
    assert choice.config == choice.checkpoint.with_suffix(".py")
    (work / CONFIG_NAME).write_text("raise SystemExit('not this file')\n")
    model = init_model(choice.config, choice.checkpoint)  # safe and strict: the config fits
    assert model.backbone.depth == 18


def _zoo_file(url: str, voc_root: Path, tmp: Path) -> Path:
    """A checkpoint as mmseg's 2020 releases store it (meta CLASSES/PALETTE, state_dict) for
    the official recipe's model, random weights, at the path a download would write."""
    from mmseg.apis import init_model as mmseg_init_model

    from helpers.config import build_config
    from helpers.voc import CLASSES, PALETTE

    cfg = build_config("official", voc_root, tmp / "build", load_from=None)
    torch.manual_seed(0)
    state = mmseg_init_model(cfg, None, device="cpu").state_dict()
    path = checkpoint_cache_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": {"CLASSES": tuple(CLASSES), "PALETTE": [list(c) for c in PALETTE],
                         "iter": 20000}, "state_dict": state}, path)
    return path


def test_online_without_a_trained_run_takes_the_model_zoo_checkpoint(demo_root, hub, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(model_zoo, "online", lambda url, timeout=5.0: "")
    monkeypatch.setattr("helpers.checkpoint.download_checkpoint",
                        lambda url: _zoo_file(url, demo_root, tmp_path))
    work = tmp_path / "work"
    choice = model_zoo.ensure_checkpoint(work, demo_root)
    assert choice.source == "model_zoo" and "76.78 mIoU" in str(choice)
    assert str(choice).startswith(f"No run of yours in {work} yet (run notebook 03")
    assert choice.config == work / model_zoo.ZOO_DIR / CONFIG_NAME
    assert not (work / CONFIG_NAME).exists()  # notebook 03's place stays free
    model = init_model(choice.config, choice.checkpoint)  # safe and strict
    assert model.decode_head.num_classes == 21 and model.dataset_meta["classes"][1] == "aeroplane"
    assert type(model.backbone).__name__ == "ResNetV1c" and model.backbone.depth == 50
    # once downloaded, it is used without asking the network again, even with downloads off
    monkeypatch.setattr(model_zoo, "online", lambda url, timeout=5.0: pytest.fail("no probe"))
    assert model_zoo.ensure_checkpoint(work, demo_root, download=False).source == "model_zoo"


def test_offline_without_a_trained_run_trains_the_smoke_preset_once(demo_root, hub, offline,
                                                                    tmp_path, monkeypatch, capsys):
    from helpers.config import presets

    short = dataclasses.replace(presets.RECIPES["smoke"], max_iters=20, val_interval=10,
                                ckpt_interval=10, log_interval=10)
    monkeypatch.setitem(presets.RECIPES, "smoke", short)
    work = tmp_path / "work"
    choice = model_zoo.ensure_checkpoint(work, demo_root)
    out = capsys.readouterr().out
    assert "offline" in out and "training the smoke preset first" in out
    assert choice.source == "smoke" and "trained just now" in str(choice)
    assert choice.checkpoint.parent == work / model_zoo.FALLBACK_DIR
    assert init_model(choice.config, choice.checkpoint).decode_head.num_classes == 21
    again = model_zoo.ensure_checkpoint(work, demo_root)  # reused, not trained again
    assert again.source == "smoke" and again.checkpoint == choice.checkpoint
    assert "trained earlier" in str(again)
    # a run trained later in WORK_DIR itself (notebook 03) takes over
    for item in (work / model_zoo.FALLBACK_DIR).iterdir():
        if item.is_file():
            shutil.copy(item, work / item.name)
    assert model_zoo.ensure_checkpoint(work, demo_root).source == "trained"
