"""What every benchmark script shares: timing repeats, summaries, the RESULT line, the machine.

A benchmark prints exactly one line `RESULT {json}` at the end: {"figures": {name: summary}}
where a summary is {"median", "min", "max", "runs", "unit"} (see `summarize`). `run_all.py`
collects those lines into benchmarks/RESULTS.md and benchmarks/results.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FP32_PEAK_GFLOPS = 333.0  # 2 cores x 2 AVX-512 FMA units x 16 fp32 x 2 flops x 2.6 GHz


def summarize(samples: list[float], unit: str) -> dict:
    """Median and spread of repeated measurements."""
    if not samples:
        raise ValueError("no samples to summarize")
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "runs": len(samples), "unit": unit}


def time_runs(fn: Callable[[], object], runs: int = 5, warmup: int = 1) -> list[float]:
    """Seconds of `runs` calls of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def emit(figures: dict[str, dict], **extra) -> None:
    """Print the RESULT line that run_all.py parses."""
    print("RESULT " + json.dumps({"figures": figures, **extra}, default=float), flush=True)


def machine() -> dict:
    """CPU model, core counts, accelerator and library versions."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"cpu": cpu, "logical_cores": os.cpu_count(), "python": platform.python_version(),
            "fp32_peak_gflops": FP32_PEAK_GFLOPS}
    import torch

    info["torch"] = torch.__version__
    info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    info["torch_threads"] = torch.get_num_threads()
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info
