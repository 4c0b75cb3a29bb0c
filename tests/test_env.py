"""helpers.env, helpers.notebook_tools and helpers.run_notebooks on the real installed stack."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import nbformat
import numpy as np
import pytest

from helpers import env, notebook_tools, run_notebooks


def test_every_component_is_ok_on_this_machine():
    checks = env.check_environment()
    assert [c.component for c in checks if not c.ok] == []
    mmcv = next(c for c in checks if c.component == "mmcv")
    assert mmcv.version == "2.1.0" and "ops ✓" in mmcv.details
    table = env.environment_table(checks)
    assert set(table[""]) == {"✓"} and "onnxruntime" in table.index
    assert "CPUExecutionProvider" in table.loc["onnxruntime", "details"]


def test_mmcv_too_new_for_mmseg_is_flagged(monkeypatch):
    import mmcv

    monkeypatch.setattr(mmcv, "__version__", "2.2.0")
    check = env._check_mmcv()
    assert not check.ok and "< 2.2.0" in check.details and "mmcv==2.1.0" in check.fix


def test_mmcv_without_compiled_ops_is_flagged(monkeypatch):
    monkeypatch.setitem(sys.modules, "mmcv.ops", None)  # import raises ImportError
    check = env._check_mmcv()
    assert not check.ok and "compiled ops missing" in check.details
    assert "make env" in check.fix and "python -m helpers.colab" in check.fix


def test_missing_package_gives_its_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    check = next(c for c in env.check_environment() if c.component == "onnxscript")
    assert not check.ok and check.version == "missing" and "pip install onnxscript" in check.fix


def test_old_version_is_flagged(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", types.SimpleNamespace(__version__="1.10.0"))
    check = env._check_simple("onnx", "onnx", (1, 15), "pip install onnx==1.23.2")
    assert not check.ok and "needs ≥ 1.15" in check.fix


def test_setup_notebook_moves_to_root_and_seeds(tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMOKE", "1")
    smoke = env.setup_notebook("test", seed=3)
    monkeypatch.setenv("SMOKE", "0")
    s = env.setup_notebook("test", seed=3)
    # never the committed images/ folder, smoke run or not
    assert s.fig_dir == smoke.fig_dir == env.repo_root() / "build" / "images"
    assert smoke.smoke and not s.smoke
    assert Path.cwd() == env.repo_root() == s.root
    assert (s.root / "helpers" / "env.py").is_file() and s.fig_dir.is_dir()
    first = (np.random.rand(), torch.rand(1).item())
    env.setup_notebook("test", seed=3)
    assert (np.random.rand(), torch.rand(1).item()) == first
    assert s.device == ("cuda" if torch.cuda.is_available() else "cpu") and not s.in_colab


def test_setup_save_writes_figure(tmp_path):
    import matplotlib.pyplot as plt

    s = env.Setup("t", tmp_path, tmp_path / "images", False, "cpu", 0)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = s.save(fig, "sub/line.png")
    assert path == tmp_path / "images" / "sub" / "line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert env.figure_origin(path) == ("t", False)
    smoke = env.Setup("01_x", tmp_path, tmp_path / "images", False, "cpu", 0, smoke=True)
    assert env.figure_origin(smoke.save(fig, "line.png")) == ("01_x", True)
    fig.savefig(tmp_path / "plain.png")  # not through Setup.save: no origin
    assert env.figure_origin(tmp_path / "plain.png") is None
    assert env.figure_origin(tmp_path / "missing.png") is None


def _notebook(path: Path, source: str, executed: bool) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    if executed:
        cell.execution_count = 1
        cell.outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    nbformat.write(nb, path)
    return path


def test_outputs_are_detected_and_stripped(tmp_path, capsys):
    clean = _notebook(tmp_path / "00_clean.ipynb", "1 + 1", executed=False)
    dirty = _notebook(tmp_path / "01_dirty.ipynb", "print('hi')", executed=True)
    assert notebook_tools.dirty_cells(clean) == [] and notebook_tools.dirty_cells(dirty) == [1]
    assert notebook_tools.main(["check", str(tmp_path)]) == 1
    assert "01_dirty.ipynb: cells [1]" in capsys.readouterr().err
    assert notebook_tools.main(["strip", str(tmp_path)]) == 0
    assert notebook_tools.main(["check", str(tmp_path)]) == 0


def test_the_course_notebooks_are_committed_clean():
    paths = notebook_tools.notebooks_in(env.repo_root() / "notebooks")
    assert paths[0].name.startswith("00_")
    assert {p.name: notebook_tools.dirty_cells(p) for p in paths} == {p.name: [] for p in paths}


INSTRUCTOR = sorted((env.repo_root() / "source" / "voc").glob("[0-9][0-9]_*.ipynb"))
RELEASE = sorted((env.repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", INSTRUCTOR, ids=lambda p: p.stem)
def test_every_instructor_notebook_follows_the_template(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0].source
    assert first.startswith(f"# {path.name[:2]} · ") and "colab-badge.svg" in first
    assert f"/notebooks/{path.name})" in first and "Learning goals" in first
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "colab" in code[0].metadata.get("tags", [])
    assert '"google.colab" in sys.modules' in code[0].source
    assert f'setup_notebook("{path.stem}")' in code[1].source
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "SMOKE" in params[0].source
    tasks = notebook_tools.graded_cells(path)
    if "(optional)" in first.splitlines()[0]:  # 06: an optional lesson says it has no graded task
        assert not tasks and "no graded task" in first
    else:
        assert len(tasks) >= (1 if path.name.startswith("00_") else 3), "too few graded tasks"
    assert all(points > 0 for points in tasks.values())
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown"]
    assert headings[-2:] == ["## Summary", "## Further reading"]


@pytest.mark.parametrize("path", RELEASE, ids=lambda p: p.stem)
def test_every_release_notebook_comes_from_an_instructor_notebook(path):
    assert (env.repo_root() / "source" / "voc" / path.name).is_file(), \
        f"notebooks/{path.name} has no instructor notebook in source/voc/ (see source/README.md)"
    text = path.read_text()
    assert [m for m in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS") if m in text] == []


def test_run_notebooks_executes_in_order_and_stops_on_error(tmp_path):
    src = tmp_path / "nbs"
    src.mkdir()
    _notebook(src / "00_a.ipynb", "open('order.txt', 'a').write('a')", executed=False)
    _notebook(src / "01_b.ipynb", "open('order.txt', 'a').write('b')", executed=False)
    times = run_notebooks.run_all(src, tmp_path / "out")
    assert list(times) == ["00_a.ipynb", "01_b.ipynb"]
    assert (src / "order.txt").read_text() == "ab"
    executed = nbformat.read(tmp_path / "out" / "01_b.ipynb", as_version=4)
    assert executed.cells[1].execution_count == 1
    _notebook(src / "02_c.ipynb", "raise RuntimeError('boom')", executed=False)
    with pytest.raises(SystemExit):
        run_notebooks.run_all(src, tmp_path / "out")
    assert "boom" in str(nbformat.read(tmp_path / "out" / "02_c.ipynb", as_version=4).cells[1])


def test_known_library_warnings_are_quiet_and_others_still_show():
    import warnings

    import mmseg.models  # noqa: F401  (fills the registry build_loss uses)
    from mmseg.models.builder import build_loss

    from helpers.env import quiet_known_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_warnings()
        build_loss(dict(type="CrossEntropyLoss"))  # both known warnings, from mmseg's modules
        # the same words from anywhere else (here: this test) still show
        warnings.warn("``build_loss`` would be deprecated soon", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["``build_loss`` would be deprecated soon"]


def test_the_onnx_exporters_known_noise_is_quiet_and_only_that():
    import logging
    import warnings

    from helpers.env import quiet_known_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_warnings()
        message = "`isinstance(treespec, LeafSpec)` is deprecated, use TreeSpec"
        warnings.warn_explicit(message, FutureWarning, "copyreg.py", 105, module="copyreg")
        warnings.warn(message, FutureWarning, stacklevel=1)  # from elsewhere: still shown
    assert len(caught) == 1
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    assert not registration.isEnabledFor(logging.WARNING)
    assert logging.getLogger("torch.onnx").isEnabledFor(logging.WARNING)
