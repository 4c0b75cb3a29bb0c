"""Where the installed mmsegmentation keeps its configs and tools, and reading a config file.

mmseg's PyPI wheel ships its configs under ``mmseg/.mim/configs`` and its scripts under
``mmseg/.mim/tools``: the course starts every config from there, with no download.

A bottom layer of ``helpers`` (it imports no other helpers module): ``helpers.config`` re-exports
it, and ``helpers.checkpoint.init_model`` reads config files through it.
"""

from __future__ import annotations

from pathlib import Path

from mmengine.config import Config

__all__ = ["find_config", "load_config", "mmseg_config_dir", "mmseg_tools_dir"]


def mmseg_config_dir() -> Path:
    """``mmseg/.mim/configs`` of the installed mmsegmentation package."""
    import mmseg

    path = Path(mmseg.__file__).parent / ".mim" / "configs"
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: mmseg's shipped configs are missing. Install mmsegmentation from PyPI "
            "(`pip install mmsegmentation==1.2.2`, its wheel ships .mim/configs) or pass the "
            "path of a config file as `base`."
        )
    return path


def mmseg_tools_dir() -> Path:
    """``mmseg/.mim/tools`` of the installed package (``train.py``, ``test.py``, ...)."""
    return mmseg_config_dir().parent / "tools"


def find_config(name: str | Path) -> Path:
    """Path of a config: an existing file, or a file name shipped under ``mmseg_config_dir()``."""
    path = Path(name)
    if path.is_file():
        return path
    name = path.name if path.suffix == ".py" else f"{path.name}.py"
    matches = sorted(mmseg_config_dir().rglob(name))
    if not matches:
        raise FileNotFoundError(
            f"config {str(path)!r} not found: it is neither a file nor a config shipped under "
            f"{mmseg_config_dir()}. List the shipped ones with "
            "sorted(p.name for p in helpers.config.mmseg_config_dir().rglob('*.py'))."
        )
    return matches[0]


def load_config(path: str | Path) -> Config:
    """``Config.fromfile`` with a clear error when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"config file {path} not found. Write it with notebook 02 or "
            f"`python -m helpers.config --preset smoke --voc-root VOC_ROOT --out {path}`."
        )
    return Config.fromfile(str(path))
