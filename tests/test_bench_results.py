"""helpers.bench_results: notebook 05 reads benchmarks/results.json, whatever it holds."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers import bench_results


def _figure(value: float, unit: str = "s") -> dict:
    return {"median": value, "min": value, "max": value, "runs": 5, "unit": unit}


OLD = {  # an early results.json: no summary, no accuracy, "eager" instead of "eager_fp32"
    "machine": {"cpu": "Some CPU", "logical_cores": 2, "torch": "2.13.0+cpu"},
    "results": {"inference": {"figures": {
        "latency 256x256 eager": _figure(0.3), "latency 256x256 ort_int8": _figure(0.1),
        "latency 512x512 eager": _figure(1.2), "latency 512x512 ort_fp32": _figure(0.8),
        "latency 512x512 ort_int8": _figure(0.4)}}},
}


def _row(latency: float, vs: float, drop: float | None) -> dict:
    return {"engine": "e", "precision": "fp32", "latency_s": latency, "vs_eager": vs,
            "fraction_of_limit": 0.5, "argmax_agreement_pct": 99.9,
            "miou": None if drop is None else 80 - drop, "miou_drop": drop}


NEW = {
    "machine": {"name": "2-core Test CPU: AVX-512", "isa": {"avx512f": True, "amx_int8": False},
                "torch": "2.13.0+cpu", "onnxruntime": "1.32.0", "openvino": "2026.4.1-1-abc"},
    "summary": {"sizes": {"512x512": {
        "eager_fp32": _row(1.0, 1.0, 0.0), "ort_int8": _row(0.2, 5.0, 0.3),
        "openvino_int8": _row(0.15, 6.7, 1.6), "eager_bf16": _row(0.5, 2.0, None)}}},
}


def test_missing_file_gives_a_message_not_an_error(tmp_path):
    results = bench_results.load_results(tmp_path / "nothing.json")
    assert results == {} and bench_results.speed_table(results).empty
    assert "make bench" in bench_results.machine_summary(results)
    assert "make bench" in bench_results.recommend(bench_results.speed_table(results))
    (tmp_path / "broken.json").write_text("{")
    assert bench_results.load_results(tmp_path / "broken.json") == {}


def test_a_results_file_without_a_summary_or_mious(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(OLD))
    results = bench_results.load_results(tmp_path / "r.json")
    assert bench_results.machine_summary(results) == (
        "Some CPU, 2 logical cores (torch 2.13.0+cpu)")
    table = bench_results.speed_table(results)
    assert table.index.name == "path (512x512)" and list(table.index) == [
        "ort_int8", "ort_fp32", "eager"]
    assert table.loc["ort_int8", "× eager fp32"] == pytest.approx(3.0)
    assert "mIoU was not measured" in bench_results.recommend(table)


def test_the_fastest_path_that_keeps_the_miou_is_recommended():
    table = bench_results.speed_table(NEW)
    assert bench_results.machine_summary(NEW) == (
        "2-core Test CPU: AVX-512 (torch 2.13.0+cpu, onnxruntime 1.32.0, openvino 2026.4.1)")
    assert list(table.index)[0] == "openvino_int8"
    assert {"of limit", "mIoU", "mIoU drop", "argmax agreement (%)"} <= set(table.columns)
    text = bench_results.recommend(table, max_drop=1.0)
    assert text.startswith("Recommended: ort_int8, 5.00× eager fp32, losing 0.30 mIoU points")
    assert "The fastest, openvino_int8, loses 1.60 points" in text
    assert bench_results.recommend(table, max_drop=2.0).startswith("Recommended: openvino_int8")
    none_keep = table.assign(**{"mIoU drop": [5.0] * len(table)})
    assert "No path keeps the mIoU" in bench_results.recommend(none_keep)


def test_the_repository_s_own_results_file_reads():
    results = bench_results.load_results()
    table = bench_results.speed_table(results)
    assert isinstance(table, pd.DataFrame) and isinstance(bench_results.recommend(table), str)
    if results:
        assert "latency (s)" in table and bench_results.machine_summary(results)


def test_cpu_flags_and_name_from_a_cpuinfo_file(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx512f "
                    "avx512_vnni amx_int8\n\n")
    assert bench_results.this_cpu(info) == "Test CPU 9000"
    assert bench_results.cpu_flags(info) == {"avx512f": True, "avx512_vnni": True,
                                              "avx_vnni": False, "avx512_bf16": False,
                                              "amx_int8": True, "amx_bf16": False}
    assert bench_results.this_cpu(tmp_path / "none") == "" and not any(
        bench_results.cpu_flags(tmp_path / "none").values())


INT8 = {"results": {"int8": {
    "figures": {"ORT INT8 512x512, form vnni (chosen here)": _figure(0.2),
                "ORT INT8 512x512, form amx": _figure(0.4),
                "profile 512x512: quantized Conv": _figure(150.0, "ms")},
    "profile": {"ms_per_run": 200.0, "by_op": {
        "QLinearConv": {"ms": 150.0, "share": 0.75, "nodes": 61, "category": "quantized Conv"},
        "DequantizeLinear": {"ms": 12.0, "share": 0.06, "nodes": 43,
                             "category": "Quantize/Dequantize"},
        "QuantizeLinear": {"ms": 8.0, "share": 0.04, "nodes": 42,
                           "category": "Quantize/Dequantize"},
        "Resize": {"ms": 30.0, "share": 0.15, "nodes": 5, "category": "Resize (upsampling)"}}}}}}


def test_the_int8_profile_groups_operators_by_what_they_do():
    table = bench_results.int8_profile(INT8)
    assert list(table.index) == ["quantized Conv", "Resize (upsampling)", "Quantize/Dequantize"]
    qdq = table.loc["Quantize/Dequantize"]
    assert (qdq["nodes"], qdq["ms"], qdq["% of run"]) == (85, 20.0, 10.0)
    assert qdq["operators"] == "DequantizeLinear, QuantizeLinear"
    variants = bench_results.int8_variants(INT8)
    assert list(variants.index) == ["form vnni (chosen here)", "form amx"]  # ms figures left out
    assert variants.loc["form amx", "× the form chosen here"] == pytest.approx(0.5)
    assert bench_results.int8_profile(OLD).empty and bench_results.int8_variants(OLD).empty


def test_the_readme_figures_are_the_committed_results(tmp_path, monkeypatch):
    from helpers.env import repo_root

    monkeypatch.syspath_prepend(str(repo_root() / "benchmarks"))
    import report

    saved = json.loads((repo_root() / "benchmarks" / "results.json").read_text())
    rows = report.readme_rows(saved["results"], saved["machine"], saved["summary"])
    readme = (repo_root() / "README.md").read_text()
    block = readme.split(report.README_START)[1].split(report.README_END)[0]
    assert block.strip().splitlines() == rows  # `make bench` wrote them; nobody edited them
    assert any("eager" in row and "×" in row for row in rows)
    copy = tmp_path / "README.md"
    copy.write_text(f"intro\n{report.README_START}\nold figure\n{report.README_END}\nrest\n")
    assert report.rewrite_readme(copy, ["| a | b |"])
    assert copy.read_text() == (f"intro\n{report.README_START}\n| a | b |\n{report.README_END}"
                                "\nrest\n")
    copy.write_text("no markers\n")
    assert not report.rewrite_readme(copy, ["| a | b |"]) and copy.read_text() == "no markers\n"
