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
#: CPU features that decide which matrix kernels the engines can use, as /proc/cpuinfo names them:
#: AVX-512 (fp32), VNNI (int8 dot products), AVX-512 BF16, AMX tiles for int8 and bf16.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
             "amx_int8", "amx_bf16")


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


def time_interleaved(fns: dict[str, Callable[[], object]], runs: int = 5,
                     warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of `runs` calls of each function, taken in turns (a, b, c, a, b, c, ...).

    On a machine shared with other work the load drifts; taking the paths in turns spreads that
    drift over all of them instead of penalising whichever ran during a busy minute, so their
    ratios stay fair.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def emit(figures: dict[str, dict], **extra) -> None:
    """Print the RESULT line that run_all.py parses."""
    print("RESULT " + json.dumps({"figures": figures, **extra}, default=float), flush=True)


def cpu_description() -> dict:
    """Model name, family/model numbers and the ISA flags of :data:`ISA_FLAGS` (Linux)."""
    info: dict = {"cpu": platform.processor() or platform.machine(), "cpu_family": None,
                  "cpu_model": None, "isa": {}}
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return info
    fields: dict[str, str] = {}
    for line in cpuinfo.read_text().splitlines():
        if not line.strip():
            break  # the first processor is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    info.update(cpu=fields.get("model name", info["cpu"]), vendor=fields.get("vendor_id"),
                cpu_family=int(fields["cpu family"]) if "cpu family" in fields else None,
                cpu_model=int(fields["model"]) if "model" in fields else None,
                isa={flag: flag in flags for flag in ISA_FLAGS})
    return info


#: Server microarchitectures by (vendor, family, model); hypervisors often hide the model name.
UARCH = {("GenuineIntel", 6, 85): "Skylake/Cascade Lake", ("GenuineIntel", 6, 106): "Ice Lake",
         ("GenuineIntel", 6, 143): "Sapphire Rapids", ("GenuineIntel", 6, 207): "Emerald Rapids",
         ("GenuineIntel", 6, 173): "Granite Rapids"}


def microarchitecture(vendor: str | None, family: int | None, model: int | None) -> str | None:
    """"Zen 5", "Sapphire Rapids", ... or None when unknown."""
    if vendor == "AuthenticAMD" and family == 26:
        return "Zen 5"
    if vendor == "AuthenticAMD" and family == 25 and model is not None:
        return "Zen 4" if model >= 0x10 else "Zen 3"
    return UARCH.get((vendor, family, model))


def machine_name(info: dict) -> str:
    """One line naming the machine: cores, CPU, its matrix ISA ("2-core AMD EPYC, AVX-512 ...")."""
    isa = info.get("isa", {})
    parts = [label for flag, label in (("avx512f", "AVX-512"), ("avx512_vnni", "VNNI"),
                                       ("avx512_bf16", "BF16"), ("amx_tile", "AMX"))
             if isa.get(flag)]
    if isa and not isa.get("amx_tile"):
        parts.append("no AMX")
    uarch = microarchitecture(info.get("vendor"), info.get("cpu_family"), info.get("cpu_model"))
    return (f"{info['logical_cores']}-core {info['cpu']}{f' ({uarch})' if uarch else ''}: "
            f"{', '.join(parts) or 'no ISA information'}")


def machine() -> dict:
    """CPU model, ISA flags, core counts, accelerator and library versions."""
    info = {**cpu_description(), "logical_cores": os.cpu_count(),
            "python": platform.python_version()}
    info = {"name": machine_name(info), **info}
    import torch

    info["torch"] = torch.__version__
    info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    info["torch_threads"] = torch.get_num_threads()
    for module in ("onnxruntime", "openvino"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info
