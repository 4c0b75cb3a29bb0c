"""The comparison a reader wants from one `make bench` run: every path beside eager fp32.

``summarize_run(results)`` joins the figures of bench_limits (measured GEMM limits),
bench_inference (latency per path) and bench_accuracy (mIoU per path) into one record, stored as
``summary`` in benchmarks/results.json and shown first in RESULTS.md. Per path and size: latency,
ratio to eager fp32, throughput, the measured limit of its precision and the fraction of it,
argmax agreement with eager fp32 (random weights), and mIoU on the demo val split (trained
smoke model). Targets of the project are checked on the largest size.
"""

from __future__ import annotations

import re

#: target: the best CPU path at the largest size >= this many times eager fp32 ...
SPEEDUP_TARGET = 6.0
#: ... losing at most this many mIoU points on the demo val split
MAX_MIOU_DROP = 1.0
#: ONNX Runtime fp32 should reach this fraction of the measured fp32 limit
ORT_FP32_TARGET = 0.85


def figure_median(figures: dict, name: str) -> float | None:
    """The median of figure `name` in a benchmark's `figures` (None when it was not measured)."""
    entry = figures.get(name)
    return None if entry is None else float(entry["median"])


def summarize_run(results: dict) -> dict:
    """{"limits", "sizes": {size: {path: {...}}}, "targets"} from the collected RESULT lines."""
    inference = results.get("inference", {})
    figures = inference.get("figures", {})
    paths = inference.get("paths", {})
    limits = results.get("limits", {}).get("limits", {})
    miou = results.get("accuracy", {}).get("miou", {})
    sizes = list(dict.fromkeys(m.group(1) for name in figures
                               if (m := re.fullmatch(r"latency (\S+) \S+", name))))
    table: dict[str, dict] = {}
    for size in sizes:
        rows = {}
        for path, info in paths.items():
            latency = figure_median(figures, f"latency {size} {path}")
            if latency is None:
                continue
            limit = limits.get(info["precision"], {})
            throughput = figure_median(figures, f"throughput {size} {path}")
            rows[path] = {
                **info, "latency_s": latency,
                "vs_eager": figure_median(figures, f"speedup {size} {path}"),
                "throughput": throughput,
                "limit": limit.get("value"), "limit_engine": limit.get("engine"),
                "fraction_of_limit": (throughput / limit["value"]
                                      if throughput is not None and limit.get("value") else None),
                "argmax_agreement_pct": (100.0 if path == "eager_fp32" else figure_median(
                    figures, f"argmax agreement {size} {path} vs eager_fp32")),
                "miou": miou.get(path),
                "miou_drop": (miou["eager_fp32"] - miou[path]
                              if path in miou and "eager_fp32" in miou else None),
            }
        table[size] = rows
    return {"limits": limits, "sizes": table, "targets": targets(table)}


def targets(table: dict[str, dict]) -> dict:
    """The project's speed and efficiency targets, checked on the largest size measured."""
    if not table:
        return {}
    size = list(table)[-1]
    rows = table[size]
    keeps = {p: r for p, r in rows.items() if r["miou_drop"] is not None
             and r["miou_drop"] <= MAX_MIOU_DROP and p != "eager_fp32"}
    best = max(keeps, key=lambda p: keeps[p]["vs_eager"]) if keeps else None
    ort_fp32 = rows.get("ort_fp32", {}).get("fraction_of_limit")
    int8 = {p: r["fraction_of_limit"] for p, r in rows.items()
            if r["precision"] == "int8" and r["fraction_of_limit"] is not None}
    over = {f"{p} at {s}": r["fraction_of_limit"] for s, rs in table.items()
            for p, r in rs.items() if (r["fraction_of_limit"] or 0) > 1}
    return {
        "size": size,
        "best_path": best,
        "best_vs_eager": keeps[best]["vs_eager"] if best else None,
        "best_miou_drop": keeps[best]["miou_drop"] if best else None,
        "speedup_target": SPEEDUP_TARGET, "max_miou_drop": MAX_MIOU_DROP,
        "speedup_met": bool(best and keeps[best]["vs_eager"] >= SPEEDUP_TARGET),
        "ort_fp32_fraction": ort_fp32, "ort_fp32_target": ORT_FP32_TARGET,
        "ort_fp32_met": bool(ort_fp32 is not None and ort_fp32 >= ORT_FP32_TARGET),
        "int8_fractions": int8,
        # what int8 could give at best: the whole network at the int8 GEMM limit
        "int8_ceiling_vs_eager": _ceiling(rows),
        "fractions_over_one": over,
    }


def _ceiling(rows: dict) -> float | None:
    """Speed-up over eager if every operation ran at the measured int8 GEMM limit."""
    eager, int8 = rows.get("eager_fp32"), rows.get("ort_int8")
    if not eager or not int8 or not int8["limit"] or not eager["throughput"]:
        return None
    return int8["limit"] / eager["throughput"]
