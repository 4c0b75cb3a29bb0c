"""The speed figures of ``make bench`` (benchmarks/results.json), read for notebook 05.

The notebook types no figure: it shows what the last ``make bench`` measured, names the machine
it ran on (machines differ: only ratios and fractions of limits measured in the same run
compare), and recommends the fastest path that keeps the mIoU. Every key is read defensively:
a run without OpenVINO, without the accuracy benchmark or from an older version of the
benchmarks simply has fewer columns or rows.

results.json keeps one run per CPU family (:func:`cpu_family`: "AMD Zen 5", "Intel with AMX",
...) under ``runs``; ``make bench`` replaces only the entry of the family it ran on
(:func:`store_run`). A reference family without a run is stored as ``{"missing": why}``.
Notebook 05 times ONNX Runtime (and OpenVINO, where installed) on the student's own machine;
:func:`measured_table` and :func:`recommend` turn those timings into advice, and
:func:`beside_references` shows them next to every stored run, each named by its CPU.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

__all__ = ["ISA_NAMES", "REFERENCE_FAMILIES", "beside_references", "cpu_family", "cpu_flags",
           "int8_profile", "int8_variants", "load_results", "load_runs", "machine_summary",
           "measured_table", "recommend", "speed_table", "store_run", "this_cpu"]

#: /proc/cpuinfo flags that decide which matrix kernels an engine can use, and their names.
ISA_NAMES = {"avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
             "avx512_bf16": "AVX-512 BF16", "amx_int8": "AMX int8", "amx_bf16": "AMX bf16"}


#: the CPU families whose runs the course keeps as references, each its own entry in results.json
REFERENCE_FAMILIES = ("AMD Zen 5", "Intel with AMX")
#: notebook 05's names of the paths a student can time, and the benchmarks' names for them
PATH_NAMES = {"ORT fp32": "ort_fp32", "ORT INT8": "ort_int8", "OpenVINO fp32": "openvino_fp32",
              "OpenVINO INT8": "openvino_int8"}
#: what a reference family without a run says (the kernel-level AMX figures are not a whole run)
MISSING = {"Intel with AMX": "no whole-network run on an Intel CPU with AMX is stored yet: "
                             "benchmarks/results_int8_amx.json holds single convolutions and "
                             "GEMMs only. Run `make bench` on such a machine to add it."}


def _results_path(path: str | Path | None) -> Path:
    if path is None:
        from helpers.env import repo_root

        return repo_root() / "benchmarks" / "results.json"
    return Path(path)


def cpu_family(machine: dict) -> str:
    """The CPU family a run's ``machine`` belongs to: "AMD Zen 5", "Intel with AMX", ...

    AMD by microarchitecture (cpu family 26 is Zen 5, 25 is Zen 3 or 4), Intel by whether it has
    AMX int8 tiles (the matrix unit that decides which int8 kernels are fastest); anything else
    by its vendor.
    """
    vendor, family = machine.get("vendor"), machine.get("cpu_family")
    if vendor == "AuthenticAMD":
        model = machine.get("cpu_model") or 0
        zen = {26: "Zen 5", 25: "Zen 4" if model >= 0x10 else "Zen 3", 23: "Zen 2"}.get(family)
        return f"AMD {zen}" if zen else "AMD"
    if vendor == "GenuineIntel":
        return "Intel with AMX" if (machine.get("isa") or {}).get("amx_int8") else \
            "Intel without AMX"
    return vendor or machine.get("cpu") or "unknown CPU"


def load_runs(path: str | Path | None = None) -> dict[str, dict]:
    """Every run in results.json by CPU family, the reference families first.

    A reference family without a run maps to ``{"missing": why}``. A results file of the older
    one-run form (``machine``, ``summary``, ``results`` at the top) is one family's run.
    """
    try:
        data = json.loads(_results_path(path).read_text())
    except (OSError, ValueError):
        data = {}
    if "runs" in data:
        runs = dict(data["runs"])
    elif data.get("machine"):
        runs = {cpu_family(data["machine"]): data}
    else:
        runs = {}
    missing = {f: {"missing": MISSING.get(f, f"no run on an {f} CPU is stored yet.")}
               for f in REFERENCE_FAMILIES}
    return {**{f: runs.get(f) or missing[f] for f in REFERENCE_FAMILIES},
            **{f: run for f, run in runs.items() if f not in REFERENCE_FAMILIES}}


def load_results(path: str | Path | None = None, family: str | None = None) -> dict:
    """One run of benchmarks/results.json ({} when there is none or the file is unreadable).

    ``family``: that CPU family's run; by default the first reference family that has one.
    """
    runs = load_runs(path)
    if family is not None:
        run = runs.get(family) or {}
        return {} if "missing" in run else run
    return next((run for run in runs.values() if "missing" not in run), {})


def store_run(run: dict, path: str | Path | None = None) -> str:
    """Write ``run`` into results.json as its CPU family's entry, keeping every other family's.

    Returns the family. The file is rewritten in the ``runs`` form even if it held the older
    one-run form (whose run is kept under its own family).
    """
    family = cpu_family(run.get("machine") or {})
    path = _results_path(path)
    runs = load_runs(path)
    runs[family] = run
    about = ("One `make bench` run per CPU family (benchmarks/run_all.py replaces only the entry "
             "of the family it ran on); a reference family without a run says why under "
             "`missing`. Compare ratios across families, not seconds.")
    path.write_text(json.dumps({"about": about, "runs": runs}, indent=2, default=float) + "\n")
    return family


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
    """The fastest path of ``table`` whose mIoU drop is at most ``max_drop``, said in a sentence.

    ``table`` is a :func:`speed_table` (ratios to eager fp32) or a :func:`measured_table`
    (ratios to ONNX Runtime fp32): the first ``× ...`` column names the baseline. A path whose
    mIoU was not measured (drop NaN) is never recommended, however fast.
    """
    if table.empty or "latency (s)" not in table:
        return "No speed figures yet: run `make bench` (benchmarks/run_all.py)."
    ratio = next((c for c in table.columns if str(c).startswith("× ")), "× eager fp32")
    baseline = ratio[2:]
    fastest = table["latency (s)"].idxmin()
    if "mIoU drop" not in table or table["mIoU drop"].isna().all():
        return (f"Fastest here: {fastest}. Its mIoU was not measured in this run; measure it "
                "before you ship it (compare_miou, section 7).")
    keeps = table[table["mIoU drop"].notna() & (table["mIoU drop"] <= max_drop)]
    if keeps.empty:
        return f"No path keeps the mIoU within {max_drop} point(s); stay with {baseline}."
    best = keeps["latency (s)"].idxmin()
    row = keeps.loc[best]
    drop = float(row["mIoU drop"])
    cost = f"losing {drop:.2f}" if drop > 0 else f"gaining {-drop:.2f}" if drop < 0 else "losing no"
    text = (f"Recommended: {best}, {row.get(ratio, float('nan')):.2f}× {baseline}, "
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


def measured_table(latency: dict[str, float], miou: dict[str, float] | pd.Series | None = None,
                   baseline: str = "ORT fp32") -> pd.DataFrame:
    """Timings taken on this machine as a table for :func:`recommend`, fastest first.

    ``latency``: median seconds per path ("ORT fp32", "ORT INT8", "OpenVINO INT8", ...).
    ``miou``: the mIoU each path kept where the lesson measured it (section 7's table); a path
    without one gets no mIoU drop and is shown but never recommended. Columns: latency (s),
    × ``baseline`` (its latency / the path's), mIoU and mIoU drop (``baseline``'s mIoU minus
    the path's).
    """
    if not latency:
        return pd.DataFrame(columns=["latency (s)", f"× {baseline}", "mIoU", "mIoU drop"])
    miou = dict(miou if miou is not None else {})
    table = pd.DataFrame({"latency (s)": pd.Series(latency, dtype=float)}).rename_axis(
        "path (this machine)")
    base = latency.get(baseline)
    table[f"× {baseline}"] = base / table["latency (s)"] if base else float("nan")
    table["mIoU"] = [float(miou[p]) if miou.get(p) is not None else float("nan")
                     for p in table.index]
    reference = miou.get(baseline)
    table["mIoU drop"] = (float(reference) - table["mIoU"]) if reference is not None \
        else float("nan")
    return table.sort_values("latency (s)")


def _reference_ratios(run: dict, size: int | None, baseline: str) -> tuple[str | None, dict]:
    """(size used, {notebook path name: × baseline}) from one stored run's summary."""
    sizes = ((run.get("summary") or {}).get("sizes")) or {}
    if not sizes:
        return None, {}
    key = f"{size}x{size}" if size and f"{size}x{size}" in sizes else \
        max(sizes, key=lambda s: int(s.split("x")[0]))
    rows = sizes[key]
    base = (rows.get(PATH_NAMES[baseline]) or {}).get("latency_s")
    return key, {name: base / rows[path]["latency_s"] for name, path in PATH_NAMES.items()
                 if base and (rows.get(path) or {}).get("latency_s")}


def beside_references(mine: pd.DataFrame, runs: dict[str, dict], here: str = "",
                      size: int | None = None, baseline: str = "ORT fp32") -> pd.DataFrame:
    """Each path's speed-up over ``baseline``: this machine's beside every stored run.

    One column per machine, named by its CPU (``here`` for this machine; ``family: machine
    name, size`` for a stored run, at ``size`` where the run has it), one row per path of
    :data:`PATH_NAMES`; a family without a run keeps its column, empty, named as missing.
    Ratios compare across machines, seconds do not.
    """
    ratio = f"× {baseline}"
    columns: dict[str, pd.Series] = {}
    if ratio in mine:
        columns[f"this machine: {here or 'unknown CPU'}"] = mine[ratio]
    for family, run in runs.items():
        if "missing" in run:
            columns[f"{family}: no run yet"] = pd.Series(dtype=float)
            continue
        key, ratios = _reference_ratios(run, size, baseline)
        name = ((run.get("machine") or {}).get("name") or family).split(":")[0]
        columns[f"{family}: {name}, {key}"] = pd.Series(ratios, dtype=float)
    table = pd.DataFrame(columns).reindex(list(PATH_NAMES)).dropna(how="all")
    return table.rename_axis(f"{ratio} (higher is faster)").round(2)

