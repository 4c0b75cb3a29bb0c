"""Similarity report: pairs of hand-ins whose answer cells are unusually alike.

``make similarity SUBMITTED=DIR OUT=similarity.html`` (``python -m teacher.similarity DIR OUT``)
compares, notebook by notebook, the **answer cells** of every pair of students in
``DIR/STUDENT/NN_name.ipynb`` with `copydetect <https://github.com/blingenf/copydetect>`_
(MOSS-style winnowing over tokenised code: names become ``V``/``F``/``O``, strings ``S``, comments
and whitespace go, so renaming variables or deleting comments changes nothing). The release's own
stubs (``notebooks/NN_name.ipynb``: signature, docstring, ``pass``) are boilerplate: code every
student received never counts as shared.

A pair's score is copydetect's: the share of one hand-in's fingerprinted tokens that the other
also has, the larger of the two (a copier who added code of their own still ranks high). Pairs at
or above ``--threshold`` (copydetect's display threshold, 33 %) are *flagged* for a person to read
side by side; the report never changes a grade. It writes OUT (HTML, everything escaped) and
OUT's ``.json`` beside it (the pairs, for ``make report SIMILARITY=...``).
"""

from __future__ import annotations

import argparse
import html
import io
import json
import statistics
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
from copydetect import CodeFingerprint, compare_files, defaults

from teacher import tasks

__all__ = ["THRESHOLD", "pairs", "write_html", "write_json", "main"]

#: Score from which a pair is flagged (copydetect's own display threshold).
THRESHOLD = defaults.DISPLAY_THRESHOLD
#: Smallest run of matching tokenised characters that counts (copydetect's noise threshold).
NOISE = defaults.NOISE_THRESHOLD
#: Winnowing window: every run of GUARANTEE tokenised characters is sure to be found.
WINDOW = defaults.GUARANTEE_THRESHOLD - defaults.NOISE_THRESHOLD + 1


def _fingerprint(code: str, boilerplate=None, window: int = WINDOW) -> CodeFingerprint:
    return CodeFingerprint("answer.py", NOISE, window, boilerplate=boilerplate,
                           language="python", fp=io.StringIO(code))


def _boilerplate(stubs: dict[str, str]) -> np.ndarray:
    """Every k-gram hash of the release's stub cells (window 1, as copydetect does)."""
    hashes: list = []
    for code in stubs.values():
        hashes.extend(_fingerprint(code, window=1).hashes)
    return np.unique(np.array(hashes))


def _read(path: Path) -> dict | None:
    try:
        nb = json.loads(path.read_text(errors="replace"))
    except (OSError, ValueError, RecursionError):
        return None
    return nb if isinstance(nb, dict) else None


def _slices(slices, code: str) -> list[list[int]]:
    """copydetect's (2, n) start/end array as [[start, end], ...] within `code`."""
    out = []
    for start, end in zip(*(np.asarray(s, dtype=int).tolist() for s in slices), strict=True):
        start, end = max(0, min(start, len(code))), max(0, min(end, len(code)))
        if end > start:
            out.append([start, end])
    return out


def _notebook_pairs(notebook: str, hand_ins: dict[str, dict[str, str]], stubs: dict[str, str],
                    threshold: float) -> list[dict]:
    order = list(stubs) or sorted({g for answers in hand_ins.values() for g in answers})
    boiler = _boilerplate(stubs)
    prints = {s: {g: _fingerprint(answers.get(g, ""), boiler) for g in order}
              for s, answers in hand_ins.items()}
    coverage = {s: float(sum(fp.token_coverage for fp in fps.values()))
                for s, fps in prints.items()}
    found, scores = [], []
    for a, b in combinations(sorted(prints), 2):
        shared_a = shared_b = 0.0
        matches = []
        for g in order:
            fa, fb = prints[a][g], prints[b][g]
            tokens, (share_a, share_b), slices = compare_files(fa, fb)
            if tokens <= 0:
                continue
            shared_a += share_a * fa.token_coverage
            shared_b += share_b * fb.token_coverage
            matches.append(dict(task=g, tokens=int(tokens), a_share=float(share_a),
                                b_share=float(share_b), a_code=fa.raw_code, b_code=fb.raw_code,
                                a_slices=_slices(slices[0], fa.raw_code),
                                b_slices=_slices(slices[1], fb.raw_code)))
        score_a = shared_a / coverage[a] if coverage[a] else 0.0
        score_b = shared_b / coverage[b] if coverage[b] else 0.0
        score = float(max(score_a, score_b))
        scores.append(score)
        if matches and score > 0:
            found.append(dict(notebook=notebook, a=a, b=b, score=round(score, 4),
                              a_score=round(float(score_a), 4), b_score=round(float(score_b), 4),
                              tokens=sum(m["tokens"] for m in matches),
                              flagged=bool(score >= threshold), matches=matches))
    median = statistics.median(scores) if scores else 0.0  # of every pair, sharing or not
    for p in found:
        p["median"] = round(median, 4)
    return found


def pairs(submitted_dir: str | Path, release_dir: str | Path | None = None, *,
          threshold: float = THRESHOLD) -> list[dict]:
    """Every pair of hand-ins of the same notebook that share answer code, most alike first.

    `submitted_dir` holds ``STUDENT/NN_name.ipynb``; `release_dir` (default: this repository's
    ``notebooks/``) the release notebooks whose answer cells are the stubs. Each pair is a dict:
    ``notebook``, ``a``, ``b`` (students, a < b), ``score`` (0-1, the larger of ``a_score`` and
    ``b_score``: the share of that hand-in's answer tokens found in the other's), ``tokens``
    (matching tokens), ``flagged`` (score >= `threshold`), ``median`` (the median score of all
    the notebook's pairs, for scale) and ``matches``: per task with shared code, ``task``,
    ``tokens``, ``a_share``/``b_share``, ``a_code``/``b_code`` and ``a_slices``/``b_slices``
    ([start, end] character ranges of the shared code). Pairs sharing nothing are left out.
    """
    submitted = Path(submitted_dir)
    release = Path(release_dir or Path(__file__).resolve().parents[1] / "notebooks")
    notebooks = {p.stem: p for p in sorted(release.glob("[0-9][0-9]_*.ipynb"))}
    if not notebooks:
        raise FileNotFoundError(f"no release notebooks (NN_name.ipynb) in {release}")
    students = sorted(p for p in submitted.iterdir() if p.is_dir())
    found: list[dict] = []
    for name, path in notebooks.items():
        stubs = tasks.answer_cells(_read(path) or {})
        hand_ins = {}
        for folder in students:
            hand_in = folder / f"{name}.ipynb"
            if hand_in.is_symlink() or not hand_in.is_file():
                continue
            nb = _read(hand_in)
            if nb is None:
                print(f"{folder.name}: {hand_in.name} is not a readable notebook; left out",
                      file=sys.stderr)
                continue
            hand_ins[folder.name] = tasks.answer_cells(nb)
        found += _notebook_pairs(name, hand_ins, stubs, threshold)
    found.sort(key=lambda p: (-p["score"], -p["tokens"], p["notebook"], p["a"], p["b"]))
    return found


def _marked(code: str, slices: list[list[int]]) -> str:
    """`code`, escaped, with the shared ranges in <mark>."""
    out, at = [], 0
    for start, end in sorted(slices):
        start = max(start, at)
        if end <= start:
            continue
        out += [html.escape(code[at:start]), "<mark>", html.escape(code[start:end]), "</mark>"]
        at = end
    out.append(html.escape(code[at:]))
    return "".join(out)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:90em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
.side{display:grid;grid-template-columns:1fr 1fr;gap:1em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:90%}
mark{background:#ffd27a}.note{color:#555}
"""


def write_html(found: list[dict], path: str | Path, *, threshold: float | None = None) -> Path:
    """The ranked pairs as one HTML page: a table, then each flagged pair's shared answer code
    side by side (shared code highlighted). `threshold` re-decides ``flagged`` when given."""
    flagged = [p for p in found
               if (p["score"] >= threshold if threshold is not None else p.get("flagged"))]
    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             "<title>Similar hand-ins</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>Similar hand-ins</h1>",
             "<p class='note'>Answer cells only, tokenised (names, comments and layout do not "
             "matter), the release's stubs left out (copydetect). A score is the share of one "
             "hand-in's answer code also found in the other's. This flags pairs for a person "
             "to read; it changes no grade.</p>"]
    if not flagged:
        parts.append(f"<p>No pair flagged ({len(found)} pairs share some code).</p>")
    else:
        parts.append("<table><tr><th>#</th><th>notebook</th><th>student a</th>"
                     "<th>student b</th><th>score</th><th>a / b</th><th>notebook median</th>"
                     "<th>tasks</th></tr>")
        for i, p in enumerate(flagged, 1):
            parts.append(
                f"<tr><td><a href='#pair{i}'>{i}</a></td><td>{e(p['notebook'])}</td>"
                f"<td>{e(p['a'])}</td><td>{e(p['b'])}</td><td>{p['score']:.0%}</td>"
                f"<td>{p['a_score']:.0%} / {p['b_score']:.0%}</td>"
                f"<td>{p.get('median', 0):.0%}</td>"
                f"<td>{e(', '.join(m['task'] for m in p['matches']))}</td></tr>")
        parts.append("</table>")
        if len(found) > len(flagged):
            parts.append(f"<p class='note'>{len(found) - len(flagged)} more pairs share less "
                         "code; not shown.</p>")
    for i, p in enumerate(flagged, 1):
        parts.append(f"<h2 id='pair{i}'>{i}. {e(p['notebook'])}: {e(p['a'])} and {e(p['b'])} "
                     f"({p['score']:.0%})</h2>")
        for m in p["matches"]:
            parts.append(
                f"<h3>{e(m['task'])} <span class='note'>({m['tokens']} tokens; "
                f"{m['a_share']:.0%} of {e(p['a'])}'s, {m['b_share']:.0%} of {e(p['b'])}'s)"
                "</span></h3><div class='side'>"
                f"<div><b>{e(p['a'])}</b><pre>{_marked(m['a_code'], m['a_slices'])}</pre></div>"
                f"<div><b>{e(p['b'])}</b><pre>{_marked(m['b_code'], m['b_slices'])}</pre></div>"
                "</div>")
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def write_json(found: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(found, indent=1), encoding="utf-8")
    return path


def load(path: str | Path) -> list[dict]:
    """Pairs written by :func:`write_json`; an ``.html`` path reads the ``.json`` beside it."""
    path = Path(path)
    if path.suffix.lower() in (".html", ".htm"):
        path = path.with_suffix(".json")
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submitted", help="folder of STUDENT/NN_name.ipynb hand-ins")
    parser.add_argument("out", help="HTML to write (the pairs also go to its .json beside it)")
    parser.add_argument("--release", help="release notebooks, the stubs (default: notebooks/)")
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help=f"score from which a pair is flagged (default {THRESHOLD})")
    args = parser.parse_args(argv)
    found = pairs(args.submitted, args.release, threshold=args.threshold)
    out = write_html(found, args.out)
    data = write_json(found, out.with_suffix(".json"))
    flagged = sum(p["flagged"] for p in found)
    print(f"{flagged} of {len(found)} pairs flagged → {out} (pairs: {data})")
    for p in [p for p in found if p["flagged"]][:10]:
        print(f"  {p['score']:5.0%}  {p['notebook']}  {p['a']} / {p['b']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
