"""The runs of ``make bench`` kept in benchmarks/results.json, one per CPU family.

results.json keeps one run per CPU family (:func:`cpu_family`: "AMD Zen 5", "Intel with AMX",
...) under ``runs``; ``make bench`` replaces only the entry of the family it ran on
(:func:`store_run`). A reference family without a run is stored as ``{"missing": why}``.
Notebook 06 reads the file itself (plain ``json``) to show the stored runs beside the student's
own timings; machines differ, so only ratios measured in the same run compare.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["REFERENCE_FAMILIES", "cpu_family", "load_runs", "store_run"]

#: the CPU families whose runs the course keeps as references, each its own entry in results.json
REFERENCE_FAMILIES = ("AMD Zen 5", "Intel with AMX")
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
