"""Training configs: the course's recipes, built from MMSegmentation's shipped configs (nb 02).

- :mod:`~helpers.config.presets`: the three recipes (``seed``, ``official``, ``smoke``) as data.
- :mod:`~helpers.config.build`: ``build_config`` / ``save_config`` and the command line.
- :mod:`helpers.mmseg_configs` (re-exported here): where mmseg keeps its configs;
  ``load_config``. It sits below this package, so that ``helpers.checkpoint`` can read a config
  without importing the recipes (and, through them, ``helpers.downloads``).
- :mod:`~helpers.config.compare`: diffs and differences between configs, the preset table.
- :mod:`~helpers.config.zoo`: mmseg's model-zoo entries, published reference points, GPU times.

Everything a notebook needs is importable from ``helpers.config`` itself. Command line::

    python -m helpers.config --preset smoke --voc-root VOC_ROOT --out FILE.py
"""

from helpers.config.build import build_config, main, save_config, set_norm_type
from helpers.config.compare import (
    config_diff,
    config_differences,
    flatten_config,
    preset_table,
    unexplained_official_differences,
)
from helpers.config.presets import (
    BASE_CONFIG,
    CONFIG_NAME,
    OFFICIAL_CONFIG,
    OFFICIAL_DIFFERENCES,
    PRESETS,
    RECIPES,
    Recipe,
)
from helpers.config.zoo import HOMEWORK_LOG, model_zoo_entry, preset_gpu_times, reference_points
from helpers.mmseg_configs import find_config, load_config, mmseg_config_dir, mmseg_tools_dir

__all__ = [
    "BASE_CONFIG", "CONFIG_NAME", "HOMEWORK_LOG", "OFFICIAL_CONFIG", "OFFICIAL_DIFFERENCES",
    "PRESETS", "RECIPES", "Recipe", "build_config", "config_diff", "config_differences",
    "find_config", "flatten_config", "load_config", "main", "mmseg_config_dir", "mmseg_tools_dir",
    "model_zoo_entry", "preset_gpu_times", "preset_table", "reference_points", "save_config",
    "set_norm_type", "unexplained_official_differences",
]
