"""helpers.downloads offline, against a local HTTP server: the pretrained checkpoint goes through
the safe checkpoint download (cache keyed by URL, SHA-256 prefix, HTTP errors are errors, each
machine downloads for itself); VOC is extracted once, and never over the demo dataset."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import tarfile
import threading
from pathlib import Path

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from helpers import downloads
from helpers.checkpoint import CheckpointError
from helpers.config import build as config_build
from helpers.config import build_config
from helpers.demo_data import DEMO_MARKER
from helpers.voc import DatasetError


class _Server:
    """A local HTTP server for `folder`, counting the requests for each path."""

    def __init__(self, folder: Path) -> None:
        self.hits: dict[str, int] = {}
        hits = self.hits

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the name http.server calls
                hits[self.path] = hits.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args):
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path: Path):
    folder = tmp_path / "served"
    folder.mkdir()
    server = _Server(folder)
    yield folder, server
    server.close()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """torch's hub cache of this machine, in a temporary folder."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


def _pretend(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    for module in (downloads, config_build):
        monkeypatch.setattr(module, "PRETRAINED_URL", url)


def test_pretrained_checkpoint_is_fetched_safely_and_used_by_url(served, hub, demo_root,
                                                                tmp_path, monkeypatch):
    folder, server = served
    torch.save({"state_dict": {"w": torch.arange(3.0)}}, folder / "model.pth")
    digest = hashlib.sha256((folder / "model.pth").read_bytes()).hexdigest()[:8]
    (folder / "model.pth").rename(folder / f"pspnet-{digest}.pth")
    url = f"{server.url}/pspnet-{digest}.pth"
    _pretend(monkeypatch, url)
    with pytest.warns(UserWarning, match="FROM SCRATCH"):  # not fetched yet
        assert build_config("seed", demo_root, tmp_path / "wd").load_from is None

    path = downloads.fetch_pretrained()
    assert path == downloads.pretrained_path() and path.is_relative_to(hub)
    assert downloads.fetch_pretrained() == path  # once
    assert server.hits[f"/pspnet-{digest}.pth"] == 2  # the probe and the download, no more

    cfg = build_config("seed", demo_root, tmp_path / "wd")
    assert cfg.load_from == url  # by URL, so that every machine resolves it for itself
    server.close()  # this machine reads its cache: no network needed
    assert CheckpointLoader.load_checkpoint(cfg.load_from)["state_dict"]["w"].tolist() == [0, 1, 2]


def test_pretrained_checkpoint_on_a_second_machine(served, hub, tmp_path, monkeypatch):
    """Another machine without a shared disk: loading the config's URL downloads for itself."""
    folder, server = served
    torch.save({"state_dict": {"w": torch.ones(2)}}, folder / "pspnet.pth")
    url = f"{server.url}/pspnet.pth"
    _pretend(monkeypatch, url)
    assert downloads.fetch_pretrained() is not None
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "other_machine"))
    assert not downloads.pretrained_path().exists()
    assert CheckpointLoader.load_checkpoint(url)["state_dict"]["w"].sum() == 2
    assert downloads.pretrained_path().is_file() and server.hits["/pspnet.pth"] == 3


def test_pretrained_checkpoint_errors_are_errors(served, hub, monkeypatch, capsys):
    folder, server = served
    torch.save({"state_dict": {}}, folder / "pspnet-0123abcd.pth")  # not its real hash
    _pretend(monkeypatch, f"{server.url}/moved.pth")
    with pytest.raises(CheckpointError, match=r"moved\.pth: the server answered HTTP 404"):
        downloads.fetch_pretrained()
    _pretend(monkeypatch, f"{server.url}/pspnet-0123abcd.pth")
    with pytest.raises(CheckpointError, match=r"could not download .*pspnet-0123abcd\.pth.*hash"):
        downloads.fetch_pretrained()
    assert not [p for p in hub.rglob("*") if p.is_file()]  # nothing half-written kept
    # offline (an unroutable address answers at once): a notice and None, not an error
    _pretend(monkeypatch, "http://127.0.0.1:9/pspnet-2376f12b.pth")
    assert downloads.fetch_pretrained(timeout=2) is None
    assert "OFFLINE" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# VOC2012
# --------------------------------------------------------------------------------------------
def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _voc_archive(demo_root: Path, tar_path: Path) -> str:
    """A tar laid out like VOCtrainval_11-May-2012.tar (the demo files, without the demo
    marker); returns its md5."""
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(demo_root.rglob("*")):
            if path.is_file() and path.name != DEMO_MARKER:
                tar.add(path, arcname=f"VOCdevkit/VOC2012/{path.relative_to(demo_root)}")
    return hashlib.md5(tar_path.read_bytes()).hexdigest()


def test_download_voc_extracts_once(served, demo_root, tmp_path, monkeypatch):
    folder, server = served
    name = Path(downloads.VOC_URL).name
    md5 = _voc_archive(demo_root, folder / name)
    monkeypatch.setattr(downloads, "VOC_URL", f"{server.url}/{name}")
    monkeypatch.setattr(downloads, "VOC_MD5", md5)
    root = downloads.download_voc(tmp_path / "data")
    assert root == tmp_path / "data" / "VOCdevkit" / "VOC2012" and downloads.voc_present(root)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["VOCdevkit", name]
    sentinel = next((root / "JPEGImages").iterdir())
    sentinel.write_bytes(b"changed after extraction")
    assert downloads.download_voc(tmp_path / "data") == root
    (tmp_path / "data" / name).unlink()  # the archive may even be gone: VOC is there
    assert downloads.download_voc(tmp_path / "data") == root
    assert sentinel.read_bytes() == b"changed after extraction"  # nothing extracted again
    assert server.hits == {f"/{name}": 1}
    # a half-extracted tree (interrupted) is not "present": the archive is fetched and extracted
    next((root / "SegmentationClass").iterdir()).unlink()
    assert not downloads.voc_present(root)
    assert downloads.voc_present(downloads.download_voc(tmp_path / "data"))


def test_download_voc_never_extracts_over_the_demo_data(demo_root, tmp_path, monkeypatch):
    root = Path(shutil.copytree(demo_root, tmp_path / "data" / "VOCdevkit" / "VOC2012"))
    before = _tree(root)
    monkeypatch.setattr(downloads, "VOC_URL", "http://127.0.0.1:9/never.tar")
    with pytest.raises(DatasetError, match=r"VOC2012 holds the synthetic demo dataset"):
        downloads.download_voc(tmp_path / "data")
    assert _tree(root) == before and sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "VOCdevkit"]
    assert not downloads.voc_present(root)  # the demo set is never taken for VOC


def test_download_voc_bad_archive_or_address(served, tmp_path, monkeypatch):
    folder, server = served
    name = Path(downloads.VOC_URL).name
    with tarfile.open(folder / name, "w") as tar:
        tar.add(__file__, arcname="VOCdevkit/VOC2012/readme.txt")
    monkeypatch.setattr(downloads, "VOC_URL", f"{server.url}/{name}")
    with pytest.raises(DatasetError, match=rf"{name}: md5 .* the download is corrupt"):
        downloads.download_voc(tmp_path)
    assert not (tmp_path / "VOCdevkit").exists()
    monkeypatch.setattr(downloads, "VOC_URL", f"{server.url}/missing.tar")
    with pytest.raises(DatasetError, match=r"could not download .*missing\.tar.*404"):
        downloads.download_voc(tmp_path / "elsewhere")
    assert list((tmp_path / "elsewhere").iterdir()) == []  # no partial archive left behind
