"""The speed figures of ``make bench`` (benchmarks/results.json), read for notebook 05.

The notebook types no figure: it shows what the last ``make bench`` measured, names the machine
it ran on (machines differ: only ratios and fractions of limits measured in the same run
compare), and recommends the fastest path that keeps the mIoU. Every key is read defensively:
a run without OpenVINO, without the accuracy benchmark or from an older version of the
benchmarks simply has fewer columns or rows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

__all__ = ["ISA_NAMES", "cpu_flags", "int8_profile", "int8_variants", "load_results",
           "machine_summary", "recommend", "speed_table", "this_cpu"]

#: /proc/cpuinfo flags that decide which matrix kernels an engine can use, and their names.
ISA_NAMES = {"avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
             "avx512_bf16": "AVX-512 BF16", "amx_int8": "AMX int8", "amx_bf16": "AMX bf16"}


def load_results(path: str | Path | None = None) -> dict:
    """benchmarks/results.json as a dict ({} when the file is missing or unreadable)."""
    if path is None:
        from helpers.env import repo_root

        path = repo_root() / "benchmarks" / "results.json"
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, bool]:
    """Which of :data:`ISA_NAMES` this CPU has (all False where /proc/cpuinfo is missing)."""
    path = Path(cpuinfo)
    flags = set(path.read_text().split()) if path.exists() else set()
    return {flag: flag in flags for flag in ISA_NAMES}


def this_cpu(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """This machine's CPU model name, as /proc/cpuinfo gives it ("" where unknown)."""
    path = Path(cpuinfo)
    found = re.search(r"^model name\s*:\s*(.+)$", path.read_text(), re.M) if path.exists() \
        else None
    return found.group(1).strip() if found else ""


def machine_summary(results: dict) -> str:
    """One line naming the machine a results file was measured on, and its versions."""
    machine = results.get("machine") or {}
    if not machine:
        return "no machine recorded (benchmarks/results.json missing: run `make bench`)"
    isa = [ISA_NAMES.get(k, k) for k, v in (machine.get("isa") or {}).items()
           if v and k in ISA_NAMES]
    name = machine.get("name") or ", ".join(filter(None, [
        machine.get("cpu"), f"{machine['logical_cores']} logical cores"
        if machine.get("logical_cores") else "", " / ".join(isa)]))
    versions = ", ".join(f"{k} {str(machine[k]).split('-')[0]}" for k in
                         ("torch", "onnxruntime", "openvino") if machine.get(k))
    return f"{name} ({versions})" if versions else name


def _rows_from_figures(results: dict, size: str) -> dict[str, dict]:
    """Rows for one size built from the raw figures, for results files without a summary."""
    figures = (results.get("results") or {}).get("inference", {}).get("figures", {})
    latency = {m.group(1): float(f["median"]) for name, f in figures.items()
               if (m := re.fullmatch(rf"latency {size} (\S+)", name))}
    eager = latency.get("eager_fp32", latency.get("eager"))
    return {path: {"latency_s": t, "vs_eager": eager / t if eager else None}
            for path, t in latency.items()}


def speed_table(results: dict, size: str | None = None) -> pd.DataFrame:
    """One row per inference path at ``size`` (default: the largest measured), fastest first.

    Columns, where measured: engine, precision, latency (s), × eager fp32, fraction of the
    measured limit of its precision, argmax agreement with eager fp32 (random weights), mIoU on
    the demo val split (trained smoke model) and its drop from eager fp32.
    """
    sizes = (results.get("summary") or {}).get("sizes") or {}
    if not sizes:
        figures = (results.get("results") or {}).get("inference", {}).get("figures", {})
        found = [m.group(1) for n in figures if (m := re.fullmatch(r"latency (\S+) \S+", n))]
        sizes = {s: _rows_from_figures(results, s) for s in dict.fromkeys(found)}
    if not sizes:
        return pd.DataFrame()
    size = size or max(sizes, key=lambda s: int(s.split("x")[0]))
    columns = {"engine": "engine", "precision": "precision", "latency_s": "latency (s)",
               "vs_eager": "× eager fp32", "fraction_of_limit": "of limit",
               "argmax_agreement_pct": "argmax agreement (%)", "miou": "mIoU",
               "miou_drop": "mIoU drop"}
    table = pd.DataFrame.from_dict(sizes.get(size) or {}, orient="index")
    table = table[[c for c in columns if c in table]].rename(columns=columns)
    table = table.dropna(axis=1, how="all").rename_axis(f"path ({size})")
    return table.sort_values("latency (s)") if "latency (s)" in table else table


def recommend(table: pd.DataFrame, max_drop: float = 1.0) -> str:
    """The fastest path of ``table`` whose mIoU drop is at most ``max_drop``, said in a sentence."""
    if table.empty or "latency (s)" not in table:
        return "No speed figures yet: run `make bench` (benchmarks/run_all.py)."
    fastest = table["latency (s)"].idxmin()
    if "mIoU drop" not in table or table["mIoU drop"].isna().all():
        return (f"Fastest here: {fastest}. Its mIoU was not measured in this run; measure it "
                "before you ship it (compare_miou, section 7).")
    keeps = table[table["mIoU drop"].notna() & (table["mIoU drop"] <= max_drop)]
    if keeps.empty:
        return f"No path keeps the mIoU within {max_drop} point(s); stay with eager fp32."
    best = keeps["latency (s)"].idxmin()
    row = keeps.loc[best]
    drop = float(row["mIoU drop"])
    cost = f"losing {drop:.2f}" if drop > 0 else f"gaining {-drop:.2f}" if drop < 0 else "losing no"
    text = (f"Recommended: {best}, {row.get('× eager fp32', float('nan')):.2f}× eager fp32, "
            f"{cost} mIoU points (a drop ≤ {max_drop} keeps the mIoU).")
    if best != fastest:
        lost = table.loc[fastest].get("mIoU drop")
        text += (f" The fastest, {fastest}, loses {lost:.2f} points." if pd.notna(lost) else
                 f" The fastest, {fastest}, has no mIoU measured.")
    return text


def int8_profile(results: dict) -> pd.DataFrame:
    """Where one run of the INT8 graph spends its time (ONNX Runtime's profiler, in the int8
    benchmark): one row per kind of operator, most expensive first, with the nodes that ran,
    the kernel time (ms) and its share of the run (%). Empty when the benchmark did not run."""
    by_op = (((results.get("results") or {}).get("int8") or {}).get("profile") or {}).get("by_op")
    if not by_op:
        return pd.DataFrame()
    rows: dict[str, dict] = {}
    for op, f in by_op.items():
        row = rows.setdefault(f.get("category", op), {"operators": [], "nodes": 0, "ms": 0.0,
                                                      "share": 0.0})
        row["operators"].append(op)
        row["nodes"] += int(f.get("nodes", 0))
        row["ms"] += float(f.get("ms", 0.0))
        row["share"] += float(f.get("share", 0.0))
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("what runs")
    table["operators"] = table["operators"].map(", ".join)
    table["% of run"] = (100 * table.pop("share")).round(1)
    return table.sort_values("ms", ascending=False).round({"ms": 1})


def int8_variants(results: dict) -> pd.DataFrame:
    """The INT8 variants the int8 benchmark timed (storage form for another CPU's kernels,
    spinning threads, the whole graph quantized), each as latency and × the form chosen here."""
    figures = ((results.get("results") or {}).get("int8") or {}).get("figures") or {}
    latency = {m.group(1): float(f["median"]) for name, f in figures.items()
               if (m := re.fullmatch(r"ORT INT8 \S+, (.+)", name)) and f.get("unit") == "s"}
    chosen = next((t for name, t in latency.items() if "chosen here" in name), None)
    if not latency or chosen is None:
        return pd.DataFrame()
    table = pd.DataFrame({"latency (s)": latency}).rename_axis("ORT INT8 variant")
    table["× the form chosen here"] = chosen / table["latency (s)"]
    return table.sort_values("latency (s)").round(3)
