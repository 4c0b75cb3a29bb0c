"""Notebook set-up and the environment check (introduced in notebook 00).

`setup_notebook` is the one call at the top of every notebook: it moves to the repository root
(so every relative path in the course means the same thing), seeds every random number generator,
sets plotting defaults and creates the folder for saved figures, ``build/images/``. Running a
notebook never writes into a tracked file: the committed figures in ``images/`` change only
through ``python -m helpers.plotting --readme-figures`` (:func:`helpers.plotting.publish_figures`).

`check_environment` is what notebook 00 shows: one row per component of the stack, a ✓ or ✗, and
for each ✗ the command that fixes it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import platform
import random
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from packaging.version import Version

__all__ = ["Setup", "repo_root", "setup_notebook", "check_environment", "Check", "figure_origin",
           "FIGURE_DIR"]

FIGURE_DIR = Path("build") / "images"
"""Where notebooks save their figures (`Setup.save`), relative to the repository root."""

_MARK_KEY = "Source"  # a standard PNG text keyword
_MARK_PREFIX = "helpers.env.Setup.save"

# mmcv 2.1.0 has no wheel for today's torch: it is built against the installed one. `make env`
# does it for .venv; helpers.colab does it anywhere else (Colab's own torch included), raising
# mmcv's C++ standard to C++20 when torch's headers need it (helpers.mmcv_wheel).
MMCV_BUILD = ("make clean-env && make env (rebuilds .venv with mmcv 2.1.0's ops); elsewhere: "
              "python -m helpers.colab (builds mmcv==2.1.0 against this torch, installs it)")


def repo_root() -> Path:
    """The course's root folder: the parent of the `helpers` package (editable install)."""
    return Path(__file__).resolve().parents[1]


@dataclass
class Setup:
    """What `setup_notebook` prepared; notebooks keep it as `S`."""

    name: str
    root: Path
    fig_dir: Path
    in_colab: bool
    device: str
    seed: int
    smoke: bool = False  #: SMOKE=1: the figures are the small CI versions

    def save(self, fig, filename: str) -> Path:
        """Save `fig` into `fig_dir` (``build/images/``); return its path.

        A PNG records which notebook drew it and whether under SMOKE=1 (:func:`figure_origin`),
        so that only figures of a full-size run are ever published into ``images/``.
        """
        path = self.fig_dir / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = None
        if path.suffix.lower() == ".png":
            metadata = {_MARK_KEY: f"{_MARK_PREFIX} {self.name} SMOKE={int(self.smoke)}"}
        fig.savefig(path, dpi=120, bbox_inches="tight", metadata=metadata)
        return path


def figure_origin(path: str | os.PathLike) -> tuple[str, bool] | None:
    """(notebook name, drawn under SMOKE=1) of a PNG that `Setup.save` wrote; None for any other
    file (another writer, another format, not an image)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            mark = getattr(img, "text", {}).get(_MARK_KEY, "")
    except (OSError, UnidentifiedImageError):
        return None
    prefix, _, rest = mark.partition(" ")
    name, _, smoke = rest.rpartition(" ")
    if prefix != _MARK_PREFIX or smoke not in ("SMOKE=0", "SMOKE=1"):
        return None
    return name, smoke == "SMOKE=1"


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (and through them mmengine's own seeding)."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # notebook 00 must still run and tell the student how to install torch
        return
    torch.manual_seed(seed)


def quiet_known_warnings() -> None:
    """Hide the library warnings the course triggers on purpose and knows to be harmless.

    Each filter matches one message from one library module, so a new or real warning still
    shows. Jupyter draws every warning as a pink stderr box that students read as an error.
    """
    # mmseg 1.2's decode heads still build their losses with its own deprecated `build_loss`
    # (mmseg/models/builder.py), so every model build warns about mmseg's code, not ours.
    warnings.filterwarnings("ignore", message=r"``build_loss`` would be deprecated soon",
                            category=UserWarning, module=r"mmseg\.models\.builder")
    # mmseg's CrossEntropyLoss advises `avg_non_ignore=True` whenever it is False; the course's
    # recipes keep the default, as mmseg's own PSPNet configs do.
    warnings.filterwarnings("ignore", message=r"Default ``avg_non_ignore`` is False",
                            category=UserWarning,
                            module=r"mmseg\.models\.losses\.cross_entropy_loss")
    # torch.onnx's exporter (notebook 05) logs, at every export, each torchvision operator it
    # cannot register because torchvision is not installed (the course does not use it), and
    # torch's own pytree warns about its deprecated LeafSpec check while copying the graph.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning, module=r"copyreg")


def setup_notebook(name: str, seed: int = 0) -> Setup:
    """Prepare a notebook: repo root as working folder, seeds, plotting defaults, figure folder.

    Figures saved with `Setup.save` go to ``build/images/`` (:data:`FIGURE_DIR`), SMOKE=1 or
    not, so running a notebook never rewrites the committed figures in ``images/`` (what the
    README shows); ``python -m helpers.plotting --readme-figures`` copies a full-size run's
    figures there deliberately.

    Call it once in the first code cell after the Colab install cell. Calling it again (the
    notebook run twice in one kernel) gives the same state.
    """
    root = repo_root()
    os.chdir(root)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    quiet_known_warnings()
    seed_everything(seed)

    import matplotlib

    in_colab = "google.colab" in sys.modules
    if "ipykernel" not in sys.modules and not in_colab:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="notebook", style="white")
    plt.rcParams.update({"figure.dpi": 90, "savefig.dpi": 120, "axes.titlesize": "medium",
                         "image.interpolation": "nearest"})

    # Never into the committed images/ folder (helpers.plotting.publish_figures does that);
    # smoke runs (CI, `make test`) draw small versions and mark them as such.
    smoke = os.environ.get("SMOKE", "0") == "1"
    fig_dir = root / FIGURE_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    device = "cpu"
    try:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        pass
    return Setup(name=name, root=root, fig_dir=fig_dir, in_colab=in_colab, device=device, seed=seed,
                 smoke=smoke)


# --------------------------------------------------------------------------------------------
# Environment check
# --------------------------------------------------------------------------------------------
@dataclass
class Check:
    """One row of the environment table."""

    component: str
    version: str
    ok: bool
    details: str = ""
    fix: str = ""

    def as_row(self) -> dict[str, str]:
        return {"": "✓" if self.ok else "✗", "component": self.component,
                "version": self.version, "details": self.details, "fix / note": self.fix}


def _version_tuple(version: str) -> tuple[int, ...]:
    """`'2.1.0rc4+cu118'` -> `(2, 1, 0)`: enough to compare the ranges this course cares about."""
    return Version(version).release


def _import(module: str):
    try:
        return importlib.import_module(module), ""
    except Exception as exc:  # any import failure is what the check must report
        return None, f"{type(exc).__name__}: {exc}"


def _check_python() -> Check:
    version = platform.python_version()
    ok = sys.version_info >= (3, 10)
    return Check("Python", version, ok, sys.executable,
                 "" if ok else "Use Python 3.10 or newer (the course is tested on 3.11).")


def _check_torch() -> Check:
    torch, err = _import("torch")
    if torch is None:
        return Check("torch", "missing", False, err, "make env   (or: pip install torch==2.13.0)")
    cuda = torch.cuda.is_available()
    details = (f"CUDA {torch.version.cuda}: {torch.cuda.get_device_name(0)}" if cuda
               else f"CPU only, {torch.get_num_threads()} threads")
    note = ("GPU found: notebook 03 trains the full recipe with mixed precision." if cuda else
            "No GPU: fine. Notebook 03 trains the small `smoke` preset on the CPU (minutes); "
            "the full recipe needs a GPU (Colab: Runtime → Change runtime type → GPU).")
    ok = _version_tuple(torch.__version__) >= (2, 0)
    return Check("torch", torch.__version__, ok, details,
                 note if ok else "torch ≥ 2.0 is needed: pip install torch==2.13.0")


def _check_mmcv() -> Check:
    mmcv, err = _import("mmcv")
    if mmcv is None:
        return Check("mmcv", "missing", False, err, MMCV_BUILD)
    version = mmcv.__version__
    if not (2, 0) <= _version_tuple(version) < (2, 2):
        return Check("mmcv", version, False, "mmsegmentation 1.2.2 asserts 2.0.0rc4 ≤ mmcv < 2.2.0",
                     MMCV_BUILD)
    ops, err = _import("mmcv.ops")
    if ops is None:
        return Check("mmcv", version, False,
                     f"compiled ops missing ({err}); mmcv-lite or a build that did not see torch",
                     MMCV_BUILD)
    return Check("mmcv", version, True, f"ops ✓, {_mmcv_build_info()}")


def _mmcv_build_info() -> str:
    """mmcv's compiler and CUDA build, asked in a child process.

    With some builds these two C++ calls crash the interpreter (seen: mmcv 2.1.0 built from the
    sdist against torch 2.11.0+cu130 with GCC 13 on a GPU machine, a segmentation fault), which
    must not take the notebook's kernel down with it. PSPNet itself calls no mmcv op.
    """
    code = ("from mmcv.ops import get_compiler_version as a, get_compiling_cuda_version as b; "
            "print(a(), b(), sep='|')")
    try:
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"build info unavailable ({type(exc).__name__})"
    if run.returncode == 0 and "|" in run.stdout:
        compiler, cuda = run.stdout.strip().rsplit("|", 1)
        return f"compiler {compiler}, CUDA ops built with: {cuda}"
    return (f"build info unavailable: mmcv.ops.get_compiler_version() exits with status "
            f"{run.returncode} in this build (PSPNet calls no mmcv op)")


def _check_simple(component: str, module: str, minimum: tuple[int, ...], fix: str,
                  details: Callable[[object], str] | None = None) -> Check:
    mod, err = _import(module)
    if mod is None:
        return Check(component, "missing", False, err, fix)
    version = getattr(mod, "__version__", None) or importlib.metadata.version(component)
    ok = _version_tuple(version) >= minimum
    extra = details(mod) if details else ""
    need = ".".join(map(str, minimum))
    return Check(component, version, ok, extra, "" if ok else f"needs ≥ {need}: {fix}")


def _check_mmseg() -> Check:
    check = _check_simple("mmsegmentation", "mmseg", (1, 2),
                          "pip install mmsegmentation==1.2.2 ftfy regex")
    if check.ok:
        mmseg_utils, err = _import("mmseg.utils")  # pulls in mmcv.ops, ftfy and regex
        if mmseg_utils is None:
            return Check("mmsegmentation", check.version, False, err,
                         "pip install ftfy regex   (mmseg imports them but does not require them)")
        configs = Path(importlib.import_module("mmseg").__file__).parent / ".mim" / "configs"
        check.details = f"shipped configs: {configs.is_dir()}"
    return check


def check_environment() -> list[Check]:
    """Check every component the course uses; each failed row carries the command that fixes it."""
    return [
        _check_python(),
        _check_torch(),
        _check_mmcv(),
        _check_simple("mmengine", "mmengine", (0, 10), "pip install mmengine==0.10.7"),
        _check_mmseg(),
        _check_simple("numpy", "numpy", (1, 24), "pip install numpy==2.4.6"),
        _check_simple("opencv-python", "cv2", (4, 5), "pip install opencv-python==5.0.0.93"),
        _check_simple("onnx", "onnx", (1, 15), "pip install onnx==1.23.2"),
        _check_simple("onnxscript", "onnxscript", (0, 1), "pip install onnxscript==0.7.2"),
        _check_simple("onnxruntime", "onnxruntime", (1, 17), "pip install onnxruntime==1.32.0",
                      details=lambda ort: "providers: " + ", ".join(ort.get_available_providers())),
    ]


def environment_table(checks: list[Check] | None = None):
    """`check_environment()` as a pandas DataFrame (what notebook 00 displays)."""
    import pandas as pd

    checks = check_environment() if checks is None else checks
    return pd.DataFrame([c.as_row() for c in checks]).set_index("component")


if __name__ == "__main__":  # `python -m helpers.env`: the same table in a terminal
    results = check_environment()
    for c in results:
        print(f"{'✓' if c.ok else '✗'} {c.component:15} {c.version:14} {c.details}")
        if c.fix and not c.ok:
            print(f"    fix: {c.fix}")
    sys.exit(0 if all(c.ok for c in results) else 1)
