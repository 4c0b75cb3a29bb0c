"""Collect an LMS download into hand-ins for `make grade`: `python -m teacher.collect FROM DIR`.

``FROM`` is a folder or a .zip of one of:

- **Canvas** "Download all submissions": flat files ``name_userid_subid_filename``
  (``doejane_12345_67890_01_dataset.ipynb``), ``name_LATE_userid_...`` for a late one, and
  ``filename-1.ipynb``, ``filename-2.ipynb`` for resubmissions (the highest number is kept).
  The student id is the ``name`` part, lowercase as given.
- **Moodle** "Download all submissions": one folder per ``Full Name_id_assignsubmission_file_``
  holding the files. The student id is the full name made a safe folder name (ASCII letters,
  digits, ``-`` and ``_``), unique.
- **Plain**: one folder per student, ``STUDENT/NN_name.ipynb``, or one folder deeper.

A file counts as a course notebook when its name ends with one of the course's notebook names
(the stems of ``source/voc/NN_*.ipynb``): ``…_01_dataset.ipynb``, ``01_dataset (1).ipynb``.

``DIR/STUDENT/NN_name.ipynb`` gets each student's newest readable hand-in of each notebook (byte
for byte, its mtime set to the hand-in time), and ``DIR/collected.json`` records where each came
from: the source file, the hand-in time and where that time came from (``"lms"`` when the LMS's
name or metadata carries one, which neither Canvas's nor Moodle's download does today; else
``"file"``: the zip member's date and time or the file's mtime), ``late_marked`` (Canvas
``_LATE_``), every file that could not be mapped with its reason, and the notebooks each student
did not hand in. Nothing is dropped silently: the summary printed at the end lists them all.

Zip safety: members are read, never extracted by name: a member whose name leaves the folder
(``../``, an absolute path) or is a symbolic link is reported and skipped, and one larger than
`MAX_MEMBER_BYTES` is reported, not read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

__all__ = ["MAX_MEMBER_BYTES", "course_notebooks", "collect", "safe_name", "main"]

#: A file larger than this is reported and never read (a notebook's answers are a few kB).
MAX_MEMBER_BYTES = 50 << 20

ROOT = Path(__file__).resolve().parents[1]

CANVAS = re.compile(r"^(?P<name>[^_/]+?)(?P<late>_late)?_(?P<user>\d+)_(?P<sub>\d+)_(?P<file>.+)$",
                    re.IGNORECASE)
MOODLE = re.compile(r"^(?P<name>.+)_(?P<id>\d+)_assignsubmission_[a-z]+_?$")
# Canvas's resubmission suffix (-1, -2) and a browser's copy suffix (" (1)") before .ipynb.
RESUBMISSION = re.compile(r"-(\d+)$")
BROWSER_COPY = re.compile(r" \((\d+)\)$")


def course_notebooks(source: str | Path | None = None) -> list[str]:
    """The course's graded notebook names: the stems of ``source/voc/[0-9][0-9]_*.ipynb`` that
    hold a graded cell (an optional notebook without tasks, like 06, is not handed in)."""
    folder = Path(source or ROOT / "source" / "voc")
    names = sorted(p.stem for p in folder.glob("[0-9][0-9]_*.ipynb")
                   if any(c.get("metadata", {}).get("nbgrader", {}).get("grade")
                          for c in json.loads(p.read_text()).get("cells", [])))
    if not names:
        raise FileNotFoundError(f"No course notebooks (NN_name.ipynb) in {folder}")
    return names


def safe_name(text: str) -> str:
    """`text` as a folder name: ASCII letters, digits, ``-`` and ``_`` (accents dropped, other
    characters and spaces become ``_``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_text).strip("_-") or "student"


@dataclass
class _File:
    """One file of the download, read or not."""

    path: str  #: its name inside the zip or relative to the folder (POSIX)
    size: int
    when: datetime | None
    read: object  #: () -> bytes
    link: bool = False


@dataclass
class _Candidate:
    student_key: tuple[str, str]  #: (layout, the LMS's name of the student)
    lms_id: str
    notebook: str
    file: str
    data: bytes
    when: datetime | None
    resubmission: int
    late_marked: bool


@dataclass
class Collection:
    """What `collect` found: also written as ``DIR/collected.json``."""

    source: str
    students: dict[str, dict] = field(default_factory=dict)
    unmapped: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        return dict(source=self.source, students=self.students, unmapped=self.unmapped)


def _unsafe(name: str) -> str:
    """Why a member name would leave the target folder, or ''."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path: not extracted (it would leave the target folder)"
    if ".." in re.split(r"[/\\]", name):
        return "path with '..': not extracted (it would leave the target folder)"
    return ""


def _zip_files(path: Path, tz: tzinfo) -> tuple[list[_File], list[dict]]:
    files, skipped = [], []
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    for info in infos:
        if info.is_dir():
            continue
        if reason := _unsafe(info.filename):
            skipped.append(dict(file=info.filename, student="", reason=reason))
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            skipped.append(dict(file=info.filename, student="",
                                reason="symbolic link: skipped"))
            continue
        when = datetime(*info.date_time).replace(tzinfo=tz)

        def read(info=info) -> bytes:
            with zipfile.ZipFile(path) as zf, zf.open(info) as f:
                data = f.read(MAX_MEMBER_BYTES + 1)  # never trust the header's size alone
            if len(data) > MAX_MEMBER_BYTES:
                raise _TooLarge
            return data

        files.append(_File(info.filename.replace("\\", "/"), info.file_size, when, read))
    return files, skipped


def _folder_files(root: Path, skip: Path | None) -> list[_File]:
    files = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        here = Path(folder)
        for d in list(dirs):
            if (here / d).is_symlink():
                names.append(d)  # reported below as a link
                dirs.remove(d)
            elif skip is not None and (here / d).resolve() == skip:
                dirs.remove(d)
        for name in sorted(names):
            path = here / name
            rel = path.relative_to(root).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                files.append(_File(rel, 0, None, bytes, link=True))
                continue

            def read(path=path) -> bytes:
                with path.open("rb") as f:
                    data = f.read(MAX_MEMBER_BYTES + 1)
                if len(data) > MAX_MEMBER_BYTES:
                    raise _TooLarge
                return data

            files.append(_File(rel, info.st_size, datetime.fromtimestamp(
                info.st_mtime, tz=timezone.utc).astimezone(), read))
    return files


class _TooLarge(Exception):
    pass


def _notebook_of(filename: str, names: list[str], canvas: bool) -> tuple[str, int]:
    """(course notebook the file name ends with or '', Canvas resubmission number)."""
    if not filename.lower().endswith(".ipynb"):
        return "", 0
    stem = filename[: -len(".ipynb")]
    resubmission = 0
    for pattern in (BROWSER_COPY, RESUBMISSION, BROWSER_COPY):
        if m := pattern.search(stem):
            if pattern is RESUBMISSION:
                if not canvas:
                    continue
                resubmission = int(m.group(1))
            stem = stem[: m.start()]
    low = stem.lower()
    for name in names:
        if low == name or (low.endswith(name) and low[-len(name) - 1] in "_- ."):
            return name, resubmission
    return "", resubmission


def _why_not_notebook(data: bytes) -> str:
    if not data.strip():
        return "empty file"
    try:
        nb = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8 text: not a notebook"
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
        return f"broken JSON{where}"
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return "JSON but not a notebook (no list of cells)"
    return ""


def _layout(parts: list[str]) -> tuple[str, str, str, bool, str]:
    """(layout, the LMS's student name, LMS id, late mark, why not) of a file's path parts."""
    if len(parts) >= 2 and (m := MOODLE.match(parts[0])):
        if len(parts) > 3:
            return "", "", "", False, "nested too deep in a Moodle submission folder"
        return "moodle", m.group("name"), m.group("id"), False, ""
    if len(parts) == 1:
        if m := CANVAS.match(parts[0]):
            return "canvas", m.group("name").lower(), m.group("user"), bool(m.group("late")), ""
        return "", "", "", False, "not in a student folder, and not a Canvas file name"
    if len(parts) > 3:
        return "", "", "", False, "nested deeper than STUDENT/FOLDER/NN_name.ipynb"
    return "plain", parts[0], "", False, ""


def _strip_wrapper(files: list[_File]) -> list[_File]:
    """A download zipped inside one folder (``hand-ins/…``) reads as the folder's contents."""
    tops = {f.path.split("/")[0] for f in files}
    if len(tops) != 1 or any("/" not in f.path for f in files) or MOODLE.match(next(iter(tops))):
        return files
    inner = [f.path.split("/", 1)[1] for f in files]
    loose = [p for p in inner if "/" not in p]
    if loose and not all(CANVAS.match(p) for p in loose):
        return files  # a single student's folder: keep it
    for f, path in zip(files, inner, strict=True):
        f.path = path
    return files


def collect(source: str | Path, out: str | Path, *, notebooks: list[str] | None = None,
            zip_timezone: tzinfo | None = None, quiet: bool = False) -> Collection:
    """Collect `source` (folder or .zip) into ``out/STUDENT/NN_name.ipynb`` and
    ``out/collected.json``; return what was found. `out` must be new or empty. Zip member times
    carry no zone: they are read in `zip_timezone` (default: this machine's)."""
    source, out = Path(source), Path(out)
    names = notebooks or course_notebooks()
    tz = zip_timezone or datetime.now().astimezone().tzinfo
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: collect into a new folder")
    if source.is_dir():
        if out.resolve().is_relative_to(source.resolve()) and out.resolve() != source.resolve():
            skip = out.resolve()
        elif out.resolve() == source.resolve():
            raise ValueError(f"{out}: collect into another folder than the download")
        else:
            skip = None
        files, unmapped = _folder_files(source, skip), []
    elif zipfile.is_zipfile(source):
        files, unmapped = _zip_files(source, tz)
    else:
        raise FileNotFoundError(f"{source}: neither a folder nor a .zip file")
    files = _strip_wrapper(files)

    candidates: list[_Candidate] = []
    owners: dict[tuple[tuple[str, str], str], list[dict]] = {}  # student → their skipped files
    for f in sorted(files, key=lambda f: f.path):
        parts = [p for p in f.path.split("/") if p]
        layout, who, lms_id, late, why = _layout(parts)
        if parts[0] == "__MACOSX":
            layout, why = "", "macOS metadata, not a hand-in"
        key = ((layout, who), lms_id)
        if layout:
            owners.setdefault(key, [])
        filename = parts[-1]
        original = CANVAS.match(filename).group("file") if layout == "canvas" else filename
        name, resubmission = _notebook_of(original, names, canvas=layout == "canvas")
        reason = ""
        if f.link:
            reason = "symbolic link: skipped"
        elif why:
            reason = why
        elif filename == ".DS_Store":
            reason = "macOS metadata, not a hand-in"
        elif not filename.lower().endswith(".ipynb"):
            reason = f"not a notebook ({PurePosixPath(filename).suffix or 'no extension'})"
        elif ".ipynb_checkpoints" in parts:
            reason = "a Jupyter checkpoint copy, not a hand-in"
        elif not name:
            reason = f"not one of the course notebooks ({', '.join(names)})"
        elif f.size > MAX_MEMBER_BYTES:
            reason = f"larger than {MAX_MEMBER_BYTES >> 20} MB: not extracted"
        else:
            try:
                data = f.read()
            except _TooLarge:
                data, reason = b"", f"larger than {MAX_MEMBER_BYTES >> 20} MB: not extracted"
            except (RuntimeError, zipfile.BadZipFile, OSError) as exc:
                data, reason = b"", f"could not be read ({type(exc).__name__}: {exc})"
            reason = reason or _why_not_notebook(data)
            if not reason:
                candidates.append(_Candidate((layout, who), lms_id, name, f.path, data, f.when,
                                             resubmission, late))
        if reason:
            entry = dict(file=f.path, student="", reason=reason)
            unmapped.append(entry)
            owners.get(key, []).append(entry)

    ids = _student_ids(set(owners))
    for key, entries in owners.items():
        for entry in entries:
            entry["student"] = ids[key]
    chosen: dict[tuple[str, str], _Candidate] = {}
    by_slot: dict[tuple[str, str], list[_Candidate]] = {}
    for c in candidates:
        by_slot.setdefault((ids[(c.student_key, c.lms_id)], c.notebook), []).append(c)
    for slot, group in by_slot.items():
        group.sort(key=lambda c: (c.resubmission, c.when or datetime.min.replace(
            tzinfo=timezone.utc), c.file))
        kept = chosen[slot] = group[-1]
        for c in group[:-1]:
            what = "an older resubmission" if c.resubmission < kept.resubmission else \
                "a duplicate"
            unmapped.append(dict(file=c.file, student=slot[0],
                                 reason=f"{what} of {slot[1]}: kept {kept.file}"))

    result = Collection(source=str(source), unmapped=unmapped)
    students = sorted({s for s, _ in chosen} | set(ids.values()))
    out.mkdir(parents=True, exist_ok=True)
    for student in students:
        layout, lms_id = next((k[0][0], k[1]) for k, v in ids.items() if v == student)
        entry = dict(lms=layout, lms_id=lms_id, notebooks={}, missing=[])
        for name in names:
            c = chosen.get((student, name))
            if c is None:
                entry["missing"].append(name)
                continue
            target = out / student / f"{name}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(c.data)
            if c.when is not None:
                os.utime(target, (c.when.timestamp(), c.when.timestamp()))
            entry["notebooks"][name] = dict(
                file=c.file, handed_in=c.when.isoformat() if c.when else None,
                time_source="file", late_marked=c.late_marked)
        result.students[student] = entry
    result.unmapped.sort(key=lambda u: (u["student"], u["file"]))
    (out / "collected.json").write_text(json.dumps(result.as_json(), indent=1) + "\n")
    if not quiet:
        print(summary(result, names))
    return result


def _student_ids(keys: set[tuple[tuple[str, str], str]]) -> dict:
    """(layout, LMS name), LMS id → a unique safe folder name."""
    base = {k: safe_name(k[0][1]) for k in keys}
    if any(k[0][0] == "canvas" for k in keys):
        base.update({k: k[0][1] for k in keys if k[0][0] == "canvas"
                     and re.fullmatch(r"[A-Za-z0-9_-]+", k[0][1])})
    ids, taken = {}, {}
    for k in sorted(keys):
        taken.setdefault(base[k], []).append(k)
    for name, group in taken.items():
        if len(group) == 1:
            ids[group[0]] = name
        else:  # the same name for several people: their LMS id (or a counter) tells them apart
            for i, k in enumerate(group, 1):
                ids[k] = f"{name}-{k[1] or i}"
    return ids


def summary(result: Collection, names: list[str]) -> str:
    """A table: one row per student, one column per notebook (✓ handed in, L marked late by the
    LMS, - missing); then every file not collected with its reason."""
    short = [n.split("_")[0] for n in names]
    width = max([len("student")] + [len(s) for s in result.students])
    lines = [f"{'student':<{width}}  " + "  ".join(f"{s:>2}" for s in short) + "  missing",
             "-" * (width + 4 * len(names) + 9)]
    for student, entry in result.students.items():
        marks = ["L" if n in entry["notebooks"] and entry["notebooks"][n]["late_marked"] else
                 "✓" if n in entry["notebooks"] else "-" for n in names]
        lines.append(f"{student:<{width}}  " + "  ".join(f"{m:>2}" for m in marks)
                     + f"  {len(entry['missing'])}")
    lines.append(f"{len(result.students)} students, "
                 f"{sum(len(e['notebooks']) for e in result.students.values())} notebooks "
                 "collected (L: marked late by the LMS)")
    if result.unmapped:
        lines.append(f"\n{len(result.unmapped)} files not collected:")
        lines += [f"  {u['file']}: {u['reason']}" for u in result.unmapped]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="Canvas or Moodle download (.zip or folder), or a folder "
                        "of STUDENT/NN_name.ipynb")
    parser.add_argument("out", help="new folder to write STUDENT/NN_name.ipynb and "
                        "collected.json into (for make grade SUBMITTED=...)")
    parser.add_argument("--notebooks", help="instructor notebooks' folder (default: source/voc)")
    parser.add_argument("--zip-timezone", default="",
                        help="time zone of the zip's member times, e.g. UTC (default: local)")
    args = parser.parse_args(argv)
    try:
        tz = ZoneInfo(args.zip_timezone) if args.zip_timezone else None
        result = collect(args.source, args.out, zip_timezone=tz,
                         notebooks=course_notebooks(args.notebooks) if args.notebooks else None)
    except (FileExistsError, FileNotFoundError, ValueError, zipfile.BadZipFile) as exc:
        print(f"collect: {exc}", file=sys.stderr)
        return 2
    print(f"→ {args.out}/STUDENT/NN_name.ipynb, {args.out}/collected.json")
    return 0 if result.students else 1


if __name__ == "__main__":
    sys.exit(main())
