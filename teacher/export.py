"""Export the grades to an LMS gradebook: `python -m teacher.export GRADES --format F --out FILE`.

From the CSV of `make grade` (``final_score`` when :mod:`teacher.late` added it, else ``score``):
one row per student, one column per notebook, and the total.

- ``canvas``: Canvas's gradebook import CSV. Columns ``Student,ID,SIS User ID,SIS Login ID,
  Section``, one per notebook, then ``Final Points`` (the total); the second row is
  ``Points Possible``. Canvas matches a student by ``ID`` (the Canvas user id: the roster's
  ``canvas_id``, or the id in a Canvas download's file names, from ``--collected``) or the SIS
  ids. A notebook column is ``NN_name (ASSIGNMENT_ID)`` when ``--canvas-ids`` gives the Canvas
  assignment's id (the import updates that assignment); a bare ``NN_name`` makes Canvas create a
  new assignment with the Points Possible given. ``Final Points`` is one of Canvas's read-only
  columns: the import ignores it (Canvas computes its own total).
- ``moodle``: Moodle's "Import grades: CSV file". The first column identifies the student
  (``Email address``, ``ID number`` or ``Username``, from the roster); in Moodle, map it
  ("Map from") to the user field of the same name ("Map to": email address, ID number or
  username), each notebook column to its grade item, and ``Total`` to "Ignore" (Moodle computes
  the course total).
- ``plain``: ``student``, one column per notebook, ``total``.

The written answers a teacher grades in formgrader (:mod:`teacher.manual`) are in ``score`` and
``max_score`` once merged (``make grade`` merges them, ``make manual GRADES=...`` again after
grading); an answer still waiting for its grade counts 0, and the export says how many wait.

The roster (``--roster students.csv``) maps the course's student ids (the folders of
``make grade``) to the LMS's: a header with ``student`` and any of ``name``, ``canvas_id``,
``sis_user_id``, ``sis_login_id``, ``section``, ``email``, ``id_number``, ``username``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

__all__ = ["FORMATS", "ROSTER_FIELDS", "read_grades", "read_roster", "export", "main"]

FORMATS = ("canvas", "moodle", "plain")
ROSTER_FIELDS = ("student", "name", "canvas_id", "sis_user_id", "sis_login_id", "section",
                 "email", "id_number", "username")
CANVAS_FIRST = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_TOTAL = "Final Points"
#: Moodle's identifier column: roster field → (CSV header, Moodle's "Map to" field).
MOODLE_IDS = {"email": ("Email address", "Email address"), "id_number": ("ID number", "ID number"),
              "username": ("Username", "Username")}
_ALIASES = {"email_address": "email", "idnumber": "id_number", "id": "canvas_id",
            "canvas_user_id": "canvas_id", "full_name": "name", "user_name": "username"}


def _num(x: float) -> str:
    return f"{round(float(x), 4):.10g}"


def read_grades(path: str | Path) -> tuple[dict[str, dict[str, float]], dict[str, float], str]:
    """(student → notebook → score, notebook → max score, the score column used)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        missing = {"student", "notebook", "max_score"} - set(fields)
        column = "final_score" if "final_score" in fields else "score"
        if missing or column not in fields:
            raise ValueError(f"{path}: expected the columns student,notebook,score,max_score "
                             f"(from make grade), got {','.join(fields)}")
        scores: dict[str, dict[str, float]] = {}
        points: dict[str, float] = {}
        for line, row in enumerate(reader, 2):
            try:
                score, worth = float(row[column]), float(row["max_score"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {line}: {column} and max_score must be "
                                 "numbers") from None
            scores.setdefault(row["student"], {})[row["notebook"]] = score
            points[row["notebook"]] = max(points.get(row["notebook"], 0.0), worth)
    return scores, points, column


def read_roster(path: str | Path | None) -> dict[str, dict[str, str]]:
    """student → {roster field: value} (headers read case-insensitively; ``Email address``,
    ``ID number``, ``Username`` as Moodle names them also work)."""
    if not path:
        return {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        keys = {h: _ALIASES.get(k, k) for h in reader.fieldnames or []
                for k in [re.sub(r"[\s-]+", "_", h.strip().lower())]}
        if "student" not in keys.values():
            raise ValueError(f"{path}: the roster needs a 'student' column (the course's "
                             f"student ids) and any of {', '.join(ROSTER_FIELDS[1:])}")
        roster = {}
        for row in reader:
            entry = {keys[h]: (v or "").strip() for h, v in row.items() if h in keys}
            roster[entry["student"]] = entry
    return roster


def _collected_ids(path: str | Path | None) -> dict[str, str]:
    """student → Canvas user id, from a Canvas download's collected.json."""
    if not path:
        return {}
    data = json.loads(Path(path).read_text())
    return {s: e["lms_id"] for s, e in data.get("students", {}).items()
            if e.get("lms") == "canvas" and e.get("lms_id")}


def export(grades: str | Path, fmt: str, out: str | Path, *, roster: str | Path | None = None,
           collected: str | Path | None = None, canvas_ids: dict[str, str] | None = None,
           moodle_id: str | None = None) -> list[str]:
    """Write `out` in format `fmt` from the grades CSV; return warnings (students the LMS
    cannot match, and for Moodle which column to map)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    scores, points, _ = read_grades(grades)
    notebooks = sorted(points)
    people = read_roster(roster)
    lms_ids = _collected_ids(collected)
    warnings = []
    with open(grades, newline="") as f:  # written answers not graded yet (teacher.manual)
        waiting = sum(int(r.get("manual_pending") or 0) for r in csv.DictReader(f))
    if waiting:
        warnings.append(f"{waiting} written answers are not graded yet and count 0: grade them "
                        "in formgrader, then make manual GRADES=... (see source/README.md)")
    students = sorted(scores)
    unlisted = [s for s in students if people and s not in people]
    if unlisted:
        warnings.append(f"not in the roster: {', '.join(unlisted)}")

    def cells(student: str) -> list[str]:
        mine = scores[student]
        return [_num(mine[n]) if n in mine else "" for n in notebooks] + \
            [_num(sum(mine.values()))]

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if fmt == "plain":
            writer.writerow(["student", *notebooks, "total"])
            writer.writerows([s, *cells(s)] for s in students)
        elif fmt == "canvas":
            ids = canvas_ids or {}
            writer.writerow(CANVAS_FIRST + [f"{n} ({ids[n]})" if n in ids else n
                                            for n in notebooks] + [CANVAS_TOTAL])
            writer.writerow(["    Points Possible", "", "", "", ""]
                            + [_num(points[n]) for n in notebooks] + ["(read only)"])
            unmatched = []
            for s in students:
                p = people.get(s, {})
                canvas_id = p.get("canvas_id") or lms_ids.get(s, "")
                if not (canvas_id or p.get("sis_user_id") or p.get("sis_login_id")):
                    unmatched.append(s)
                writer.writerow([p.get("name") or s, canvas_id, p.get("sis_user_id", ""),
                                 p.get("sis_login_id", ""), p.get("section", ""), *cells(s)])
            if unmatched:
                warnings.append("no Canvas ID or SIS id (Canvas cannot match them; give "
                                f"--roster or --collected): {', '.join(unmatched)}")
        else:
            field = moodle_id or next((k for k in MOODLE_IDS if any(
                p.get(k) for p in people.values())), "username")
            if field not in MOODLE_IDS:
                raise ValueError(f"moodle identifier must be one of {', '.join(MOODLE_IDS)}")
            header, map_to = MOODLE_IDS[field]
            writer.writerow([header, "Student", *notebooks, "Total"])
            blank = []
            for s in students:
                value = people.get(s, {}).get(field, "") if people else s
                if not value:
                    blank.append(s)
                writer.writerow([value, s, *cells(s)])
            if not people:
                warnings.append(f"no roster: the '{header}' column holds the course's student "
                                "ids; they must be the Moodle usernames (else give --roster)")
            if blank:
                warnings.append(f"no {header} in the roster: {', '.join(blank)}")
            warnings.append(f"Moodle: Grades > Import > CSV file; Map from '{header}' to "
                            f"'{map_to}'; map each notebook column to its grade item, "
                            "'Student' and 'Total' to Ignore")
    return warnings


def _parse_ids(text: str) -> dict[str, str]:
    ids = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"--canvas-ids: expected NN_name=ASSIGNMENT_ID, got {part!r}")
        ids[name.strip()] = value.strip()
    return ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grades", help="grades CSV of make grade (or of teacher.late)")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--roster", help="CSV: student plus the LMS's ids (see above)")
    parser.add_argument("--collected", help="collected.json of a Canvas download (its user ids)")
    parser.add_argument("--canvas-ids", default="",
                        help="Canvas assignment ids: 00_environment=123,01_dataset=124,...")
    parser.add_argument("--moodle-id", choices=sorted(MOODLE_IDS),
                        help="Moodle's identifier column (default: the first the roster has "
                        "of email, id_number, username)")
    args = parser.parse_args(argv)
    try:
        warnings = export(args.grades, args.format, args.out, roster=args.roster,
                          collected=args.collected, canvas_ids=_parse_ids(args.canvas_ids),
                          moodle_id=args.moodle_id)
    except (ValueError, FileNotFoundError) as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 2
    for w in warnings:
        print(w)
    print(f"{args.format} gradebook → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
