"""Reference points for the presets (notebook 02): what others published, and what a GPU costs.

- :func:`model_zoo_entry`: a model's entry in the ``metafile.yaml`` that mmseg installs beside its
  configs (mIoU, GPUs, batch, memory, links to the weights and the training log).
- :func:`reference_points`: published results to compare a run with. They are references, not
  measurements of this course: mmseg's own VOC recipe, the Cityscapes model the seed preset
  starts from, and the homework author's log.
- :func:`preset_gpu_times`: seconds per training iteration of each preset as measured by
  ``benchmarks/bench_gpu.py`` (``benchmarks/results_gpu.json``), and the GPU time that makes for
  the preset's schedule. mmseg's metafile records GPUs, batch and memory but no training time;
  its time per iteration is in the training log the metafile links (a download, not read here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers.config.presets import BASE_CONFIG, OFFICIAL_CONFIG, RECIPES
from helpers.mmseg_configs import mmseg_config_dir

__all__ = ["HOMEWORK_LOG", "model_zoo_entry", "preset_gpu_times", "reference_points"]

HOMEWORK_LOG = {
    "mIoU": 45.92,
    "setting": "seed recipe: PSPNet R50-D8 from the Cityscapes checkpoint, VOC2012 train, "
               "256x256 crop, batch 8, 4,000 iterations, 1 GPU",
    "source": "the homework author's training log (OpenMMlab_AI_2023.2, assignment 3)",
}
"""The validation mIoU the original homework reports after its 4,000 iterations."""


def model_zoo_entry(config: str) -> dict[str, Any]:
    """The entry of `config` (a shipped config's file name) in its family's ``metafile.yaml``."""
    import yaml

    name = Path(config).name.removesuffix(".py")
    path = mmseg_config_dir() / name.split("_", 1)[0] / "metafile.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model-zoo metafile for {name} in the installed mmseg")
    models = yaml.safe_load(path.read_text()).get("Models", [])
    entry = next((m for m in models if m.get("Name") == name), None)
    if entry is None:
        raise KeyError(f"{name} is not listed in {path}")
    return dict(entry, metafile=str(path.relative_to(mmseg_config_dir().parents[2])))


def _zoo_row(config: str, what: str) -> dict[str, Any]:
    entry = model_zoo_entry(config)
    meta, results = entry.get("Metadata", {}), entry.get("Results", {})
    results = results[0] if isinstance(results, list) else results
    memory = meta.get("Memory (GB)")
    return {
        "reference": what,
        "trained on data": results.get("Dataset"),
        "mIoU": results.get("Metrics", {}).get("mIoU"),
        "GPUs": f"{meta.get('Training Resources', '?')}, batch {meta.get('Batch Size')}"
                      + (f", {memory} GB per GPU" if memory else ""),
        "source": f"{entry['metafile']} ({entry['Name']}); training log: "
                  f"{entry.get('Training log', 'not linked')}",
    }


def reference_points():
    """Published results to read a run against (references, not this course's measurements)."""
    import pandas as pd

    rows = [
        _zoo_row(OFFICIAL_CONFIG, "mmseg's VOC recipe (the official preset), 512x512, 20k"),
        _zoo_row(BASE_CONFIG, "the Cityscapes model the seed preset fine-tunes (load_from)"),
        {"reference": "the homework's run (the seed preset), 256x256, 4k",
         "trained on data": "Pascal VOC 2012 (train)", "mIoU": HOMEWORK_LOG["mIoU"],
         "GPUs": "1 GPU, batch 8",
         "source": HOMEWORK_LOG["source"]},
    ]
    return pd.DataFrame(rows).set_index("reference")


def preset_gpu_times(results: str | Path | None = None):
    """GPU time of each preset's schedule from ``benchmarks/results_gpu.json``, or None.

    One training iteration (forward, loss, backward, SGD step) on a synthetic batch, without the
    data loader and without validation: a lower bound of a real run's time.
    """
    import pandas as pd

    from helpers.env import repo_root

    path = Path(results) if results else repo_root() / "benchmarks" / "results_gpu.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    rows = {}
    for run in data.get("train", []):
        recipe = RECIPES.get(run["preset"])
        if recipe is None:
            continue
        seconds = sorted(run["seconds_per_iter"])[len(run["seconds_per_iter"]) // 2]
        rows[f"{run['preset']} ({'AMP' if run['amp'] else 'fp32'})"] = {
            "crop": "x".join(map(str, run["crop"])), "batch": run["batch"],
            "s / iteration": round(seconds, 4), "iterations": recipe.max_iters,
            "GPU minutes": round(seconds * recipe.max_iters / 60, 1),
            "peak GiB": round(run["peak_mib"] / 1024, 2),
        }
    table = pd.DataFrame(rows).T
    table.attrs["device"] = data.get("device", {}).get("name", "a GPU")
    table.attrs["source"] = str(path.relative_to(repo_root())) if path.is_relative_to(
        repo_root()) else str(path)
    return table
