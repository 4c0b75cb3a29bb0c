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
    assert bench_results.load_results(path)["machine"]["name"] == "2-core AMD EPYC (Zen 5)"
    assert bench_results.load_results(path, "Intel without AMX")["machine"]["name"] == "no AMX"
    assert bench_results.load_results(tmp_path / "none.json", "Intel with AMX") == {}


def test_the_repository_keeps_one_run_per_reference_family():
    runs = bench_results.load_runs()
    assert set(bench_results.REFERENCE_FAMILIES) <= set(runs)
    for family, run in runs.items():
        assert "missing" in run or bench_results.cpu_family(run["machine"]) == family


def test_the_advice_follows_the_measurement():
    miou = {"PyTorch": 80.0, "ORT fp32": 80.0, "ORT INT8": 79.6}
    fast_int8 = bench_results.measured_table({"ORT fp32": 0.8, "ORT INT8": 0.2}, miou)
    assert list(fast_int8.index) == ["ORT INT8", "ORT fp32"]
    assert fast_int8.loc["ORT INT8", "× ORT fp32"] == pytest.approx(4.0)
    assert fast_int8.loc["ORT INT8", "mIoU drop"] == pytest.approx(0.4)
    assert bench_results.recommend(fast_int8).startswith(
        "Recommended: ORT INT8, 4.00× ORT fp32, losing 0.40 mIoU points")
    slow_int8 = bench_results.measured_table({"ORT fp32": 0.8, "ORT INT8": 1.1}, miou)
    assert bench_results.recommend(slow_int8).startswith("Recommended: ORT fp32, 1.00× ORT fp32")
    lossy = bench_results.measured_table({"ORT fp32": 0.8, "ORT INT8": 0.2},
                                         {**miou, "ORT INT8": 75.0})
    text = bench_results.recommend(lossy, max_drop=1.0)
    assert text.startswith("Recommended: ORT fp32") and "ORT INT8, loses 5.00 points" in text
    # a faster path whose accuracy the lesson did not measure is named, never recommended
    openvino = bench_results.measured_table(
        {"ORT fp32": 0.8, "ORT INT8": 0.2, "OpenVINO INT8": 0.1}, miou)
    text = bench_results.recommend(openvino)
    assert text.startswith("Recommended: ORT INT8") and "OpenVINO INT8, has no mIoU" in text
    assert "make bench" in bench_results.recommend(bench_results.measured_table({}))


def test_this_machine_beside_the_reference_runs(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(ZEN5))
    mine = bench_results.measured_table({"ORT fp32": 1.0, "ORT INT8": 0.5},
                                        {"ORT fp32": 80.0, "ORT INT8": 80.0})
    table = bench_results.beside_references(mine, bench_results.load_runs(path), "My CPU",
                                            size=256)
    assert list(table.columns) == ["this machine: My CPU",
                                   "AMD Zen 5: 2-core AMD EPYC (Zen 5), 512x512",
                                   "Intel with AMX: no run yet"]
    assert list(table.index) == ["ORT fp32", "ORT INT8", "OpenVINO INT8"]
    assert table.loc["ORT INT8", "this machine: My CPU"] == 2.0
    assert table.loc["OpenVINO INT8", "AMD Zen 5: 2-core AMD EPYC (Zen 5), 512x512"] == 4.0
    assert table["Intel with AMX: no run yet"].isna().all()
    assert pd.isna(table.loc["OpenVINO INT8", "this machine: My CPU"])


def _conv_model(path, channels: int, layers: int, side: int = 64):
    """A real ONNX model: `layers` 3x3 convolutions of `channels` channels on a side x side map."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        c_in = 3 if i == 0 else channels
        w = numpy_helper.from_array(rng.standard_normal((channels, c_in, 3, 3)).astype(
            np.float32) * 0.1, f"w{i}")
        inits.append(w)
        nodes.append(helper.make_node("Conv", [x, f"w{i}"], [f"y{i}"], pads=[1, 1, 1, 1]))
        x = f"y{i}"
    graph = helper.make_graph(
        nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, channels, side, side])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _median_seconds(path, runs: int = 5) -> float:
    """Notebook 05's measurement: one session, a warm-up run, the median of timed runs."""
    import statistics
    import time

    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"x": np.zeros((1, 3, 64, 64), np.float32)}
    session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_advice_from_timing_real_models(tmp_path):
    """Two real models ~50x apart in work: whichever one plays INT8, the advice follows it."""
    small = _median_seconds(_conv_model(tmp_path / "small.onnx", channels=4, layers=1))
    big = _median_seconds(_conv_model(tmp_path / "big.onnx", channels=32, layers=4))
    miou = {"ORT fp32": 80.0, "ORT INT8": 79.8}
    faster = bench_results.measured_table({"ORT fp32": big, "ORT INT8": small}, miou)
    assert bench_results.recommend(faster).startswith("Recommended: ORT INT8")
    slower = bench_results.measured_table({"ORT fp32": small, "ORT INT8": big}, miou)
    assert bench_results.recommend(slower).startswith("Recommended: ORT fp32")


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

