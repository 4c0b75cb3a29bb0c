"""helpers.bench_results: one make bench run per CPU family in benchmarks/results.json."""

from __future__ import annotations

import json

from helpers import bench_results


def _row(latency: float, vs: float, drop: float | None) -> dict:
    return {"engine": "e", "precision": "fp32", "latency_s": latency, "vs_eager": vs,
            "fraction_of_limit": 0.5, "argmax_agreement_pct": 99.9,
            "miou": None if drop is None else 80 - drop, "miou_drop": drop}


def test_the_readme_figures_are_the_committed_results(tmp_path, monkeypatch):
    from helpers.env import repo_root

    monkeypatch.syspath_prepend(str(repo_root() / "benchmarks"))
    import report

    runs = bench_results.load_runs()
    readme = (repo_root() / "README.md").read_text()
    block = readme.split(report.README_START)[1].split(report.README_END)[0]
    written = [report.readme_rows(run["results"], run["machine"], run["summary"])
               for run in runs.values() if "missing" not in run]
    rows = next((r for r in written if block.strip().splitlines() == r), None)
    assert rows is not None  # `make bench` wrote them from one stored run; nobody edited them
    assert any("eager" in row and "×" in row for row in rows)
    copy = tmp_path / "README.md"
    copy.write_text(f"intro\n{report.README_START}\nold figure\n{report.README_END}\nrest\n")
    assert report.rewrite_readme(copy, ["| a | b |"])
    assert copy.read_text() == (f"intro\n{report.README_START}\n| a | b |\n{report.README_END}"
                                "\nrest\n")
    copy.write_text("no markers\n")
    assert not report.rewrite_readme(copy, ["| a | b |"]) and copy.read_text() == "no markers\n"


def _machine(vendor: str, family: int, model: int, amx: bool = False, name: str = "") -> dict:
    return {"name": name or f"{vendor} {family}/{model}", "vendor": vendor, "cpu_family": family,
            "cpu_model": model, "isa": {"avx512f": True, "amx_int8": amx}}


ZEN5 = {"machine": _machine("AuthenticAMD", 26, 2, name="2-core AMD EPYC (Zen 5)"),
        "summary": {"sizes": {"512x512": {"ort_fp32": _row(0.7, 1.4, 0.0),
                                          "ort_int8": _row(0.2, 4.9, 0.0),
                                          "openvino_int8": _row(0.175, 5.6, 0.0)}}},
        "results": {}}


def test_cpu_families():
    assert bench_results.cpu_family(ZEN5["machine"]) == "AMD Zen 5"
    assert bench_results.cpu_family(_machine("AuthenticAMD", 25, 0x11)) == "AMD Zen 4"
    assert bench_results.cpu_family(_machine("GenuineIntel", 6, 143, amx=True)) == \
        "Intel with AMX"
    assert bench_results.cpu_family(_machine("GenuineIntel", 6, 207)) == "Intel without AMX"
    assert bench_results.cpu_family({}) == "unknown CPU"


def test_a_new_run_replaces_only_its_own_family(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(ZEN5))  # the older one-run form
    runs = bench_results.load_runs(path)
    assert list(runs) == ["AMD Zen 5", "Intel with AMX"]
    assert "results_int8_amx.json" in runs["Intel with AMX"]["missing"]  # shown, never invented
    amx = {**ZEN5, "machine": _machine("GenuineIntel", 6, 143, amx=True, name="Xeon AMX")}
    assert bench_results.store_run(amx, path) == "Intel with AMX"
    again = {**ZEN5, "note": "second Zen 5 run"}
    assert bench_results.store_run(again, path) == "AMD Zen 5"
    saved = json.loads(path.read_text())
    assert list(saved["runs"]) == ["AMD Zen 5", "Intel with AMX"] and "about" in saved
    assert saved["runs"]["AMD Zen 5"]["note"] == "second Zen 5 run"
    assert saved["runs"]["Intel with AMX"]["machine"]["name"] == "Xeon AMX"
    other = {**ZEN5, "machine": _machine("GenuineIntel", 6, 207, name="no AMX")}
    bench_results.store_run(other, path)
    assert list(bench_results.load_runs(path)) == ["AMD Zen 5", "Intel with AMX",
                                                   "Intel without AMX"]
    assert bench_results.load_runs(tmp_path / "none.json")["Intel with AMX"]["missing"]


def test_the_repository_keeps_one_run_per_reference_family():
    runs = bench_results.load_runs()
    assert set(bench_results.REFERENCE_FAMILIES) <= set(runs)
    for family, run in runs.items():
        assert "missing" in run or bench_results.cpu_family(run["machine"]) == family


def test_results_md_lists_every_family(tmp_path, monkeypatch):
    from helpers.env import repo_root

    monkeypatch.syspath_prepend(str(repo_root() / "benchmarks"))
    import report

    path = tmp_path / "results.json"
    path.write_text(json.dumps(ZEN5))
    lines = report.families_section(bench_results.load_runs(path))
    rows = [line for line in lines if line.startswith("| AMD") or line.startswith("| Intel")]
    assert rows[0].startswith("| AMD Zen 5 | 2-core AMD EPYC (Zen 5) | 512x512 | 3.50× | — | 4.00×")
    assert rows[1].startswith("| Intel with AMX | — |") and "results_int8_amx.json" in rows[1]
    assert report.families_section(None) == []



def test_results_md_grading_section_is_the_stored_run(monkeypatch):
    from helpers.env import repo_root

    monkeypatch.syspath_prepend(str(repo_root() / "benchmarks"))
    import report

    stored = json.loads((repo_root() / "benchmarks" / "results_grade.json").read_text())
    page = (repo_root() / "benchmarks" / "RESULTS.md").read_text()
    section = page[page.index(report.GRADE_START):page.index(report.GRADE_END) +
                   len(report.GRADE_END)]
    assert section.splitlines() == report.grading_section(stored)  # bench_grade.py wrote it
    # a run with paired rounds reports their overhead as the sandbox's, beside the whole runs'
    paired = dict(stored, projection=dict(stored["projection"], sandbox_overhead=0.012,
                                          sandbox_overhead_runs=0.07),
                  paired={"rounds": 3, "overhead": 0.012,
                          "per_notebook": {"00_environment": -0.02, "05_onnx": 0.03},
                          "grader_cpu_s_per_hand_in": {"sandboxed": 0.4, "unsafe": 0.1}})
    text = "\n".join(report.grading_section(paired))
    assert "paired (3 rounds" in text and "**+1.2%**" in text and "05 +3.0%" in text
    assert "whole JOBS=1 runs above, sandboxed against unsandboxed: +7.0%" in text
    old = dict(stored, paired=None, projection=dict(stored["projection"],
                                                    sandbox_overhead=0.069))
    old["projection"].pop("sandbox_overhead_runs", None)
    assert "unsandboxed: **+6.9%**" in "\n".join(report.grading_section(old))
