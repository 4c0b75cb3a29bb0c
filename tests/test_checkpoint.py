"""helpers.checkpoint: every checkpoint load is weights_only with an OpenMMLab allowlist."""

from __future__ import annotations

import functools
import http.server
import pickle
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import load_checkpoint as mmengine_load_checkpoint

from helpers.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    find_checkpoint,
    init_model,
    load_checkpoint,
)
from helpers.config import build_config, save_config


class _CreateFile:
    """Pickles as `open(path, "w")`: loading the pickle creates `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


class _GetAttr:
    """Pickles as `getattr(obj, name)`."""

    def __init__(self, obj, name: str) -> None:
        self.obj, self.name = obj, name

    def __reduce__(self):
        return (getattr, (self.obj, self.name))


@pytest.fixture(scope="module")
def smoke_cfg(demo_root, tmp_path_factory):
    return build_config("smoke", demo_root, tmp_path_factory.mktemp("ckpt_wd"))


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_own_runner_checkpoint_loads_where_plain_weights_only_fails(trained_smoke):
    path = trained_smoke.last_checkpoint
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    assert "mmengine.logging.history_buffer.HistoryBuffer" in unsafe
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # torch's default: fails on mmengine's own files
    ckpt = load_checkpoint(path)
    assert ckpt["meta"]["iter"] > 0
    assert {"state_dict", "optimizer", "param_schedulers", "message_hub"} <= ckpt.keys()
    hub = ckpt["message_hub"]["log_scalars"]
    assert isinstance(hub["train/loss"], HistoryBuffer)
    assert np.isfinite(hub["train/loss"].current())
    # every load through mmengine goes through the same loader
    model = init_model(trained_smoke.config_path, path)
    assert _state_equal(
        {k: v for k, v in model.state_dict().items()},
        {k: v for k, v in ckpt["state_dict"].items()},
    )
    assert model.dataset_meta["classes"][0] == "background"


def test_runner_checkpoint_loads_in_a_fresh_process(trained_smoke):
    """Nothing of mmengine's logging has run there yet (HistoryBuffer state is lazy)."""
    code = ("import sys; from helpers.checkpoint import load_checkpoint; "
            "print(load_checkpoint(sys.argv[1])['meta']['iter'])")
    proc = subprocess.run([sys.executable, "-c", code, str(trained_smoke.last_checkpoint)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = load_checkpoint(trained_smoke.last_checkpoint)["meta"]["iter"]
    assert int(proc.stdout.split()[-1]) == expected


def test_released_style_checkpoint_loads(smoke_cfg, tmp_path):
    """Like the 2020 OpenMMLab releases: state_dict + meta (CLASSES, PALETTE), legacy format."""
    model = init_model(smoke_cfg)
    classes = tuple(f"class{i}" for i in range(21))
    released = {
        "meta": {
            "mmseg_version": "0.5.0+b2724da", "config": "model = dict(...)",
            "CLASSES": classes, "PALETTE": [[i, i, i] for i in range(21)],
            "env_info": "sys.platform: linux", "seed": None, "exp_name": "pspnet.py",
            "epoch": 1, "iter": 80000, "time": "Sat Jun  6 11:21:31 2020",
        },
        "state_dict": OrderedDict((k, v.clone()) for k, v in model.state_dict().items()),
    }
    path = tmp_path / "released.pth"
    torch.save(released, path, _use_new_zipfile_serialization=False)
    loaded = init_model(smoke_cfg, path)
    assert _state_equal(loaded.state_dict(), released["state_dict"])
    assert tuple(loaded.dataset_meta["classes"]) == classes


def test_crafted_checkpoint_is_refused_and_its_code_never_runs(smoke_cfg, tmp_path):
    target = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"x": _CreateFile(target)}}, evil)
    model = init_model(smoke_cfg)
    for load in (
        lambda: load_checkpoint(evil),
        lambda: mmengine_load_checkpoint(model, str(evil)),  # Runner.load_from / resume path
        lambda: init_model(smoke_cfg, evil),
    ):
        with pytest.raises(UnsafeCheckpointError, match="REFUSED") as info:
            load()
        assert str(evil) in str(info.value)
        assert not target.exists()
    # the payload is real: an unrestricted load would have created the file
    live = tmp_path / "live.txt"
    torch.save({"x": _CreateFile(live)}, tmp_path / "live.pth")
    torch.load(tmp_path / "live.pth", weights_only=False)
    assert live.exists()


@pytest.mark.parametrize(
    "obj, name", [(HistoryBuffer, "__init__"), (np.ndarray, "tofile"), (HistoryBuffer, "mro")]
)
def test_getattr_is_limited_to_history_buffer_statistics(obj, name, tmp_path):
    path = tmp_path / "getattr.pth"
    torch.save({"meta": {"f": _GetAttr(obj, name)}}, path)
    with pytest.raises(UnsafeCheckpointError, match="getattr"):
        load_checkpoint(path)


def test_history_buffer_statistics_methods_survive(tmp_path):
    buffer = HistoryBuffer()
    for value in (3.0, 1.0, 2.0):
        buffer.update(value)
    path = tmp_path / "hub.pth"
    torch.save({"message_hub": {"loss": buffer}, "np": np.float32(1.5)}, path)
    loaded = load_checkpoint(path)
    assert loaded["message_hub"]["loss"].min() == 1.0
    assert loaded["message_hub"]["loss"].mean() == 2.0
    assert loaded["np"] == np.float32(1.5)


def test_http_checkpoint_is_downloaded_and_loaded_safely(smoke_cfg, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    model = init_model(smoke_cfg)
    torch.save({"state_dict": model.state_dict()}, served / "good.pth")
    torch.save({"meta": {"x": _CreateFile(tmp_path / "pwned.txt")}}, served / "evil.pth")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        fresh = init_model(smoke_cfg)
        mmengine_load_checkpoint(fresh, f"{url}/good.pth")
        assert _state_equal(fresh.state_dict(), model.state_dict())
        assert (tmp_path / "hub" / "checkpoints" / "good.pth").is_file()
        with pytest.raises(UnsafeCheckpointError):
            mmengine_load_checkpoint(fresh, f"{url}/evil.pth")
        assert not (tmp_path / "pwned.txt").exists()
    finally:
        server.shutdown()


def test_head_with_other_class_count_is_refused(demo_root, tmp_path):
    cfg20 = build_config("smoke", demo_root, tmp_path, **{
        "model.decode_head.num_classes": 20, "model.auxiliary_head.num_classes": 20})
    path = tmp_path / "twenty.pth"
    torch.save({"state_dict": init_model(cfg20).state_dict()}, path)
    cfg21 = save_config(build_config("smoke", demo_root, tmp_path), tmp_path / "cfg21.py")
    with pytest.raises(CheckpointError, match=r"20 classes.*21 classes"):
        init_model(cfg21, path)


def test_checkpoint_of_another_architecture_is_refused(demo_root, tmp_path):
    wide = build_config("smoke", demo_root, tmp_path, **{"model.decode_head.channels": 64})
    path = tmp_path / "wide_head.pth"
    torch.save({"state_dict": init_model(wide).state_dict(), "meta": {}}, path)
    narrow = build_config("smoke", demo_root, tmp_path)
    assert narrow.model.decode_head.channels != 64
    with pytest.raises(CheckpointError, match=r"wide_head.pth does not fit.*decode_head"):
        init_model(narrow, path)
    state = init_model(narrow).state_dict()
    torch.save(state, path)  # a bare state_dict: mmseg's init_model would raise KeyError('meta')
    with pytest.raises(CheckpointError, match=r"wide_head.pth has no 'meta'.*Re-save"):
        init_model(narrow, path)
    del state["decode_head.conv_seg.bias"]
    torch.save({"state_dict": state, "meta": {}}, path)
    with pytest.raises(CheckpointError, match=r"0 tensors have other shapes and 1 are missing"):
        init_model(narrow, path)


def test_missing_and_broken_files_give_clear_errors(smoke_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth.*notebook 03"):
        load_checkpoint(tmp_path / "nothere.pth")
    with pytest.raises(FileNotFoundError, match="missing.py.*helpers.config"):
        init_model(tmp_path / "missing.py")
    broken = tmp_path / "broken.pth"
    torch.save({"state_dict": init_model(smoke_cfg).state_dict()}, broken)
    broken.write_bytes(broken.read_bytes()[:1000])  # an interrupted download
    with pytest.raises(CheckpointError, match="broken.pth"):
        load_checkpoint(broken)


def test_find_checkpoint(trained_smoke, tmp_path):
    best = find_checkpoint(trained_smoke.work_dir, "best")
    assert best.name.startswith("best_mIoU_iter_")
    last = find_checkpoint(trained_smoke.work_dir, "last")
    assert load_checkpoint(last)["meta"]["iter"] >= load_checkpoint(best)["meta"]["iter"]
    with pytest.raises(FileNotFoundError, match="notebook 03"):
        find_checkpoint(tmp_path / "no_run", "best")
    with pytest.raises(FileNotFoundError, match="no last checkpoint.*notebook 03"):
        find_checkpoint(tmp_path, "last")
    with pytest.raises(ValueError, match="'best' or 'last'"):
        find_checkpoint(trained_smoke.work_dir, "first")
