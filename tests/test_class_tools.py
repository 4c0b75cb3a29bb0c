"""Running a class: collect an LMS download (teacher.collect), deadlines and late penalties
(teacher.late), gradebook exports (teacher.export). Real zips, folders and CSVs; no torch."""

from __future__ import annotations

import csv
import json
import os
import stat
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from teacher import collect, export, late

UTC = ZoneInfo("UTC")
NAMES = collect.course_notebooks()


def notebook(tag: str) -> bytes:
    return json.dumps({"cells": [{"cell_type": "code", "source": tag, "metadata": {},
                                  "outputs": [], "execution_count": None}],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def tag_of(path: Path) -> str:
    return json.loads(path.read_text())["cells"][0]["source"]


def add(zf: zipfile.ZipFile, name: str, data: bytes, when=(2025, 9, 20, 10, 0, 0),
        link: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=when)
    if link:
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, data)


def reasons(result) -> dict[str, str]:
    return {u["file"]: u["reason"] for u in result.unmapped}


@pytest.fixture
def canvas_zip(tmp_path: Path) -> Path:
    path = tmp_path / "submissions.zip"
    with zipfile.ZipFile(path, "w") as zf:
        add(zf, "doejane_12345_67890_00_environment.ipynb", notebook("jane 00"),
            when=(2025, 9, 19, 12, 0, 0))
        add(zf, "doejane_LATE_12345_67891_01_dataset.ipynb", notebook("jane 01 late"),
            when=(2025, 9, 27, 8, 30, 0))
        # the resubmission number wins over the member's date: -2 is kept
        add(zf, "roejohn_22222_70001_02_config-1.ipynb", notebook("john 02 first"),
            when=(2025, 10, 3, 12, 0, 0))
        add(zf, "roejohn_22222_70001_02_config-2.ipynb", notebook("john 02 second"),
            when=(2025, 10, 3, 11, 0, 0))
        # two files for one notebook: the newer is kept, the other reported as a duplicate
        add(zf, "roejohn_22222_70002_hw_00_environment.ipynb", notebook("john 00 old"),
            when=(2025, 9, 18, 9, 0, 0))
        add(zf, "roejohn_22222_70003_00_environment (1).ipynb", notebook("john 00 new"),
            when=(2025, 9, 19, 9, 0, 0))
        add(zf, "doejane_12345_67892_report.pdf", b"%PDF-1.4")
        add(zf, "doejane_12345_67893_03_training.ipynb", b'{"cells": [')
        add(zf, "doejane_12345_67894_04_predict_evaluate.ipynb", b"")
        add(zf, "doejane_12345_67895_06_extra.ipynb", notebook("not ours"))
        add(zf, "../evil_1_2_05_onnx.ipynb", notebook("escape"))
        add(zf, "doejane_12345_67896_05_onnx.ipynb", b"/etc/passwd", link=True)
    return path


def test_canvas_zip(canvas_zip: Path, tmp_path: Path) -> None:
    out = tmp_path / "hand-ins"
    result = collect.collect(canvas_zip, out, zip_timezone=UTC, quiet=True)
    assert sorted(result.students) == ["doejane", "roejohn"]
    assert tag_of(out / "doejane" / "00_environment.ipynb") == "jane 00"
    assert tag_of(out / "doejane" / "01_dataset.ipynb") == "jane 01 late"
    assert tag_of(out / "roejohn" / "02_config.ipynb") == "john 02 second"
    assert tag_of(out / "roejohn" / "00_environment.ipynb") == "john 00 new"
    assert sorted(p.name for p in out.iterdir()) == ["collected.json", "doejane", "roejohn"]
    assert not (tmp_path / "evil").exists() and not list(tmp_path.glob("*05_onnx*"))

    why = reasons(result)
    assert why["doejane_12345_67892_report.pdf"] == "not a notebook (.pdf)"
    assert why["doejane_12345_67893_03_training.ipynb"].startswith("broken JSON (line 1")
    assert why["doejane_12345_67894_04_predict_evaluate.ipynb"] == "empty file"
    assert why["doejane_12345_67895_06_extra.ipynb"].startswith(
        "not one of the course notebooks (00_environment, 01_dataset")
    assert why["../evil_1_2_05_onnx.ipynb"].startswith("path with '..': not extracted")
    assert why["doejane_12345_67896_05_onnx.ipynb"] == "symbolic link: skipped"
    assert why["roejohn_22222_70001_02_config-1.ipynb"] == (
        "an older resubmission of 02_config: kept roejohn_22222_70001_02_config-2.ipynb")
    assert why["roejohn_22222_70002_hw_00_environment.ipynb"] == (
        "a duplicate of 00_environment: kept roejohn_22222_70003_00_environment (1).ipynb")
    assert len(why) == 8
    by_file = {u["file"]: u["student"] for u in result.unmapped}
    assert by_file["doejane_12345_67893_03_training.ipynb"] == "doejane"

    data = json.loads((out / "collected.json").read_text())
    jane = data["students"]["doejane"]
    assert (jane["lms"], jane["lms_id"]) == ("canvas", "12345")
    assert jane["missing"] == ["02_config", "03_training", "04_predict_evaluate", "05_onnx"]
    assert data["students"]["roejohn"]["missing"] == [
        "01_dataset", "03_training", "04_predict_evaluate", "05_onnx"]
    assert jane["notebooks"]["01_dataset"] == dict(
        file="doejane_LATE_12345_67891_01_dataset.ipynb",
        handed_in="2025-09-27T08:30:00+00:00", time_source="file", late_marked=True)
    assert jane["notebooks"]["00_environment"]["late_marked"] is False
    # the written file carries the hand-in time, for anything that reads mtimes later
    assert (out / "doejane" / "01_dataset.ipynb").stat().st_mtime == \
        datetime(2025, 9, 27, 8, 30, tzinfo=timezone.utc).timestamp()
    assert data["unmapped"] == result.unmapped


def test_oversized_member_is_reported_not_read(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(collect, "MAX_MEMBER_BYTES", 200)
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        add(zf, "bigbob_7_8_01_dataset.ipynb", notebook("x" * 500))
        add(zf, "bigbob_7_9_00_environment.ipynb", notebook("ok"))
    result = collect.collect(path, tmp_path / "out", zip_timezone=UTC, quiet=True)
    assert reasons(result) == {"bigbob_7_8_01_dataset.ipynb": "larger than 0 MB: not extracted"}
    assert result.students["bigbob"]["missing"][0] == "01_dataset"
    assert not (tmp_path / "out" / "bigbob" / "01_dataset.ipynb").exists()


def test_moodle_zip(tmp_path: Path) -> None:
    path = tmp_path / "moodle.zip"
    with zipfile.ZipFile(path, "w") as zf:
        add(zf, "José Núñez_1001_assignsubmission_file_/00_environment.ipynb", notebook("jose"))
        add(zf, "José Núñez_1001_assignsubmission_file_/work/01_dataset.ipynb",
            notebook("jose 01"))
        add(zf, "Ann Lee_1003_assignsubmission_file_/02_config.ipynb", notebook("ann a"))
        add(zf, "Ann Lee_1004_assignsubmission_file_/02_config.ipynb", notebook("ann b"))
        add(zf, "Ann Lee_1004_assignsubmission_onlinetext_/onlinetext.html", b"<p>hi</p>")
    out = tmp_path / "hand-ins"
    result = collect.collect(path, out, zip_timezone=UTC, quiet=True)
    assert sorted(result.students) == ["Ann_Lee-1003", "Ann_Lee-1004", "Jose_Nunez"]
    assert tag_of(out / "Jose_Nunez" / "01_dataset.ipynb") == "jose 01"
    assert tag_of(out / "Ann_Lee-1004" / "02_config.ipynb") == "ann b"
    assert result.unmapped == [dict(
        file="Ann Lee_1004_assignsubmission_onlinetext_/onlinetext.html",
        student="Ann_Lee-1004", reason="not a notebook (.html)")]
    jose = json.loads((out / "collected.json").read_text())["students"]["Jose_Nunez"]
    assert (jose["lms"], jose["lms_id"]) == ("moodle", "1001")
    assert jose["notebooks"]["00_environment"] == dict(
        file="José Núñez_1001_assignsubmission_file_/00_environment.ipynb",
        handed_in="2025-09-20T10:00:00+00:00", time_source="file", late_marked=False)
    assert jose["missing"] == NAMES[2:]


def test_plain_folder(tmp_path: Path) -> None:
    src = tmp_path / "download"
    (src / "alice" / "hw").mkdir(parents=True)
    (src / "bob").mkdir()
    (src / "alice" / "00_environment.ipynb").write_bytes(notebook("alice 00"))
    (src / "alice" / "hw" / "01_dataset.ipynb").write_bytes(notebook("alice 01"))
    (src / "bob" / "02_config.ipynb").write_bytes(notebook("bob 02"))
    (src / "bob" / "notes.txt").write_text("hi")
    (src / "stray.ipynb").write_bytes(notebook("?"))
    (src / "bob" / "05_onnx.ipynb").symlink_to(src / "alice" / "00_environment.ipynb")
    when = datetime(2025, 9, 25, 18, 0, tzinfo=timezone.utc)
    os.utime(src / "alice" / "hw" / "01_dataset.ipynb", (when.timestamp(), when.timestamp()))
    out = tmp_path / "hand-ins"
    result = collect.collect(src, out, quiet=True)
    assert sorted(result.students) == ["alice", "bob"]
    assert tag_of(out / "alice" / "01_dataset.ipynb") == "alice 01"
    assert tag_of(out / "bob" / "02_config.ipynb") == "bob 02"
    assert not (out / "bob" / "05_onnx.ipynb").exists()
    assert reasons(result) == {
        "bob/05_onnx.ipynb": "symbolic link: skipped",
        "bob/notes.txt": "not a notebook (.txt)",
        "stray.ipynb": "not in a student folder, and not a Canvas file name"}
    entry = json.loads((out / "collected.json").read_text())["students"]["alice"]
    one = entry["notebooks"]["01_dataset"]
    assert (one["file"], one["time_source"]) == ("alice/hw/01_dataset.ipynb", "file")
    assert datetime.fromisoformat(one["handed_in"]) == when
    assert entry["missing"] == NAMES[2:]
    with pytest.raises(FileExistsError):
        collect.collect(src, out, quiet=True)  # never into a folder that holds something


def test_collect_command_prints_summary(canvas_zip: Path, tmp_path: Path, capsys) -> None:
    assert collect.main([str(canvas_zip), str(tmp_path / "h"), "--zip-timezone", "UTC"]) == 0
    text = capsys.readouterr().out
    jane = next(line for line in text.splitlines() if line.startswith("doejane"))
    assert jane.split() == ["doejane", "✓", "L", "-", "-", "-", "-", "4"]
    assert "8 files not collected:" in text
    assert "  doejane_12345_67894_04_predict_evaluate.ipynb: empty file" in text


# --- deadlines and late penalties -------------------------------------------------------------

def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def write_config(path: Path, rule: str, **late_keys) -> Path:
    keys = "".join(f"{k} = {v}\n" for k, v in late_keys.items())
    path.write_text(f'[deadlines]\n00_environment = "2025-09-19T23:59:00+02:00"\n'
                    f'01_dataset = 2025-09-26T23:59:00Z\n\n[late]\nrule = "{rule}"\n{keys}')
    return path


def test_course_toml_loads_and_its_examples_are_valid(tmp_path: Path) -> None:
    shipped = Path(__file__).parents[1] / "course.toml"
    config = late.load(shipped, NAMES)
    assert config.deadlines == {}  # a fresh clone: no deadline yet, no hand-in is late
    assert (config.rule, config.grace_minutes) == ("none", 15)
    examples = shipped.read_text().replace("# 0", "0")  # the commented example deadlines
    config = late.load(write_text(tmp_path / "course.toml", examples), NAMES)
    assert sorted(config.deadlines) == NAMES
    assert config.deadlines["00_environment"].utcoffset() == timedelta(hours=2)


def test_load_errors_name_file_and_key(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", "sometimes")
    with pytest.raises(late.ConfigError, match=r"c\.toml: \[late\] rule must be one of"):
        late.load(path)
    path.write_text('[deadlines]\n01_dataset = "2025-09-26T23:59:00"\n')
    with pytest.raises(late.ConfigError, match=r"c\.toml: \[deadlines\] 01_dataset: .* no time"):
        late.load(path)
    path.write_text('[deadlines]\n01_datset = "2025-09-26T23:59:00Z"\n')
    with pytest.raises(late.ConfigError, match=r"\[deadlines\] 01_datset: not a course"):
        late.load(path, NAMES)
    write_config(path, "cap", cap=1.5)
    with pytest.raises(late.ConfigError, match=r"c\.toml: \[late\] cap must be a number"):
        late.load(path)
    path.write_text("[late\n")
    with pytest.raises(late.ConfigError, match=r"c\.toml: not valid TOML"):
        late.load(path)


def test_lateness_and_grace() -> None:
    deadline = datetime(2025, 9, 26, 23, 59, tzinfo=timezone.utc)
    assert late.lateness(deadline - timedelta(hours=1), deadline) == 0.0
    assert late.lateness(deadline + timedelta(minutes=10), deadline, 15) == 0.0
    assert late.lateness(deadline + timedelta(minutes=20), deadline, 15) == pytest.approx(
        20 / 1440)
    assert late.lateness(deadline + timedelta(days=1, hours=12), deadline, 15) == 1.5
    # same instant written in another zone: on time
    assert late.lateness(datetime(2025, 9, 27, 1, 59, tzinfo=timezone(timedelta(hours=2))),
                         deadline) == 0.0


def test_rules(tmp_path: Path) -> None:
    none = late.load(write_config(tmp_path / "n.toml", "none", per_day=0.5))
    assert late.apply(8, 10, 3.0, none) == (0.0, 8.0)
    per_day = late.load(write_config(tmp_path / "p.toml", "per_day", per_day=0.1))
    assert late.apply(8, 10, 0.0, per_day) == (0.0, 8.0)
    assert late.apply(8, 10, 0.01, per_day) == (1.0, 7.0)  # a started day counts whole
    assert late.apply(8, 10, 2.5, per_day) == (3.0, 5.0)
    assert late.apply(8, 10, 12, per_day) == (8.0, 0.0)  # never below 0
    cap = late.load(write_config(tmp_path / "c.toml", "cap", cap=0.5))
    assert late.apply(8, 10, 0.5, cap) == (3.0, 5.0)
    assert late.apply(4, 10, 9.0, cap) == (0.0, 4.0)
    assert late.apply(8, 10, 0.0, cap) == (0.0, 8.0)


def test_rows_from_collected_and_mtime(canvas_zip: Path, tmp_path: Path) -> None:
    out = tmp_path / "hand-ins"
    collect.collect(canvas_zip, out, zip_timezone=UTC, quiet=True)
    (out / "doejane" / "00_environment.ipynb").touch()  # not what collected.json says
    # a hand-in collected.json does not list: its file's mtime, 2 days late for 01_dataset
    (out / "newkid").mkdir()
    (out / "newkid" / "01_dataset.ipynb").write_bytes(notebook("new"))
    when = datetime(2025, 9, 28, 12, 0, tzinfo=timezone.utc).timestamp()
    os.utime(out / "newkid" / "01_dataset.ipynb", (when, when))
    config = late.load(write_config(tmp_path / "c.toml", "per_day", per_day=0.25,
                                    grace_minutes=15))
    results = [SimpleNamespace(student="doejane", notebook="00_environment", score=6,
                               max_score=7),
               SimpleNamespace(student="doejane", notebook="01_dataset", score=10,
                               max_score=12),
               SimpleNamespace(student="newkid", notebook="01_dataset", score=12,
                               max_score=12),
               SimpleNamespace(student="roejohn", notebook="03_training", score=0,
                               max_score=9)]
    table = late.rows(results, out / "collected.json", config)
    assert [list(r) for r in table] == [late.COLUMNS] * 4
    assert table[0] == dict(student="doejane", notebook="00_environment", score="6",
                            max_score="7", late_days="0", penalty="0", final_score="6",
                            time_source="file")
    # 2025-09-27 08:30 UTC vs 2025-09-26 23:59 UTC: 8 h 31 min, one started day
    assert table[1]["late_days"] == f"{round(511 / 1440, 4):.10g}"
    assert (table[1]["penalty"], table[1]["final_score"]) == ("3", "7")
    assert (table[2]["late_days"], table[2]["penalty"], table[2]["final_score"],
            table[2]["time_source"]) == ("1.5007", "6", "6", "file")
    assert (table[3]["late_days"], table[3]["time_source"]) == ("0", "")  # not handed in


def test_late_command_adds_columns(canvas_zip: Path, tmp_path: Path) -> None:
    out = tmp_path / "hand-ins"
    collect.collect(canvas_zip, out, zip_timezone=UTC, quiet=True)
    grades = tmp_path / "grades.csv"
    grades.write_text("student,notebook,score,max_score\ndoejane,01_dataset,10,12\n")
    config = write_config(tmp_path / "c.toml", "cap", cap=0.5)
    assert late.main([str(grades), "--config", str(config), "--submitted", str(out)]) == 0
    with grades.open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["final_score"], row["penalty"], row["time_source"]) == ("6", "4", "file")


# --- exports ----------------------------------------------------------------------------------

GRADES = """student,notebook,score,max_score,late_days,penalty,final_score,time_source
doejane,00_environment,7,7,0,0,7,file
doejane,01_dataset,10,12,0.35,3,7,file
roejohn,00_environment,5.5,7,0,0,5.5,file
roejohn,01_dataset,0,12,0,0,0,
"""
EXPECTED = {"doejane": {"00_environment": 7.0, "01_dataset": 7.0, "total": 14.0},
            "roejohn": {"00_environment": 5.5, "01_dataset": 0.0, "total": 5.5}}


@pytest.fixture
def grades(tmp_path: Path) -> Path:
    path = tmp_path / "grades.csv"
    path.write_text(GRADES)
    return path


def read_back(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_export_plain_uses_final_score(grades: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain.csv"
    assert export.main([str(grades), "--format", "plain", "--out", str(out)]) == 0
    header, *rows = read_back(out)
    assert header == ["student", "00_environment", "01_dataset", "total"]
    assert {r[0]: dict(zip(header[1:], map(float, r[1:]), strict=True)) for r in rows} == \
        EXPECTED
    raw = tmp_path / "raw.csv"
    raw.write_text("student,notebook,score,max_score\ndoejane,01_dataset,10,12\n")
    export.export(raw, "plain", out)
    assert read_back(out)[1] == ["doejane", "10", "10"]


def test_export_canvas(grades: Path, tmp_path: Path) -> None:
    roster = tmp_path / "students.csv"
    roster.write_text("student,name,sis_user_id,section\n"
                      "doejane,\"Doe, Jane\",S-1,Lab A\nroejohn,\"Roe, John\",,Lab B\n")
    collected = tmp_path / "collected.json"
    collected.write_text(json.dumps({"students": {
        "doejane": {"lms": "canvas", "lms_id": "12345"},
        "roejohn": {"lms": "canvas", "lms_id": "22222"}}}))
    out = tmp_path / "canvas.csv"
    warnings = export.export(grades, "canvas", out, roster=roster, collected=collected,
                             canvas_ids={"00_environment": "901"})
    assert warnings == []
    header, points, *rows = read_back(out)
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                      "00_environment (901)", "01_dataset", "Final Points"]
    assert points == ["    Points Possible", "", "", "", "", "7", "12", "(read only)"]
    assert rows[0][:5] == ["Doe, Jane", "12345", "S-1", "", "Lab A"]
    assert rows[1][:5] == ["Roe, John", "22222", "", "", "Lab B"]
    ids = {"12345": "doejane", "22222": "roejohn"}
    names = [h.split(" (")[0] for h in header[5:-1]] + ["total"]
    got = {ids[r[1]]: dict(zip(names, map(float, r[5:]), strict=True)) for r in rows}
    assert got == EXPECTED


def test_export_canvas_warns_when_unmatched(grades: Path, tmp_path: Path) -> None:
    warnings = export.export(grades, "canvas", tmp_path / "c.csv")
    assert warnings == ["no Canvas ID or SIS id (Canvas cannot match them; give --roster or "
                        "--collected): doejane, roejohn"]


def test_export_moodle(grades: Path, tmp_path: Path) -> None:
    roster = tmp_path / "students.csv"
    roster.write_text("student,Email address,ID number\n"
                      "doejane,jane@uni.example,1001\nroejohn,john@uni.example,1002\n")
    out = tmp_path / "moodle.csv"
    warnings = export.export(grades, "moodle", out, roster=roster)
    assert warnings == ["Moodle: Grades > Import > CSV file; Map from 'Email address' to "
                        "'Email address'; map each notebook column to its grade item, "
                        "'Student' and 'Total' to Ignore"]
    header, *rows = read_back(out)
    assert header == ["Email address", "Student", "00_environment", "01_dataset", "Total"]
    emails = {"jane@uni.example": "doejane", "john@uni.example": "roejohn"}
    names = header[2:-1] + ["total"]
    assert {emails[r[0]]: dict(zip(names, map(float, r[2:]), strict=True)) for r in rows} == \
        EXPECTED
    export.export(grades, "moodle", out, roster=roster, moodle_id="id_number")
    assert [r[0] for r in read_back(out)] == ["ID number", "1001", "1002"]
