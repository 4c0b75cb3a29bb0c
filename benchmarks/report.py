"""benchmarks/RESULTS.md and images/bench_latency.png from one run's results (see run_all.py).

Every number on the page comes from the run's results.json, from results_gpu.json (written by
bench_gpu.py on a machine with a GPU) and from results_int8_amx.json (the int8 kernel paths
measured on an Intel CPU with AMX); nothing here is typed by hand.
"""

from __future__ import annotations

import time
from pathlib import Path

from summary import figure_median

#: colours of the plot by precision
COLOURS = {"fp32": "#8c8c8c", "bf16": "#4c72b0", "int8": "#55a868"}


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def load_note(results: dict, machine: dict) -> list[str]:
    """How busy the machine was: the 1-minute load average after each benchmark."""
    loads = {name: r["load_average"][0] for name, r in results.items() if r.get("load_average")}
    if not loads:
        return []
    cores = machine.get("logical_cores") or 1
    text = ("Load on the machine: 1-minute load average after each benchmark "
            + ", ".join(f"{name} {value:.1f}" for name, value in loads.items())
            + f", on {cores} logical cores.")
    unrecorded = [name for name in results if name not in loads]
    if unrecorded:
        text += (f" Not recorded for {', '.join(unrecorded)}: their figures come from an "
                 "earlier `make bench` (see their wall times below).")
    if max(loads.values()) > cores:
        text += (" Other work shared the cores during this run. PyTorch eager suffers most from "
                 "that (its OpenMP threads wait for each other at every layer), ONNX Runtime "
                 "(no spinning threads) and OpenVINO much less, so every ratio to eager fp32 "
                 "is inflated; fractions of the limits, measured under the same load, hold "
                 "better.")
    return [text, ""]


def summary_section(summary: dict, machine: dict, results: dict | None = None) -> list[str]:
    out = [f"## Summary: {machine.get('name', machine.get('cpu'))}", ""]
    out += load_note(results or {}, machine)
    limits = summary.get("limits", {})
    if limits:
        out += ["Matrix-multiplication limits measured in this run (`bench_limits.py`: the best "
                "single run of any engine on one large GEMM or one large convolution):", "",
                "| precision | limit | engine and shape that reached it | shapes tried |",
                "|---|---|---|---|"]
        out += [f"| {p} | {fmt(v['value'])} {v['unit']} | {v['engine']} | {v['gemm']} |"
                for p, v in limits.items()]
        out.append("")
    for size, rows in summary.get("sizes", {}).items():
        out += [f"### PSPNet R50-D8 at {size}", "",
                "| path | precision | latency | vs eager fp32 | throughput | of its limit "
                "| argmax agreement | mIoU (smoke) | mIoU drop |", "|---" * 9 + "|"]
        for path, r in rows.items():
            unit = "GOP/s" if r["precision"] == "int8" else "GFLOP/s"
            out.append(
                f"| {r['engine']} (`{path}`) | {r['precision']} | {fmt(r['latency_s'])} s | "
                f"{fmt(r['vs_eager'])}× | {fmt(r['throughput'])} {unit} | "
                f"{_pct(r['fraction_of_limit'])} | {fmt(r['argmax_agreement_pct'], 4)} % | "
                f"{fmt(r['miou'], 4)} | {fmt(r['miou_drop'], 2)} |")
        out.append("")
    t = summary.get("targets", {})
    if t:
        out += [f"Targets at {t['size']}:", ""]
        if t["best_path"]:
            out.append(f"- Fastest path within {t['max_miou_drop']} mIoU of eager fp32: "
                       f"`{t['best_path']}`, {fmt(t['best_vs_eager'])}× eager fp32 "
                       f"(target ≥ {t['speedup_target']:g}×: "
                       f"{'met' if t['speedup_met'] else 'not met'}), mIoU drop "
                       f"{fmt(t['best_miou_drop'], 2)}.")
        if t.get("int8_ceiling_vs_eager"):
            out.append(f"- Ceiling on this machine: the whole network at the measured int8 GEMM "
                       f"limit would be {fmt(t['int8_ceiling_vs_eager'])}× eager fp32.")
        out.append(f"- ONNX Runtime fp32 reaches {_pct(t['ort_fp32_fraction'])} of the measured "
                   f"fp32 limit (target ≥ {_pct(t['ort_fp32_target'])}: "
                   f"{'met' if t['ort_fp32_met'] else 'not met'}).")
        out.append("- INT8 paths as a fraction of the measured int8 limit: " + ", ".join(
            f"`{p}` {_pct(f)}" for p, f in t["int8_fractions"].items()) + ".")
        if t["fractions_over_one"]:
            out.append("- Above 1: " + ", ".join(f"{k} ({v:.2f})" for k, v in
                                                 t["fractions_over_one"].items()) +
                       ". A network can beat the GEMM limit only by doing fewer operations "
                       "than counted (for example Winograd convolutions, which OpenVINO may "
                       "pick for 3x3 fp32 layers), or when the limit's run was slowed by other "
                       "load on a shared machine.")
        else:
            out.append("- Every fraction of a limit is at most 1.")
        out.append("")
    return out


def int8_section(result: dict) -> list[str]:
    prof, kernels = result.get("profile"), result.get("kernels", {})
    if not prof:
        return []
    total = prof["ms_per_run"]
    out = ["## Where the INT8 time goes (ONNX Runtime profiler)", "",
           f"Kernel time of one run of the quantized R50-D8 graph: {total:.0f} ms "
           f"(form `{result.get('chosen_target')}`, chosen for this CPU).", "",
           "| operator | kernel time | share | nodes ORT runs |", "|---|---|---|---|"]
    out += [f"| {op} ({r['category']}) | {r['ms']:.1f} ms | {100 * r['share']:.1f} % | "
            f"{r['nodes']} |" for op, r in prof["by_op"].items()]
    conv = prof["categories"].get("quantized Conv", 0.0)
    fp32 = ", ".join(f"{n} {op}" for op, n in prof["fp32_compute_nodes"].items()) or "none"
    fp32_conv = prof["ran"].get("Conv", 0) + prof["ran"].get("FusedConv", 0)
    out += ["", f"- {100 * conv / total:.0f} % of the kernel time is in the "
            f"{prof['ran'].get('QLinearConv', 0)} quantized convolutions "
            f"({fp32_conv} convolutions stay fp32); {100 - 100 * conv / total:.0f} % is "
            "everything else.",
            f"- Compute nodes that stay fp32: {fp32}: the pyramid pooling's averaging matrices "
            "(MatMul), the upsampling Resizes, the Concat of the pooled maps with the "
            "backbone's features, and what sits between them (only convolutions are "
            "quantized; ORT quantizes residual Adds itself when both inputs are quantized).",
            f"- Q/DQ: quantize_static writes {prof['qdq_written']} QuantizeLinear/"
            f"DequantizeLinear nodes; after ORT's fusions (QLinearConv, QLinearAdd) "
            f"{prof['qdq_left']} remain, at the borders of those fp32 nodes.", ""]
    figures = result.get("figures", {})
    forms = {k: v for k, v in figures.items() if k.startswith("ORT INT8 ")}
    if forms:
        out += ["The same quantized model in each form, and the alternatives (median latency):",
                "", "| variant | latency |", "|---|---|"]
        out += [f"| {k.split(', ', 1)[1]} | {fmt(v['median'])} s |" for k, v in forms.items()]
        out.append("")
    if kernels:
        out += ["One convolution through each ONNX Runtime int8 kernel path (64x64 map):", "",
                "| layer | path | throughput |", "|---|---|---|"]
        out += [f"| {layer} | {label} | {fmt(r['gops'])} GOP/s |"
                for layer, paths in kernels.items() for label, r in paths.items()]
        out.append("")
    return out


def families_section(runs: dict | None) -> list[str]:
    """Every CPU family's stored run (results.json ``runs``): machine, size, × ORT fp32 per path.

    Notebook 05 shows the same ratios beside the student's own measurement. A reference family
    without a run is listed with the reason it is missing.
    """
    if not runs:
        return []
    out = ["## Reference runs by CPU family", "",
           "`results.json` keeps one run per CPU family; `make bench` replaces only the entry of "
           "the family it ran on. Speed-up over ONNX Runtime fp32 at the largest size each run "
           "measured (notebook 05 puts the student's own measurement beside these):", "",
           "| CPU family | machine | size | ORT INT8 | OpenVINO fp32 | OpenVINO INT8 | notes |",
           "|---|---|---|---|---|---|---|"]
    for family, run in runs.items():
        if "missing" in run:
            out.append(f"| {family} | — | — | — | — | — | {run['missing']} |")
            continue
        sizes = (run.get("summary") or {}).get("sizes") or {}
        size = max(sizes, key=lambda s: int(s.split("x")[0])) if sizes else None
        rows = sizes.get(size) or {}
        base = (rows.get("ort_fp32") or {}).get("latency_s")

        def ratio(path: str, rows: dict = rows, base: float | None = base) -> str:
            t = (rows.get(path) or {}).get("latency_s")
            return f"{base / t:.2f}×" if base and t else "—"

        runs_of = sorted({f.get("runs") for name, f in (run.get("results") or {}).get(
            "inference", {}).get("figures", {}).items() if name.startswith("latency ")})
        note = (run.get("note") or "") or (f"{'/'.join(map(str, runs_of))} timed runs per path"
                                           if runs_of else "")
        out.append(f"| {family} | {(run.get('machine') or {}).get('name', '?')} | {size or '—'} | "
                   f"{ratio('ort_int8')} | {ratio('openvino_fp32')} | {ratio('openvino_int8')} "
                   f"| {note} |")
    out.append("")
    return out


def amx_section(amx: dict | None) -> list[str]:
    """The int8 kernel paths on an Intel CPU with AMX (results_int8_amx.json)."""
    if not amx:
        return []
    device = amx["device"]
    out = [f"## INT8 kernel paths on a CPU with AMX: {device['name']} ({amx['date']})", "",
           f"{amx['about']} ISA: {device['isa']}; ONNX Runtime {device['onnxruntime']}.", "",
           "| layer | path | latency | throughput |", "|---|---|---|---|"]
    out += [f"| {layer} | {label} | {r['ms']:.1f} ms | {fmt(r['gops'])} GOP/s |"
            for layer, paths in amx["int8_kernels"].items() for label, r in paths.items()]
    out += ["", "| GEMM 3072³ | throughput |", "|---|---|"]
    out += [f"| {k} | {fmt(v)} G/s |" for k, v in amx["gemm_3072"].items()]
    out += ["", "ONNX Runtime's symmetric-weight convolution kernels (ConvSym, the form "
            "`quantize_static` writes by default) have no AMX version; with weight zero point -1 "
            "the same convolution goes through the quantized GEMM, which uses the AMX tiles. "
            "`helpers.onnx.quantize_int8` therefore writes the `amx` form on CPUs with "
            "`amx_int8` and the `vnni` form elsewhere.", ""]
    return out


def figures_section(name: str, result: dict) -> list[str]:
    if result.get("error"):
        return [f"## {name}: FAILED", "", result["error"], ""]
    wall = f" ({result['wall_s'] / 60:.1f} min)" if result.get("wall_s") else ""
    out = [f"## {name}: all figures{wall}", "", "| figure | median | min – max | runs | unit |",
           "|---|---|---|---|---|"]
    for fig, s in result.get("figures", {}).items():
        out.append(f"| {fig} | {fmt(s['median'])} | {fmt(s['min'])} – {fmt(s['max'])} "
                   f"| {s['runs']} | {s['unit']} |")
    if result.get("notes"):
        out += ["", result["notes"]]
    out.append("")
    return out


#: RESULTS.md's grading section (bench_grade.py) lies between these two lines.
GRADE_START = "<!-- grading figures written by benchmarks/bench_grade.py -->"
GRADE_END = "<!-- end of the grading figures -->"


def _overhead_lines(grade: dict) -> list[str]:
    """The sandbox's overhead: paired rounds when the run has them, and between the whole runs."""
    p, pairs = grade["projection"], grade.get("paired")
    runs = p.get("sandbox_overhead_runs", p["sandbox_overhead"])
    if not pairs:
        return [f"- The sandbox's overhead per hand-in, JOBS=1 sandboxed against unsandboxed: "
                f"**{runs:+.1%}** (target at most +5 %)."]
    cpu = pairs["grader_cpu_s_per_hand_in"]
    return [f"- The sandbox's overhead per hand-in, paired ({pairs['rounds']} rounds, a sandboxed "
            "and an unsandboxed server grading each notebook one after the other, the order "
            "swapped every round): **" + f"{pairs['overhead']:+.1%}** (target at most +5 %); per "
            "notebook, the median of the rounds' ratios: " + ", ".join(
                f"{n[:2]} {v:+.1%}" for n, v in pairs["per_notebook"].items())
            + f". The grader's own CPU per hand-in (the watchdog polling /proc, the results' "
            f"pipe): {cpu['sandboxed']:.2f} s sandboxed, {cpu['unsafe']:.2f} s unsandboxed.",
            f"- Between the whole JOBS=1 runs above, sandboxed against unsandboxed: {runs:+.1%}. "
            "They ran minutes apart, one after the other, so the machine's drift between them "
            "counts too; the paired figure is the sandbox's own."]


def grading_section(grade: dict) -> list[str]:
    """How fast `make grade` grades, what the sandbox costs, a class of 1,000 projected."""
    m, p, runs = grade["machine"], grade["projection"], grade["runs"]
    out = [GRADE_START, f"## Grading a class ({grade['date']}, {m.get('name', m.get('cpu'))})",
           "", f"`benchmarks/bench_grade.py`: {grade['students']} students hand in the solutions "
           f"of {', '.join(grade['notebooks'])} under SMOKE=1, graded three times. Hand-ins per "
           "hour count the hand-in phase only (the course and the truths are made once per "
           "grading run).", "",
           "| run | hand-ins | s per hand-in | hand-ins per hour | truths (s) | peak memory of a "
           "kernel | all full marks |", "|---|---|---|---|---|---|---|"]
    for label, run in runs.items():
        how = "sandbox" if run["sandboxed"] else "UNSAFE_NO_SANDBOX=1"
        out.append(f"| {label}: JOBS={run['jobs']}, {how} "
                   f"| {run['hand_ins']} | {run['seconds_per_hand_in']:.1f} | "
                   f"{run['per_hour']:.0f} | {run['truths_s']:.0f} | "
                   f"{run['peak_memory_mb']:.0f} MiB | {run['full_marks']} |")
    per = runs.get("jobs1", {}).get("sandbox_s_per_notebook", {})
    if per:
        out += ["", "One hand-in on its JOBS=1 grading server (the server started, its libraries "
                "imported and the fixtures and truths made before the hand-ins; every task forked "
                "from the hand-in's process): " + ", ".join(
                    f"{n} {s:.1f} s" for n, s in per.items())
                + f"; mean **{sum(per.values()) / len(per):.1f} s** (target at most 5 s)."]
    out += ["", f"- JOBS=2 / JOBS=1 on {m.get('logical_cores', '?')} cores: "
            f"**{p['speedup']:.2f}×** (target 1.8×); the same grades in all three runs: "
            f"{p['same_grades']}.",
            *_overhead_lines(grade),
            f"- A class of 1,000 students × 6 notebooks ({p['class_hand_ins']:,} hand-ins), "
            "modelled as truths + hand-ins × (s per hand-in at JOBS=1) / (workers × "
            f"efficiency), efficiency = speed-up / 2 = {p['efficiency']:.2f}: "
            f"**{p['one_machine_h']:.1f} h** on one 16-core machine (16 workers), "
            f"**{p['cluster_h']:.2f} h** on a 10-node cluster of them (160 workers; target "
            "at most 1 h).", GRADE_END]
    return out


def markdown(results: dict, info: dict, summary: dict, quick: bool,
             gpu: dict | None = None, amx: dict | None = None,
             grade: dict | None = None, runs: dict | None = None) -> str:
    """RESULTS.md: machine, summary, the runs of every CPU family, INT8 profile, then every
    benchmark's figures."""
    out = ["# Benchmark results", "",
           f"Written by `make bench` (`benchmarks/run_all.py{' --quick' if quick else ''}`) on "
           f"{time.strftime('%Y-%m-%d')}. Machines differ: compare ratios and fractions of the "
           "limits measured in the same run, not seconds across machines.", "",
           "| machine | |", "|---|---|"]
    for key, value in info.items():
        if key == "isa":
            value = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in value.items())
        out.append(f"| {key} | {value} |")
    out += ["", "![latency](../images/bench_latency.png)", ""]
    out += summary_section(summary, info, results)
    out += families_section(runs)
    out += int8_section(results.get("int8", {}))
    out += amx_section(amx)
    for name, result in results.items():
        out += figures_section(name, result)
    if gpu:
        device = gpu.get("device", {})
        out += [f"## GPU: {device.get('name', 'unknown device')} ({gpu.get('date', '')})", "",
                "Measured by `bench_gpu.py` on that machine, not on the CPU above "
                "(benchmarks/results_gpu.json).", ""]
        out += figures_section("GPU", gpu)[2:]
    if grade:
        out += [""] + grading_section(grade)
    return "\n".join(out)


#: README.md's figures between these two lines are rewritten by every `make bench`
README_START = "<!-- figures written by make bench (benchmarks/report.py): do not edit by hand -->"
README_END = "<!-- end of make bench's figures -->"
#: short names of the paths shown in the README
README_PATHS = {"eager_fp32": "PyTorch eager fp32", "ort_fp32": "ORT fp32", "ort_int8": "ORT INT8",
                "openvino_int8": "OpenVINO INT8"}


def _median(results: dict, bench: str, figure: str) -> float | None:
    return figure_median(results.get(bench, {}).get("figures", {}), figure)


def readme_rows(results: dict, info: dict, summary: dict) -> list[str]:
    """The README's table of headline figures, from the same run as RESULTS.md."""
    rows = [f"| machine | {info.get('name', info.get('cpu', 'unknown'))}; torch "
            f"{info.get('torch', '?')}, onnxruntime {info.get('onnxruntime', '?')}"
            + (f", openvino {str(info['openvino']).split('-')[0]}" if info.get("openvino") else "")
            + " |"]
    notebooks = {name.split()[1].split("_")[0]: f["median"] for name, f in
                 results.get("notebooks", {}).get("figures", {}).items()
                 if name.startswith("notebook ")}
    total = _median(results, "notebooks", "notebooks, all together")
    if total is not None:
        rows.append(f"| all {len(notebooks)} notebooks under `SMOKE=1` (`make test`'s settings) | "
                    f"{total:.0f} s (" + ", ".join(f"{k}: {v:.0f} s" for k, v in notebooks.items())
                    + ") |")
    train = {k: _median(results, "train", f"smoke {k}") for k in (
        "training, 200 iterations, total (cpu)", "training, seconds per iteration (cpu)",
        "training, peak memory (RSS)", "training, validation mIoU")}
    if None not in train.values():
        total_s, per_it, rss, miou = train.values()
        rows.append(f"| smoke training, 200 iterations on the CPU | {total_s:.1f} s ({per_it:.3f} "
                    f"s/iteration, {rss:.0f} MiB peak RSS), val mIoU {miou:.1f} on the demo data |")
    scan = _median(results, "stats", "statistics scan, 2913 masks, 2 processes")
    if scan is not None:
        rows.append(f"| class-statistics scan over 2,913 VOC-size masks | {scan:.2f} s "
                    "(2 processes) |")
    sizes = summary.get("sizes") or {}
    if sizes:
        size = list(sizes)[-1]
        paths = sizes[size]
        shown = [p for p in README_PATHS if p in paths]
        rows.append(f"| PSPNet R50-D8 at {size.replace('x', '×')}, one image: "
                    + " / ".join(README_PATHS[p] for p in shown)
                    + " | " + " / ".join(f"{fmt(paths[p]['latency_s'])} s" for p in shown)
                    + " (" + ", ".join(f"{paths[p]['vs_eager']:.2f}×" for p in shown[1:])
                    + " eager) |")
        t = summary.get("targets") or {}
        if t.get("best_path"):
            best = README_PATHS.get(t["best_path"], t["best_path"])
            rows.append(f"| fastest CPU path within {t['max_miou_drop']:g} mIoU of eager fp32 | "
                        f"{best}, {t['best_vs_eager']:.2f}× eager "
                        f"(target {t['speedup_target']:g}×), "
                        f"mIoU drop {fmt(t['best_miou_drop'], 2)}; the whole network at the "
                        f"measured int8 limit would be {fmt(t.get('int8_ceiling_vs_eager'))}× |")
        if t.get("ort_fp32_fraction") is not None:
            rows.append(f"| ONNX Runtime fp32 as a fraction of the fp32 limit measured in the run "
                        f"| {_pct(t['ort_fp32_fraction'])} |")
    return ["| what | figure |", "|---|---|", *rows]


def rewrite_readme(readme: Path, rows: list[str]) -> bool:
    """Put `rows` between the README's markers; False (README untouched) without markers."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text("\n".join([head + README_START, *rows, README_END]) + tail)
    return True


def plot_latency(summary: dict, path: Path) -> Path | None:
    """Bars per path at each size: median latency, labelled with its ratio to eager fp32."""
    sizes = summary.get("sizes", {})
    if not sizes:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sizes), figsize=(6.5 * len(sizes), 4.2), squeeze=False)
    for ax, (size, rows) in zip(axes[0], sizes.items(), strict=True):
        names = list(rows)
        med = [rows[p]["latency_s"] for p in names]
        bars = ax.bar(range(len(names)), med,
                      color=[COLOURS.get(rows[p]["precision"], "#c44e52") for p in names])
        for bar, p in zip(bars, names, strict=True):
            ax.annotate(f"{rows[p]['latency_s']:.2f} s\n{rows[p]['vs_eager']:.1f}×",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                        fontsize=7)
        ax.set_xticks(range(len(names)), [p.replace("_", "\n", 1) for p in names], fontsize=7)
        ax.set_title(f"PSPNet R50-D8, {size} (grey fp32, blue bf16, green int8)", fontsize=9)
        ax.set_ylabel("seconds per image (median)")
        ax.set_ylim(0, max(med) * 1.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
