"""The Colab path: the install cell, the installer's decisions, mmcv's wheel cache and C++ edit.

A stand-in `google.colab` (tests/colab_stub, on PYTHONPATH) makes a process look like Colab's.
The full path (Python 3.12, torch 2.15, a real mmcv build) is `make colab-check`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from helpers import colab, mmcv_wheel
from helpers.colab import install_cell, needs_restart, plan, setup
from helpers.mmcv_wheel import SetupError, install_name, needs_cxx20, patch_cxx_standard, read_pins

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "tests" / "colab_stub"
MARK = '"google.colab" in sys.modules'


def colab_env(tmp_path: Path, url: str) -> dict[str, str]:
    """Environment of a simulated Colab whose course repository is `url`."""
    return dict(os.environ, PYTHONPATH=str(STUB), COURSE_REPO_URL=url,
                COURSE_DIR=str(tmp_path / "content" / "course"))


def test_cell_outside_colab_does_nothing(tmp_path):
    env = dict(os.environ, COURSE_DIR=str(tmp_path / "course"))
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, "-c", install_cell("file:///nowhere")], env=env,
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert not (tmp_path / "course").exists()


def test_cell_fails_at_clone_naming_the_url(tmp_path):
    url = (tmp_path / "no-such-repo.git").as_uri()
    code = install_cell("https://example.invalid/default-is-overridden")
    r = subprocess.run([sys.executable, "-c", code], env=colab_env(tmp_path, url),
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()
    assert any(line.startswith("RuntimeError: Step 1/3 clone: `git clone " + url) for line in last)
    assert "Fix: check the URL or set COURSE_REPO_URL" in r.stderr
    assert "helpers" not in r.stderr.split("RuntimeError")[0]  # not a later import error


def test_cell_rejects_unusable_url():
    with pytest.raises(ValueError, match="not a usable repository URL"):
        install_cell('https://x/"; import os')


def test_notebook_00_fails_in_its_install_cell(tmp_path, monkeypatch):
    """A student on Colab with a wrong repository URL: notebook 00 stops in the install cell,
    with the URL in the error, not later on `import helpers`."""
    url = (tmp_path / "no-such-repo.git").as_uri()
    for key, value in colab_env(tmp_path, url).items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(ROOT / "notebooks" / "00_environment.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError) as err:
        client.execute()
    failed = next(c for c in code if any(o.get("output_type") == "error"
                                         for o in c.get("outputs", [])))
    assert MARK in failed.source, "notebook 00 failed after its install cell"
    assert url in str(err.value) and "Step 1/3 clone" in str(err.value)


def test_plan_installs_only_what_is_missing():
    pins = {"torch": "2.13.0", "numpy": "2.4.6", "mmcv": "2.1.0", "mmengine": "0.10.7",
            "pandas": "3.1.1", "pytest": "9.2.0", "ruff": "0.17.6", "setuptools": "81.0.0",
            "onnx": "1.23.2"}
    have = {"torch": "2.15.0+cu132", "numpy": "2.5.5", "pandas": "2.2.2", "setuptools": "75.2.0"}
    todo, kept = plan(pins, have)
    assert todo == ["mmengine==0.10.7", "onnx==1.23.2"]  # no mmcv, no test tools
    assert kept == ["torch 2.15.0+cu132", "numpy 2.5.5", "pandas 2.2.2", "setuptools 75.2.0"]
    # setuptools stays a runtime need: mmengine imports distutils, which Python 3.12 lacks
    assert plan({"setuptools": "81.0.0"}, {}) == (["setuptools==81.0.0"], [])
    # below the floor the stack needs, Colab's version is replaced by the pin
    assert plan({"numpy": "2.4.6"}, {"numpy": "1.21.0"})[0] == ["numpy==2.4.6"]


def test_needs_restart_only_for_replaced_and_imported():
    before = {"numpy": "2.5.5", "pillow": "11.0.0", "mmengine": "0.10.7"}
    after = {"numpy": "2.5.5", "pillow": "13.0.0", "mmengine": "0.10.7", "onnx": "1.23.2"}
    assert needs_restart(before, after, {"PIL", "os"}) == ["pillow 11.0.0 -> 13.0.0"]
    assert needs_restart(before, after, {"numpy"}) == []  # pillow changed but was not imported


def test_patch_cxx_standard_is_checked(tmp_path):
    setup_py = tmp_path / "setup.py"
    line = "                extra_compile_args['cxx'] = ['-std=c++17']\n"
    setup_py.write_text("x = 1\n" + line + "extra_compile_args['cxx'] = ['-Wall', '-std=c++17']\n")
    patch_cxx_standard(setup_py)
    text = setup_py.read_text()
    assert "extra_compile_args['cxx'] = ['-std=c++20']" in text
    assert "['-Wall', '-std=c++17']" in text  # only the one line changed
    for body in ("x = 1\n", line * 2):
        setup_py.write_text(body)
        with pytest.raises(SetupError, match=r"(?s)exactly one .* found [02].*torch==2.13.0"):
            patch_cxx_standard(setup_py)


def test_needs_cxx20_reads_the_headers(tmp_path):
    aten = tmp_path / "include" / "ATen"
    aten.mkdir(parents=True)
    (aten / "ATen.h").write_text("#pragma once\n#include <c10/core/Device.h>\n")
    assert not needs_cxx20(tmp_path)
    (aten / "ATen.h").write_text("#if __cplusplus < 202002L\n#error C++20 or later compatible "
                                 "compiler is required to use ATen.\n#endif\n")
    assert needs_cxx20(tmp_path)
    torch_dir = mmcv_wheel.torch_info()[2]  # the installed torch 2.13 still accepts C++17
    assert not needs_cxx20(torch_dir)


def fake_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mmcv/__init__.py", "")
        zf.writestr("mmcv-2.1.0.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp312-cp312-linux_x86_64\n")
    return path


def test_wheel_key_and_install_name(tmp_path):
    key = mmcv_wheel.wheel_key("2.1.0")
    version, build, _ = mmcv_wheel.torch_info()
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert key == f"mmcv2.1.0-{tag}-torch{version.split('+')[0]}-{build}-cpuops"
    assert install_name(fake_wheel(tmp_path / f"{key}.whl")) == \
        "mmcv-2.1.0-cp312-cp312-linux_x86_64.whl"
    (tmp_path / "bad.whl").write_text("not a zip")
    with pytest.raises(SetupError, match="is not a wheel"):
        install_name(tmp_path / "bad.whl")


def test_hosted_wheel_url(tmp_path, monkeypatch):
    key = mmcv_wheel.wheel_key("2.1.0")
    hosted = tmp_path / "hosted"
    hosted.mkdir()
    monkeypatch.setenv("MMCV_WHEEL_URL", hosted.as_uri())
    said = []
    # nothing hosted for this torch: build instead
    assert colab._find_wheel(key, None, tmp_path / "dl", said.append) is None
    assert "building instead" in said[-1]
    fake_wheel(hosted / f"{key}.whl")
    assert colab._find_wheel(key, None, tmp_path / "dl", said.append).read_bytes() == \
        (hosted / f"{key}.whl").read_bytes()
    monkeypatch.setenv("MMCV_WHEEL_URL", (hosted / "missing.whl").as_uri())
    with pytest.raises(SetupError, match="MMCV_WHEEL_URL=.*missing.whl"):  # a new runtime
        colab._find_wheel(key, None, tmp_path / "new-runtime", said.append)
    assert not (tmp_path / "new-runtime" / f"{key}.whl").exists()  # nothing half-written


@pytest.fixture
def colab_stub(monkeypatch):
    """The stand-in google.colab importable in this process, and forgotten afterwards: left in
    sys.modules it would make every later test's process look like Colab's."""
    monkeypatch.syspath_prepend(str(STUB))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name == "google.colab" or name.startswith("google.colab."):
            del sys.modules[name]


def test_drive_mount_cache_and_links(tmp_path, monkeypatch, colab_stub):
    course = tmp_path / "content" / "course"
    (course / "data").mkdir(parents=True)
    monkeypatch.delenv("COLAB_STUB_DRIVE", raising=False)
    said = []
    assert colab._mount_drive(course, said.append) is None  # refused: the set-up goes on
    assert said and said[0].startswith("Step 2/3 Drive") and "going on without it" in said[0]
    assert "USE_DRIVE = False" in said[0]
    monkeypatch.setenv("COLAB_STUB_DRIVE", str(tmp_path / "gdrive"))
    folder = colab._mount_drive(course)
    assert folder == tmp_path / "content" / "drive" / "MyDrive" / colab.DRIVE_FOLDER
    colab._link_to_drive(course, folder, print)
    for name in ("data", "work_dirs"):
        assert (course / name).resolve() == (folder / name).resolve()
    key = mmcv_wheel.wheel_key("2.1.0")
    fake_wheel(folder / "wheels" / f"{key}.whl")
    monkeypatch.delenv("MMCV_WHEEL_URL", raising=False)
    cached = folder / "wheels" / f"{key}.whl"
    assert colab._find_wheel(key, folder, tmp_path / "dl", print) == cached


def test_a_wheel_built_earlier_in_the_runtime_is_reused(tmp_path, monkeypatch):
    """A second notebook (or a rerun after a restart) reuses the wheel the first one built,
    before Drive or a download is asked."""
    key = mmcv_wheel.wheel_key("2.1.0")
    wheels = tmp_path / "course" / "build" / "wheels"
    wheels.mkdir(parents=True)
    fake_wheel(wheels / f"{key}.whl")
    monkeypatch.setenv("MMCV_WHEEL_URL", "https://example.invalid/wheels/")
    said = []
    assert colab._find_wheel(key, tmp_path / "no-drive", wheels, said.append) == \
        wheels / f"{key}.whl"
    assert "built earlier in this runtime" in said[0]


def test_drive_is_on_by_default_with_a_clear_opt_out():
    import inspect

    cell = install_cell("https://github.com/owner/repo")
    assert "USE_DRIVE = True  # False: " in cell and "setup(use_drive=USE_DRIVE)" in cell
    assert inspect.signature(setup).parameters["use_drive"].default is True


def test_setup_again_after_success_takes_no_install(tmp_path, capsys):
    """The stamp written after a success makes the next call return at once."""
    course = tmp_path / "course"
    course.mkdir()
    for name in ("requirements.txt", "requirements-build.txt"):
        (course / name).write_text((ROOT / name).read_text())
    pins = read_pins(course / "requirements.txt")
    key = {"python": sys.version.split()[0], "torch": mmcv_wheel.torch_info()[0], "pins": pins}
    (course / colab.STAMP).write_text(json.dumps(key))
    setup(course=course)
    assert "already installed" in capsys.readouterr().out
