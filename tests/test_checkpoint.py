"""helpers.checkpoint: every address mmengine accepts is loaded with weights_only or refused;
broken and crafted files get a true one-line CheckpointError; models load strictly."""

from __future__ import annotations

import copy
import functools
import hashlib
import http.server
import json
import pickle
import re
import shutil
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.registry import init_default_scope
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner import load_checkpoint as mmengine_load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader
from mmseg.registry import MODELS

from helpers.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
    cli_guard,
    download_checkpoint,
    find_checkpoint,
    init_model,
    load_checkpoint,
    register_safe_loaders,
    schemes,
)
from helpers.config import build_config, save_config
from helpers.train import train


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


class _Array:
    """Pickles as NumPy's own array reconstruction, with a shape of our choosing."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, self.shape, b"b"))


@pytest.fixture(scope="module")
def smoke_cfg(demo_root, tmp_path_factory):
    return build_config("smoke", demo_root, tmp_path_factory.mktemp("ckpt_wd"))


@pytest.fixture(scope="module")
def runner_run(demo_root, tmp_path_factory):
    """One iteration of the smoke preset through mmengine's Runner: its real checkpoints."""
    work_dir = tmp_path_factory.mktemp("ckpt_run")
    cfg = build_config("smoke", demo_root, work_dir, **{
        "train_cfg.max_iters": 1, "default_hooks.checkpoint.interval": 1,
        "default_hooks.logger.interval": 1, "train_dataloader.batch_size": 2})
    config_path = save_config(cfg, work_dir / "config.py")
    train(cfg)
    return config_path, work_dir


@pytest.fixture
def evil(tmp_path):
    """A crafted checkpoint whose unpickling creates `marker`; and that marker."""
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"x": _CreateFile(marker)}}, path)
    return path, marker


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _serve(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --------------------------------------------------------------------------------------------
# Every scheme of mmengine's CheckpointLoader
# --------------------------------------------------------------------------------------------
ZOO_NAMES = {"open-mmlab": "resnet50_v1c", "openmmlab": "resnet50_v1c", "mmcls": "vgg11",
             "torchvision": "resnet50", "modelzoo": "resnet50"}
ZOO_URLS = {  # the entries of mmengine/hub/*.json for those names
    "open-mmlab": "https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth",
    "mmcls": "https://download.openmmlab.com/mmclassification/v0/vgg/"
             "vgg11_batch256_imagenet_20210208-4271cd6c.pth",
    "torchvision": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}
ZOO_URLS.update(openmmlab=ZOO_URLS["open-mmlab"], modelzoo=ZOO_URLS["torchvision"])


def _address(prefix: str, local: Path) -> str:
    """An address that mmengine routes to `prefix` (a plain prefix or a regular expression)."""
    if prefix == "":
        return str(local)
    plain = re.sub(r"\(.*?\)\?", "", prefix)  # r"(\S+\:)?s3://" -> "s3://"
    scheme = plain.removesuffix("://")
    return plain + ZOO_NAMES.get(scheme, "127.0.0.1/models/evil.pth")


@pytest.fixture
def fake_downloads(tmp_path, monkeypatch):
    """Offline downloads: every URL fetches the file `served[0]`; the URLs asked are recorded."""
    served, asked = [None], []

    def download(url, dst, hash_prefix=None, progress=True):
        asked.append(url)
        shutil.copyfile(served[0], dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return served, asked


def test_every_registered_scheme_refuses_a_crafted_pickle(evil, fake_downloads):
    path, marker = evil
    served, asked = fake_downloads
    served[0] = path
    register_safe_loaders()  # idempotent: the import already did it
    unsafe, refused = set(), set()
    for prefix, loader in CheckpointLoader._schemes.items():
        address = _address(prefix, path)
        assert CheckpointLoader._get_checkpoint_loader(address) is loader, address
        asked.clear()
        shutil.rmtree(Path(torch.hub.get_dir()), ignore_errors=True)  # download each one anew
        with pytest.raises(CheckpointError) as info:
            CheckpointLoader.load_checkpoint(address)
        message = str(info.value)
        assert not marker.exists(), f"{address}: the payload ran"
        assert "\n" not in message
        if isinstance(info.value, UnsafeCheckpointError):
            assert "REFUSED" in message and "io.open" in message
            unsafe.add(prefix)
            scheme = prefix.removesuffix("://")
            if scheme in ZOO_URLS:  # resolved through mmengine's model-zoo table
                assert asked == [ZOO_URLS[scheme]]
        else:
            assert address in message and "pass its local path" in message and not asked
            refused.add(prefix)
    assert {"", "http://", "https://", *(f"{s}://" for s in ZOO_NAMES)} <= unsafe
    assert {"pavi://", r"(\S+\:)?s3://"} <= refused


def test_unprotected_zoo_loader_runs_the_payload(evil, tmp_path, monkeypatch):
    """The threat is real: mmengine's own open-mmlab:// loader unpickles without weights_only."""
    path, marker = evil
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    shutil.copyfile(path, cache / "resnet50_v1c-2cccc1ad.pth")  # as if downloaded
    mm_checkpoint.load_from_openmmlab("open-mmlab://resnet50_v1c")
    assert marker.exists()


def test_pretrained_backbone_goes_through_the_safe_loader(smoke_cfg, evil, fake_downloads):
    """`model.pretrained = 'open-mmlab://...'` (the official preset): init_weights loads it."""
    path, marker = evil
    fake_downloads[0][0] = path
    cfg = copy.deepcopy(smoke_cfg.model)
    cfg.pretrained = "open-mmlab://resnet50_v1c"
    init_default_scope("mmseg")  # as mmseg's init_model and the Runner do
    model = MODELS.build(cfg)
    with pytest.raises(UnsafeCheckpointError):
        model.init_weights()
    assert not marker.exists()


def test_model_zoo_names_load_safely(smoke_cfg, tmp_path, fake_downloads, monkeypatch):
    served, asked = fake_downloads
    model = init_model(smoke_cfg)
    good = tmp_path / "good.pth"
    state = {f"backbone.{k}": v for k, v in model.backbone.state_dict().items()}
    torch.save({"state_dict": state}, good)
    served[0] = good
    loaded = CheckpointLoader.load_checkpoint("open-mmlab://resnet50_v1c")
    assert _state_equal(loaded["state_dict"], state)
    mmcls = CheckpointLoader.load_checkpoint("mmcls://vgg11")  # mmengine strips "backbone."
    assert _state_equal(mmcls["state_dict"], model.backbone.state_dict())
    assert asked == [ZOO_URLS["open-mmlab"], ZOO_URLS["mmcls"]]
    with pytest.raises(CheckpointError, match=r"open-mmlab://nonesuch.*no model named"):
        CheckpointLoader.load_checkpoint("open-mmlab://nonesuch")
    # an entry of $MMENGINE_HOME/open_mmlab.json that names a local file
    home = tmp_path / "mmengine_home"
    home.mkdir()
    (home / "open_mmlab.json").write_text(json.dumps({"mine": "mine.pth", "evil": "evil.pth"}))
    shutil.copyfile(good, home / "mine.pth")
    torch.save({"x": _CreateFile(tmp_path / "home_pwned")}, home / "evil.pth")
    monkeypatch.setenv("MMENGINE_HOME", str(home))
    assert _state_equal(CheckpointLoader.load_checkpoint("openmmlab://mine")["state_dict"], state)
    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint("openmmlab://evil")
    assert not (tmp_path / "home_pwned").exists()


def test_a_scheme_registered_later_is_refused_after_registering_again(evil, monkeypatch):
    path, marker = evil
    monkeypatch.setattr(CheckpointLoader, "_schemes", CheckpointLoader._schemes.copy())

    def unsafe_loader(filename, map_location=None):
        return torch.load(path, weights_only=False)

    CheckpointLoader.register_scheme("hf://", unsafe_loader)
    before = register_safe_loaders()
    assert register_safe_loaders() == before  # idempotent
    with pytest.raises(CheckpointError, match=r"hf://org/model: refused.*local path"):
        CheckpointLoader.load_checkpoint("hf://org/model")
    assert not marker.exists()


def test_http_downloads_are_cached_by_url_checked_and_loaded_safely(evil, tmp_path, monkeypatch):
    path, marker = evil
    served = tmp_path / "served"
    for sub in ("a", "b"):
        (served / sub).mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.ones(3)}}, served / "a" / "model.pth")
    torch.save({"state_dict": {"w": torch.zeros(3)}}, served / "b" / "model.pth")
    shutil.copyfile(path, served / "evil.pth")
    (served / "page.pth").write_text("<!DOCTYPE html><html><body>Access denied</body></html>")
    digest = hashlib.sha256((served / "a" / "model.pth").read_bytes()).hexdigest()
    shutil.copyfile(served / "a" / "model.pth", served / f"ok-{digest[:8]}.pth")
    shutil.copyfile(served / "a" / "model.pth", served / "bad-0123abcd.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    server, url = _serve(served)
    try:
        a = CheckpointLoader.load_checkpoint(f"{url}/a/model.pth")
        b = CheckpointLoader.load_checkpoint(f"{url}/b/model.pth")  # same name, other file
        assert a["state_dict"]["w"].sum() == 3 and b["state_dict"]["w"].sum() == 0
        assert CheckpointLoader.load_checkpoint(f"{url}/ok-{digest[:8]}.pth").keys() == a.keys()
        with pytest.raises(CheckpointError, match=r"could not download .*bad-0123abcd.pth.*hash"):
            download_checkpoint(f"{url}/bad-0123abcd.pth")
        with pytest.raises(CheckpointError, match=r"could not download .*missing.pth.*404"):
            CheckpointLoader.load_checkpoint(f"{url}/missing.pth")
        with pytest.raises(CheckpointError, match=r"page.pth is an HTML/XML page"):
            CheckpointLoader.load_checkpoint(f"{url}/page.pth")
        with pytest.raises(UnsafeCheckpointError):
            mmengine_load_checkpoint(torch.nn.Linear(1, 1), f"{url}/evil.pth")
        assert not marker.exists()
        # rank 1 of 2 on a node without a shared disk: rank 0's download is not there
        monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "node2"))
        monkeypatch.setattr(schemes, "get_dist_info", lambda: (1, 2))
        monkeypatch.setattr(torch.distributed, "barrier", lambda: None)
        assert CheckpointLoader.load_checkpoint(f"{url}/a/model.pth")["state_dict"]["w"].sum() == 3
    finally:
        server.shutdown()
    # nothing half-written is left to be mistaken for a download next time
    assert not list((tmp_path / "hub").rglob("bad-0123abcd.pth*"))
    assert not list((tmp_path / "hub").rglob("missing.pth*"))


# --------------------------------------------------------------------------------------------
# Files that are not checkpoints, or crafted ones
# --------------------------------------------------------------------------------------------
BAD_FILES = {  # name: (how to write it, exception, what the message must say)
    "html": (lambda p: p.write_text("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>"),
             CheckpointError, "is an HTML/XML page"),
    "empty": (lambda p: p.write_bytes(b""), CheckpointError, "is empty"),
    "random": (lambda p: p.write_bytes(bytes(range(256))), CheckpointError,
               r"not a loadable checkpoint \(unsupported pickle instruction"),
    "truncated_zip": (lambda p: (torch.save({"w": torch.zeros(10_000)}, p),
                                 p.write_bytes(p.read_bytes()[:2000])),
                      CheckpointError, "not a loadable checkpoint.*central directory.*truncated"),
    "truncated_legacy": (lambda p: (torch.save({"w": torch.zeros(10_000)}, p,
                                               _use_new_zipfile_serialization=False),
                                    p.write_bytes(p.read_bytes()[:2000])),
                         CheckpointError, "not a loadable checkpoint.*EOF"),
    "huge_array": (lambda p: torch.save({"meta": _Array((2**50,))}, p), CheckpointError,
                   r"not a loadable checkpoint \(MemoryError: .*1.00 PiB"),
    "overflowing_array": (lambda p: torch.save({"meta": _Array((2**62, 2**62))}, p),
                          CheckpointError, r"\(ValueError: array is too big"),
    "a_list": (lambda p: torch.save([torch.zeros(2)], p), CheckpointError,
               "holds a list, not a checkpoint dict"),
    "a_tensor": (lambda p: torch.save(torch.zeros(2), p), CheckpointError,
                 "holds a Tensor, not a checkpoint dict"),
    "crafted": (lambda p: torch.save({"m": _CreateFile(p.with_suffix(".ran"))}, p),
                UnsafeCheckpointError, r"REFUSED.*\(io.open\).*Nothing from it was executed"),
    "crafted_protocol4": (lambda p: torch.save({"m": _CreateFile(p.with_suffix(".ran"))}, p,
                                               pickle_protocol=4),
                          UnsafeCheckpointError, r"REFUSED.*\(io.open\)"),
    "crafted_plain_pickle": (lambda p: p.write_bytes(pickle.dumps(
        {"m": _CreateFile(p.with_suffix(".ran"))}, protocol=5)), UnsafeCheckpointError,
        r"REFUSED.*\(io.open\)"),
    "getattr_init": (lambda p: torch.save({"f": _GetAttr(HistoryBuffer, "__init__")}, p),
                     UnsafeCheckpointError, "refused getattr"),
    "getattr_tofile": (lambda p: torch.save({"f": _GetAttr(np.ndarray, "tofile")}, p),
                       UnsafeCheckpointError, "refused getattr"),
    "object_dtype_state": (lambda p: torch.save({"a": np.array([1, "x"], dtype=object)}, p),
                           UnsafeCheckpointError, "ObjectDType"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file_gets_a_true_one_line_error(name, tmp_path):
    write, error, says = BAD_FILES[name]
    path = tmp_path / f"{name}.pth"
    write(path)
    with pytest.raises(error) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert re.search(says, message), message
    assert message.startswith(str(path)) and "\n" not in message
    assert isinstance(info.value, UnsafeCheckpointError) == (error is UnsafeCheckpointError)
    assert not path.with_suffix(".ran").exists()


def test_crafted_payload_is_real(tmp_path):
    """What the crafted files above would do under an unrestricted load."""
    torch.save({"x": _CreateFile(tmp_path / "live.txt")}, tmp_path / "live.pth")
    torch.load(tmp_path / "live.pth", weights_only=False)
    assert (tmp_path / "live.txt").exists()


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="nothere.pth not found.*notebook 03") as info:
        load_checkpoint(tmp_path / "nothere.pth")
    assert isinstance(info.value, FileNotFoundError)


def test_cli_guard_turns_checkpoint_errors_into_exit_status_2(tmp_path, capsys):
    page = tmp_path / "page.pth"
    page.write_text("<html>Not Found</html>")

    @cli_guard
    def main(path: str) -> int:
        load_checkpoint(path)
        return 0

    assert main(str(page)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {page} is an HTML/XML page") and err.count("\n") == 1
    assert "Traceback" not in err
    torch.save({"w": torch.ones(1)}, tmp_path / "ok.pth")
    assert main(str(tmp_path / "ok.pth")) == 0
    with pytest.raises(TypeError):  # other errors are bugs: they keep their traceback
        main(None)


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


# --------------------------------------------------------------------------------------------
# Real checkpoints, and the strict model loader
# --------------------------------------------------------------------------------------------
def test_runner_checkpoint_loads_where_plain_weights_only_fails(runner_run, monkeypatch):
    config_path, work_dir = runner_run
    path = find_checkpoint(work_dir, "last")
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    assert "mmengine.logging.history_buffer.HistoryBuffer" in unsafe
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # torch's default: fails on mmengine's own files
    ckpt = load_checkpoint(path)
    assert ckpt["meta"]["iter"] == 1
    assert {"state_dict", "optimizer", "param_schedulers", "message_hub"} <= ckpt.keys()
    assert np.isfinite(ckpt["message_hub"]["log_scalars"]["train/loss"].current())
    # init_model reads the file once and builds the model once
    reads, builds = [], []
    real_load, real_build = torch.load, MODELS.build
    monkeypatch.setattr(torch, "load", lambda *a, **k: reads.append(a) or real_load(*a, **k))
    monkeypatch.setattr(MODELS, "build",
                        lambda cfg, **k: builds.append(cfg["type"]) or real_build(cfg, **k))
    model = init_model(config_path, path)
    assert len(reads) == 1 and builds.count("EncoderDecoder") == 1
    assert _state_equal(model.state_dict(), ckpt["state_dict"])
    assert model.dataset_meta["classes"][0] == "background"
    assert not model.training


def test_runner_checkpoint_loads_in_a_fresh_process(runner_run):
    """Nothing of mmengine's logging has run there yet (HistoryBuffer state is lazy)."""
    path = find_checkpoint(runner_run[1], "last")
    code = ("import sys; from helpers.checkpoint import load_checkpoint; "
            "print(load_checkpoint(sys.argv[1])['meta']['iter'])")
    proc = subprocess.run([sys.executable, "-c", code, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "1"


def test_find_checkpoint(runner_run, tmp_path):
    _, work_dir = runner_run
    best = find_checkpoint(work_dir, "best")
    assert best.name == "best_mIoU_iter_1.pth"
    assert find_checkpoint(work_dir, "last") == work_dir / "iter_1.pth"
    with pytest.raises(FileNotFoundError, match="notebook 03"):
        find_checkpoint(tmp_path / "no_run", "best")
    with pytest.raises(FileNotFoundError, match="no last checkpoint.*notebook 03"):
        find_checkpoint(tmp_path, "last")
    with pytest.raises(ValueError, match="'best' or 'last'"):
        find_checkpoint(work_dir, "first")


def test_released_and_bare_checkpoints_load(smoke_cfg, tmp_path):
    """2020 OpenMMLab releases: legacy format, CLASSES/PALETTE meta, no BN counters; a bare
    state_dict saved from DDP ("module." prefix, no meta) gets its classes from the config."""
    state = init_model(smoke_cfg).state_dict()
    classes = tuple(f"class{i}" for i in range(21))
    released = {
        "meta": {"mmseg_version": "0.5.0+b2724da", "CLASSES": classes,
                 "PALETTE": [[i, i, i] for i in range(21)], "iter": 80000},
        "state_dict": OrderedDict((k, v.clone()) for k, v in state.items()
                                  if not k.endswith("num_batches_tracked")),
    }
    path = tmp_path / "released.pth"
    torch.save(released, path, _use_new_zipfile_serialization=False)
    loaded = init_model(smoke_cfg, path)
    assert _state_equal({k: v for k, v in loaded.state_dict().items()
                         if not k.endswith("num_batches_tracked")}, released["state_dict"])
    assert tuple(loaded.dataset_meta["classes"]) == classes
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    loaded = init_model(smoke_cfg, path)
    assert _state_equal(loaded.state_dict(), state)
    assert loaded.dataset_meta["classes"][1] == "aeroplane"  # PascalVOCDataset's, via the config


def test_head_with_other_class_count_is_refused(demo_root, tmp_path):
    cfg20 = build_config("smoke", demo_root, tmp_path, **{
        "model.decode_head.num_classes": 20, "model.auxiliary_head.num_classes": 20})
    path = tmp_path / "twenty.pth"
    torch.save({"state_dict": init_model(cfg20).state_dict()}, path)
    cfg21 = save_config(build_config("smoke", demo_root, tmp_path), tmp_path / "cfg21.py")
    with pytest.raises(CheckpointError, match=r"twenty.pth predicts 20 classes.*with 21 classes"):
        init_model(cfg21, path)


def test_checkpoint_of_another_architecture_is_refused(demo_root, tmp_path):
    narrow = build_config("smoke", demo_root, tmp_path)
    wide = build_config("smoke", demo_root, tmp_path, **{"model.decode_head.channels": 64})
    assert narrow.model.decode_head.channels != 64
    path = tmp_path / "other.pth"
    torch.save({"state_dict": init_model(wide).state_dict(), "meta": {}}, path)
    with pytest.raises(CheckpointError, match=r"other.pth does not fit.*e.g. decode_head"):
        init_model(narrow, path)
    state = init_model(narrow).state_dict()
    for change, says in (
        (lambda s: s.pop("decode_head.conv_seg.bias"), r"0 tensors have other shapes, 1 are "
         r"missing and 0 are unexpected \(e.g. missing decode_head.conv_seg.bias"),
        (lambda s: s.update({"neck.extra": torch.zeros(1)}), r"0 are missing and 1 are "
         r"unexpected \(e.g. unexpected neck.extra"),
        (lambda s: s.update({"backbone.conv1.weight": [1, 2]}), "holds no state_dict of tensors"),
    ):
        changed = dict(state)
        change(changed)
        torch.save({"state_dict": changed}, path)
        with pytest.raises(CheckpointError, match=says):
            init_model(narrow, path)
