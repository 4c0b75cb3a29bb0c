"""Deadlines and late penalties (``course.toml``): `python -m teacher.late [GRADES]`.

``course.toml`` at the repository root holds ``[deadlines]`` (one ISO-8601 time with a time zone
per notebook) and ``[late]``: ``rule`` (``"none"``, ``"cap"`` or ``"per_day"``), ``per_day`` (the
fraction of a notebook's max score lost per started day late), ``cap`` (the most a late hand-in
scores, as a fraction of max) and ``grace_minutes`` (a hand-in this late still counts on time).

A hand-in's time comes from ``collected.json`` (:mod:`teacher.collect`); a hand-in it does not
list is timed by its file's mtime. Lateness is measured from the deadline itself: with 15 grace
minutes, a hand-in 20 minutes late is 20 minutes (one started day) late.

Without GRADES the command checks the configuration and prints the deadlines; with GRADES (the
CSV of `make grade`) it writes the CSV again with ``late_days,penalty,final_score,time_source``
(to ``--out``, default: GRADES itself).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import tomllib

__all__ = ["COLUMNS", "Config", "ConfigError", "RULES", "apply", "lateness", "load", "rows",
           "main"]

ROOT = Path(__file__).resolve().parents[1]
RULES = ("none", "cap", "per_day")
#: The columns of `rows`: the grades CSV's and the four this module adds.
COLUMNS = ["student", "notebook", "score", "max_score", "late_days", "penalty", "final_score",
           "time_source"]


class ConfigError(ValueError):
    """``course.toml`` is missing, not TOML, or has a bad value (the message names file and key)."""


@dataclass(frozen=True)
class Config:
    """The course's deadlines and late rule."""

    deadlines: dict[str, datetime] = field(default_factory=dict)  #: notebook → deadline (aware)
    rule: str = "none"
    per_day: float = 0.0
    cap: float = 1.0
    grace_minutes: float = 0.0


def _deadline(value: object, where: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{where}: not an ISO-8601 time: {value!r} (write e.g. "
                              "\"2025-10-17T23:59:00+02:00\")") from None
    if not isinstance(value, datetime):
        raise ConfigError(f"{where}: expected an ISO-8601 time with a time zone, "
                          f"got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(f"{where}: {value.isoformat()} has no time zone (add +02:00 or Z)")
    return value


def _fraction(late: dict, key: str, default: float, where: str) -> float:
    value = late.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{where}: [late] {key} must be a number from 0 to 1, got {value!r}")
    return float(value)


def load(path: str | Path = ROOT / "course.toml", notebooks: list[str] | None = None) -> Config:
    """The configuration in `path`; ConfigError names the file and key of a bad value. With
    `notebooks`, a deadline for another name is an error (a typo would silently disable it)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (copy the course's course.toml)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for table in ("deadlines", "late"):
        if not isinstance(data.get(table, {}), dict):
            raise ConfigError(f"{path}: [{table}] must be a table")
    unknown = set(data) - {"deadlines", "late"}
    if unknown:
        raise ConfigError(f"{path}: unknown table or key {sorted(unknown)[0]!r} "
                          "(expected [deadlines] and [late])")
    deadlines = {}
    for name, value in data.get("deadlines", {}).items():
        if notebooks is not None and name not in notebooks:
            raise ConfigError(f"{path}: [deadlines] {name}: not a course notebook "
                              f"({', '.join(notebooks)})")
        deadlines[name] = _deadline(value, f"{path}: [deadlines] {name}")
    late = data.get("late", {})
    unknown = set(late) - {"rule", "per_day", "cap", "grace_minutes"}
    if unknown:
        raise ConfigError(f"{path}: [late] unknown key {sorted(unknown)[0]!r} "
                          "(expected rule, per_day, cap, grace_minutes)")
    rule = late.get("rule", "none")
    if rule not in RULES:
        raise ConfigError(f"{path}: [late] rule must be one of {', '.join(RULES)}, got {rule!r}")
    grace = late.get("grace_minutes", 0)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        raise ConfigError(f"{path}: [late] grace_minutes must be a number ≥ 0, got {grace!r}")
    return Config(deadlines=deadlines, rule=rule, per_day=_fraction(late, "per_day", 0.0, path),
                  cap=_fraction(late, "cap", 1.0, path), grace_minutes=float(grace))


def lateness(handed_in: datetime, deadline: datetime, grace_minutes: float = 0) -> float:
    """Days from `deadline` to `handed_in` (fractional); 0 when on time or within the grace."""
    if handed_in.tzinfo is None or deadline.tzinfo is None:
        raise ValueError("lateness needs times with a time zone")
    late = handed_in - deadline
    if late <= timedelta(minutes=grace_minutes):
        return 0.0
    return late.total_seconds() / 86400


def apply(score: float, max_score: float, days: float, config: Config) -> tuple[float, float]:
    """(penalty, final score) of `score` out of `max_score` handed in `days` late under
    `config`'s rule: ``per_day`` takes ``per_day × max_score`` per started day (never below 0),
    ``cap`` keeps at most ``cap × max_score``; ``none`` and an on-time hand-in lose nothing."""
    if days <= 0 or config.rule == "none":
        return 0.0, float(score)
    if config.rule == "per_day":
        penalty = min(float(score), config.per_day * math.ceil(days) * max_score)
    elif config.rule == "cap":
        penalty = max(0.0, score - config.cap * max_score)
    else:
        raise ValueError(f"unknown late rule {config.rule!r}")
    penalty = round(penalty, 6)
    return penalty, round(score - penalty, 6)


def _collected_times(path: str | Path | None) -> dict[tuple[str, str], tuple[datetime, str]]:
    if path is None or not Path(path).is_file():
        return {}
    data = json.loads(Path(path).read_text())
    times = {}
    for student, entry in data.get("students", {}).items():
        for name, one in entry.get("notebooks", {}).items():
            if one.get("handed_in"):
                times[(student, name)] = (datetime.fromisoformat(one["handed_in"]),
                                          one.get("time_source", "file"))
    return times


def _num(x: float) -> str:
    return f"{round(float(x), 4):.10g}"


def rows(results, collected: str | Path | None, config: Config, *,
         submitted: str | Path | None = None) -> list[dict]:
    """One dict per result (objects with ``student``, ``notebook``, ``score``, ``max_score``)
    with the `COLUMNS`, as strings ready for ``csv.DictWriter(f, COLUMNS)``.

    The hand-in time comes from `collected` (``collected.json``, or None); a hand-in it does not
    list is timed by the mtime of ``submitted/STUDENT/NN_name.ipynb`` (`submitted` defaults to
    the folder of `collected`), ``time_source`` "file". A notebook without a deadline, or not
    handed in (``time_source`` empty), is never late.
    """
    times = _collected_times(collected)
    base = Path(submitted) if submitted else Path(collected).parent if collected else None
    out = []
    for r in results:
        when, source = times.get((r.student, r.notebook), (None, ""))
        if when is None and base is not None:
            path = base / r.student / f"{r.notebook}.ipynb"
            if path.is_file():
                when = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
                source = "file"
        deadline = config.deadlines.get(r.notebook)
        days = lateness(when, deadline, config.grace_minutes) if when and deadline else 0.0
        penalty, final = apply(float(r.score), float(r.max_score), days, config)
        out.append(dict(student=r.student, notebook=r.notebook, score=_num(r.score),
                        max_score=_num(r.max_score), late_days=_num(days),
                        penalty=_num(penalty), final_score=_num(final), time_source=source))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grades", nargs="?", help="grades CSV of make grade (student,notebook,"
                        "score,max_score); without it, check the configuration")
    parser.add_argument("--config", default=str(ROOT / "course.toml"),
                        help="the course configuration (default: course.toml)")
    parser.add_argument("--submitted", help="the hand-ins folder (its collected.json gives the "
                        "hand-in times; else each file's mtime)")
    parser.add_argument("--out", help="CSV to write (default: GRADES, rewritten)")
    args = parser.parse_args(argv)
    try:
        from teacher.collect import course_notebooks

        config = load(args.config, course_notebooks())
    except ConfigError as exc:
        print(f"late: {exc}", file=sys.stderr)
        return 2
    if not args.grades:
        print(f"{args.config}: rule {config.rule} (per_day {config.per_day:g}, cap "
              f"{config.cap:g}, grace {config.grace_minutes:g} min)")
        for name, when in sorted(config.deadlines.items()):
            print(f"  {name:<24} {when.isoformat()}")
        return 0
    with open(args.grades, newline="") as f:
        reader = csv.DictReader(f)
        given = list(reader)
        extra = [c for c in reader.fieldnames or [] if c not in COLUMNS]  # kept as they are
    results = [SimpleNamespace(student=r["student"], notebook=r["notebook"],
                               score=float(r["score"]), max_score=float(r["max_score"]))
               for r in given]
    collected = Path(args.submitted) / "collected.json" if args.submitted else None
    table = rows(results, collected, config, submitted=args.submitted)
    for row, old in zip(table, given, strict=True):
        row.update({c: old[c] for c in extra})
    out = Path(args.out or args.grades)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS + extra)
        writer.writeheader()
        writer.writerows(table)
    late = [r for r in table if float(r["late_days"]) > 0]
    print(f"{len(late)} late hand-ins of {len(table)} (rule {config.rule}) → {out}")
    for r in late:
        print(f"  {r['student']:>12} {r['notebook']:<24} {float(r['late_days']):.2f} days  "
              f"{r['score']} − {r['penalty']} = {r['final_score']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
