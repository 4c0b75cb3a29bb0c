"""Class report: one self-contained HTML page on a grading run.

``make report FEEDBACK=DIR [GRADES=CSV] [SIMILARITY=FILE] OUT=report.html``
(``python -m teacher.report DIR OUT``) reads what ``make grade`` left: ``DIR/verdicts.json``
(every hand-in's points, message, seconds and peak memory per task), ``DIR/messages.csv`` and the
grades CSV (default: the one grades CSV beside DIR; optional ``late_days``/``penalty`` columns).
The page shows, per notebook, a histogram of each task's points and the most common reasons a
task lost points; the time and peak memory of every hand-in; the hand-ins that hit a limit
(MEM_LIMIT, PROC_LIMIT, CPU_LIMIT, WALL_LIMIT, a task's time); late hand-ins; and the top pairs
of ``make similarity`` (its ``.json``, or the ``.html`` with the ``.json`` beside it). Figures
are PNGs drawn with matplotlib (Agg) and inlined as base64: the page is one file to mail.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import re
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["LIMITS", "build", "limit_kind", "main"]

#: Words of a message that mean a limit stopped a task or a hand-in → what to call that limit.
LIMITS = {
    "MEM_LIMIT": "memory (MEM_LIMIT)",
    "PROC_LIMIT": "processes (PROC_LIMIT)",
    "CPU_LIMIT": "CPU time (CPU_LIMIT)",
    "WALL_LIMIT": "hand-in time (WALL_LIMIT, NOTEBOOK_TIMEOUT)",
    "took longer than": "task time (CELL_TIMEOUT or the task's own)",
    "stopped": "stopped (other)",
}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;
text-align:left;vertical-align:top}td.n{text-align:right}
.grid{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-size:90%;color:#333}
.note{color:#555}
"""


def limit_kind(message: str) -> str | None:
    """Which limit a message reports (a value of :data:`LIMITS`), or None."""
    for word, kind in LIMITS.items():
        if word in message:
            return kind
    return None


def _reasons(message: str) -> list[str]:
    """A task's message as single reasons; line numbers of tracebacks folded, so that the same
    mistake counts once ("raised KeyError in line N of your answer")."""
    parts = [p.strip() for p in message.split("; ") if p.strip()]
    return [re.sub(r"\bin line \d+\b", "in line N", p) for p in parts]


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(fig: Figure, caption: str, cls: str) -> str:
    return (f"<figure class='{cls}'><img alt='{html.escape(caption, quote=True)}' "
            f"src='data:image/png;base64,{_png(fig)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def _histogram(points: list[float], worth: float, title: str) -> Figure:
    """Bars: how many hand-ins earned each possible number of points."""
    whole = all(float(p).is_integer() for p in points) and float(worth).is_integer()
    values = (list(range(int(worth) + 1)) if whole and worth <= 20
              else sorted(set(points) | {0.0, worth}))
    counts = Counter(points)
    fig = Figure(figsize=(3.4, 2.4))
    ax = fig.add_subplot()
    labels = [f"{v:g}" for v in values]
    ax.bar(labels, [counts.get(v, 0) for v in values], color="#4c78a8")
    ax.set_xlabel(f"points (of {worth:g})")
    ax.set_ylabel("hand-ins")
    ax.set_title(title, fontsize=9)
    ax.yaxis.get_major_locator().set_params(integer=True)
    return fig


def _times(rows: list[dict]) -> Figure:
    """Seconds and peak memory of every hand-in, one column of dots per notebook."""
    names = sorted({r["notebook"] for r in rows})
    fig = Figure(figsize=(max(5.0, 1.4 * len(names) + 2), 3.2))
    ax_t, ax_m = fig.subplots(1, 2)
    for i, name in enumerate(names):
        mine = [r for r in rows if r["notebook"] == name]
        xs = [i + 0.25 * ((j % 7) - 3) / 3 for j in range(len(mine))]
        ax_t.scatter(xs, [_number(r.get("seconds")) for r in mine], s=14, color="#4c78a8")
        ax_m.scatter(xs, [_number(r.get("peak_memory")) / 2**30 for r in mine], s=14,
                     color="#f58518")
    for ax, label in ((ax_t, "seconds per hand-in"), (ax_m, "peak memory (GiB)")):
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    return fig


def _read_csv(path: str | Path | None) -> list[dict]:
    if not path or not Path(path).is_file():
        return []
    with Path(path).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _table(head: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    e = html.escape
    out = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(
            f"<td class='n'>{e(str(c))}</td>" if i in numeric else f"<td>{e(str(c))}</td>"
            for i, c in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def build(verdicts_json, grades_csv=None, similarity_pairs=None, *, messages_csv=None,
          top: int = 10, reasons: int = 5, leaderboard=None) -> str:
    """The class report as one HTML page.

    `verdicts_json`: the path of ``verdicts.json`` or its list; `grades_csv`: the grades CSV
    (``student,notebook,score,max_score`` and optionally ``late_days``, ``penalty``) or None;
    `similarity_pairs`: :func:`teacher.similarity.pairs`' list, a path to its JSON, or None
    (the `top` pairs are shown); `messages_csv`: default ``messages.csv`` beside a verdicts path;
    `leaderboard`: ``make leaderboard``'s OUT.json (or its list), the students' models ranked.
    """
    if isinstance(verdicts_json, (str, Path)):
        if messages_csv is None:
            messages_csv = Path(verdicts_json).parent / "messages.csv"
        verdicts_json = json.loads(Path(verdicts_json).read_text(encoding="utf-8"))
    rows = [r for r in verdicts_json if isinstance(r, dict)]
    grades = _read_csv(grades_csv)
    messages = _read_csv(messages_csv)
    if isinstance(similarity_pairs, (str, Path)):
        from teacher.similarity import load

        similarity_pairs = load(similarity_pairs)
    e = html.escape

    notebooks = sorted({r["notebook"] for r in rows} | {g["notebook"] for g in grades})
    students = sorted({r["student"] for r in rows} | {g["student"] for g in grades})
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Class report</title>",
             f"<style>{_STYLE}</style></head><body><h1>Class report</h1>",
             f"<p>{len(students)} students, {len(rows)} graded hand-ins of "
             f"{len(notebooks)} notebooks.</p>"]

    # Scores per notebook.
    scored = defaultdict(list)
    for g in grades:
        scored[g["notebook"]].append((_number(g["score"]), _number(g["max_score"])))
    if not grades:
        for r in rows:
            tasks = r.get("tasks") or {}
            scored[r["notebook"]].append((sum(_number(t[0]) for t in tasks.values()),
                                          sum(_number(t[1]) for t in tasks.values())))
    parts.append("<h2>Scores</h2>" + _table(
        ["notebook", "hand-ins", "mean", "median", "full marks", "zero", "of"],
        [[n, len(s), f"{statistics.mean(x for x, _ in s):.2f}",
          f"{statistics.median(x for x, _ in s):g}", sum(x >= m > 0 for x, m in s),
          sum(x == 0 for x, _ in s), f"{max(m for _, m in s):g}"]
         for n, s in sorted(scored.items()) if s], numeric={1, 2, 3, 4, 5, 6}))

    # Per notebook and task: a histogram of points and the most common reasons.
    per_task: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for task, verdict in (r.get("tasks") or {}).items():
            per_task[r["notebook"]][task].append(verdict)
    parts.append("<h2>Tasks</h2>")
    for name in notebooks:
        if name not in per_task:
            continue
        parts.append(f"<h3>{e(name)}</h3><div class='grid'>")
        failing = []
        for task, verdicts in per_task[name].items():
            worth = max(_number(v[1]) for v in verdicts)
            points = [_number(v[0]) for v in verdicts]
            full = sum(p >= worth for p in points)
            parts.append(_figure(
                _histogram(points, worth, f"{name} · {task}"),
                f"{name} · {task}: points of {len(points)} hand-ins (full marks {full}, "
                f"mean {statistics.mean(points):.2f} of {worth:g})", "task-hist"))
            counted = Counter(reason for v in verdicts if len(v) > 2 and v[2]
                              for reason in _reasons(str(v[2])))
            for reason, n in counted.most_common(reasons):
                failing.append([task, n, reason])
        parts.append("</div>")
        if failing:
            parts.append("<h4>Most common reasons for lost points</h4>"
                         + _table(["task", "hand-ins", "reason"], failing, numeric={1}))

    # Time and memory.
    parts.append("<h2>Time and memory per hand-in</h2>")
    if rows:
        parts.append(_figure(_times(rows), "Seconds and peak memory of each hand-in's sandbox, "
                             "per notebook", "times"))
        slow = sorted(rows, key=lambda r: -_number(r.get("seconds")))[:5]
        parts.append("<h4>Slowest</h4>" + _table(
            ["student", "notebook", "seconds", "peak memory (GiB)"],
            [[r["student"], r["notebook"], f"{_number(r.get('seconds')):.1f}",
              f"{_number(r.get('peak_memory')) / 2**30:.2f}"] for r in slow], numeric={2, 3}))

    # Limit hits: one row per hand-in and limit, with the tasks it stopped.
    hits: dict[tuple, dict] = {}
    for r in rows:
        for task, verdict in (r.get("tasks") or {}).items():
            for part in _reasons(str(verdict[2]) if len(verdict) > 2 else ""):
                kind = limit_kind(part)
                if kind:
                    text = part.removeprefix("not graded: ")
                    hit = hits.setdefault((r["student"], r["notebook"], text),
                                          dict(kind=kind, tasks=[]))
                    hit["tasks"].append(task)
    for m in messages:
        for part in m.get("message", "").split("; "):
            kind = limit_kind(part)
            if kind and part.startswith("stopped"):  # the sandbox's own line for the hand-in
                hits.setdefault((m["student"], m["notebook"], part), dict(kind=kind, tasks=[]))
    parts.append("<h2>Limit hits</h2>")
    if hits:
        kinds = Counter(h["kind"] for h in hits.values())
        parts.append("<p>" + "; ".join(f"{e(k)}: {n}" for k, n in kinds.most_common())
                     + "</p>" + _table(
            ["student", "notebook", "limit", "tasks", "message"],
            [[s, n, h["kind"], ", ".join(h["tasks"]) or "the whole hand-in", text]
             for (s, n, text), h in sorted(hits.items())]))
    else:
        parts.append("<p>No hand-in hit a limit.</p>")

    # Late hand-ins.
    if grades and ({"late_days", "penalty"} & set(grades[0])):
        late = [g for g in grades
                if _number(g.get("late_days")) > 0 or _number(g.get("penalty")) > 0]
        parts.append("<h2>Late hand-ins</h2>")
        final = "final_score" in grades[0]
        parts.append(_table(["student", "notebook", "late days", "penalty", "score"]
                            + (["final score"] if final else []),
                            [[g["student"], g["notebook"], g.get("late_days", ""),
                              g.get("penalty", ""), f"{g['score']}/{g['max_score']}"]
                             + ([g["final_score"]] if final else []) for g in late],
                            numeric={2, 3, 5})
                     if late else "<p>None.</p>")

    # Similar pairs.
    if similarity_pairs is not None:
        shown = similarity_pairs[:top]
        parts.append(f"<h2>Similar hand-ins (top {len(shown)} of {len(similarity_pairs)})</h2>"
                     "<p class='note'>From <code>make similarity</code>: for a person to read; "
                     "no grade changes.</p>")
        parts.append(_table(
            ["notebook", "student a", "student b", "score", "flagged", "tasks"],
            [[p["notebook"], p["a"], p["b"], f"{p['score']:.0%}",
              "yes" if p.get("flagged") else "", ", ".join(m["task"] for m in p["matches"])]
             for p in shown], numeric={3}) if shown else "<p>No pairs.</p>")
    # The students' own models on the hidden split.
    if isinstance(leaderboard, (str, Path)):
        leaderboard = json.loads(Path(leaderboard).read_text(encoding="utf-8"))
    if leaderboard is not None:
        parts.append("<h2>The students' models on the hidden split</h2><p class='note'>From "
                     "<code>make leaderboard</code>: mmseg's IoUMetric, outside the sandbox.</p>")
        parts.append(_table(
            ["rank", "student", "mIoU", "aAcc", "why not ranked"],
            [[str(r["rank"]) if r.get("rank") else "", r["student"],
              "" if r.get("mIoU") is None else f"{r['mIoU']:.2f}",
              "" if r.get("aAcc") is None else f"{r['aAcc']:.2f}", r.get("reason", "")]
             for r in leaderboard], numeric={0, 2, 3}) if leaderboard else "<p>None.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _grades_beside(feedback: Path) -> Path | None:
    """The one grades CSV in the folder above `feedback` (where ``make grade`` writes OUT)."""
    found = []
    for path in sorted(feedback.resolve().parent.glob("*.csv")):
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            head = next(csv.reader(f), [])
        if head[:4] == ["student", "notebook", "score", "max_score"]:
            found.append(path)
    return found[0] if len(found) == 1 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("feedback", help="make grade's feedback folder (verdicts.json)")
    parser.add_argument("out", help="HTML to write")
    parser.add_argument("--grades", help="the grades CSV (default: the one beside FEEDBACK)")
    parser.add_argument("--similarity", help="make similarity's .json (or its .html)")
    parser.add_argument("--top", type=int, default=10, help="similar pairs shown (default 10)")
    parser.add_argument("--leaderboard", help="make leaderboard's OUT.json")
    args = parser.parse_args(argv)
    feedback = Path(args.feedback)
    if not (feedback / "verdicts.json").is_file():
        print(f"make report: no verdicts.json in {feedback} (make grade writes it)",
              file=sys.stderr)
        return 2
    grades = Path(args.grades) if args.grades else _grades_beside(feedback)
    if grades is None:
        print("make report: no single grades CSV beside the feedback folder; "
              "the report goes on without scores' CSV (set GRADES=FILE)", file=sys.stderr)
    page = build(feedback / "verdicts.json", grades, args.similarity, top=args.top,
                 leaderboard=args.leaderboard)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    print(f"class report → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
