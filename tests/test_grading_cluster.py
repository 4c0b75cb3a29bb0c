"""`make grade` and `make regrade` from the command line, as a teacher runs them: JOBS=1, JOBS=2 and
a Dask cluster started with the `dask` command line give the same grades, and a regrade of one
task changes that task alone."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from handins import hand_in, instructor, released, with_answers, wrong_answers  # tests/

from helpers.env import repo_root

ROOT = repo_root()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_grade_with_jobs_and_a_dask_cluster_gives_the_grades_of_one_job_and_regrade(
        tmp_path, demo_root):
    source = instructor("00_environment")
    sub = tmp_path / "submitted"
    hand_in(sub, "ann", "00_environment", source)
    hand_in(sub, "bob", "00_environment", with_answers(source, wrong_answers("00_environment")))
    hand_in(sub, "cy", "00_environment",
           released("00_environment"))
    env = dict(os.environ, VOC_ROOT=str(demo_root))
    env.pop("UNSAFE_NO_SANDBOX", None)
    bindir = Path(sys.executable).parent

    def make_grade(label: str, *options: str) -> str:
        out = tmp_path / f"{label}.csv"
        done = subprocess.run(["make", "-s", "grade", f"SUBMITTED={sub}", f"OUT={out}",
                               f"COURSE={tmp_path / 'course'}", *options], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return out.read_text()

    # one COURSE, as a teacher grades again: the fixtures and truths of the first run are kept
    one, two = make_grade("jobs1", "JOBS=1"), make_grade("jobs2", "JOBS=2")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([bindir / "dask", "scheduler", "--host", "127.0.0.1", "--port",
                                  str(port), "--no-dashboard"], cwd=tmp_path, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = subprocess.Popen([bindir / "dask", "worker", address, "--nworkers", "2",
                                "--nthreads", "1", "--no-dashboard"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        dask = make_grade("dask", f"SCHEDULER={address}")
    finally:
        for proc in (workers, scheduler):
            proc.terminate()
            proc.wait(timeout=60)
    assert one == two == dask
    scores = {row["student"]: float(row["score"]) for row in csv.DictReader(one.splitlines())}
    assert scores["ann"] == 7 and scores["cy"] == 0 and 0 < scores["bob"] < 7

    # make regrade: bob fixes one task; only that task of his is graded again, in place
    fixed = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
             if c.metadata.get("nbgrader", {}).get("grade_id") == "voc_configs"}
    hand_in(sub, "bob", "00_environment",
           with_answers(source, dict(wrong_answers("00_environment"), **fixed)))
    before = json.loads((tmp_path / "feedback" / "verdicts.json").read_text())
    done = subprocess.run(["make", "-s", "regrade", f"SUBMITTED={sub}",
                           f"OUT={tmp_path / 'dask.csv'}", f"COURSE={tmp_path / 'course'}",
                           "STUDENT=ann,bob", "TASK=voc_configs"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 hand-ins" in done.stdout  # ann's and bob's 00 only
    after = json.loads((tmp_path / "feedback" / "verdicts.json").read_text())
    old_bob, new_bob = ([r for r in rows if r["student"] == "bob"][0] for rows in (before, after))
    assert new_bob["tasks"]["voc_configs"][0] == 1 > old_bob["tasks"]["voc_configs"][0]
    assert {k: v for k, v in new_bob["tasks"].items() if k != "voc_configs"} == \
        {k: v for k, v in old_bob["tasks"].items() if k != "voc_configs"}
    # the same hand-in graded again gets the same grade; cy is not graded again at all
    assert [(r["student"], r["score"], r["tasks"]) for r in after if r["student"] != "bob"] == \
        [(r["student"], r["score"], r["tasks"]) for r in before if r["student"] != "bob"]
    regraded = {row["student"]: float(row["score"]) for row in
                csv.DictReader((tmp_path / "dask.csv").read_text().splitlines())}
    assert regraded == dict(scores, bob=scores["bob"] + 1 - old_bob["tasks"]["voc_configs"][0])
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'course' / 'gradebook.db'}") as gb:
        assert gb.find_submission_notebook("00_environment", "voc", "bob").score == \
            pytest.approx(regraded["bob"])
