"""What feedback shows a student: their points per task and one line why, from the verdicts only.

Nothing the hand-in printed, no hidden test, no hidden value and no truth reaches this page:
it is built from :class:`teacher.verdicts.Verdict` objects, and every text on it is escaped.
"""

from __future__ import annotations

import html

__all__ = ["page"]

_STYLE = """body{font-family:system-ui,sans-serif;max-width:52em;margin:2em auto;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4em;
text-align:left;vertical-align:top}.ok{color:#1a7f37}.no{color:#b42318}.pts{white-space:nowrap}"""


def page(student: str, notebook: str, verdicts: list, note: str = "") -> str:
    """The HTML feedback of one notebook hand-in."""
    got = sum(v.points for v in verdicts)
    worth = sum(v.max_points for v in verdicts)
    rows = []
    for v in verdicts:
        mark = '<span class="ok">✓</span>' if v.passed else '<span class="no">✗</span>'
        rows.append(f"<tr><td>{mark} {html.escape(v.task)}</td>"
                    f'<td class="pts">{v.points:g} / {v.max_points:g}</td>'
                    f"<td>{html.escape(v.message)}</td></tr>")
    extra = f"<p>{html.escape(note)}</p>" if note else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(notebook)}"
            f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(notebook)}</h1>"
            f"<p>{html.escape(student)}: <b>{got:g} / {worth:g}</b> points.</p>{extra}"
            "<p>Each task's answer cell was run alone, with what the task gives it, on inputs "
            "you have not seen; a task with several kinds of cases earns the points of each kind "
            "it gets right.</p><table><tr><th>task</th><th>points</th><th>why not full marks"
            f"</th></tr>{''.join(rows)}</table></body></html>")
