"""The grading sandbox (teacher.sandbox): every hostile action of a hand-in is contained.

Each hostile action runs as a small Python script inside the sandbox (the venv's own Python),
against a throw-away course folder: the instructor notebooks and another student's hand-in lie
next to the folders the sandbox gets, and a secret sits in the test's own environment.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from teacher import sandbox
from teacher.sandbox import Limits, format_size, parse_size

WHY = sandbox.unavailable()
needs_sandbox = pytest.mark.skipif(WHY is not None, reason=f"no sandbox can start here: {WHY}")

REPO = Path(__file__).resolve().parents[1]
SOLUTION = "SECRET-SOLUTION-42"
OTHER_HAND_IN = "BOBS-ANSWER-17"


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A course folder: source/ (instructor notebooks), helpers/ (course code, read-only in the
    sandbox), submitted/alice (the graded student's folder, writable) and submitted/bob."""
    (tmp_path / "source" / "voc").mkdir(parents=True)
    (tmp_path / "source" / "voc" / "x.ipynb").write_text(SOLUTION)
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "__init__.py").write_text("COURSE = 'voc'\n")
    (tmp_path / "submitted" / "alice").mkdir(parents=True)
    (tmp_path / "submitted" / "bob").mkdir()
    (tmp_path / "submitted" / "bob" / "01_dataset.ipynb").write_text(OTHER_HAND_IN)
    return tmp_path


def sandboxed(course: Path, code: str, *, limits: Limits | None = None,
              **env: str) -> sandbox.SandboxResult:
    """Run `code` with the venv's Python in the sandbox as the grader would: course code
    read-only, the student's folder writable (and HOME), a clean environment."""
    alice = course / "submitted" / "alice"
    return sandbox.run([sys.executable, "-c", textwrap.dedent(code)],
                       read_only=[course / "helpers"], writable=[alice],
                       env={"PATH": "/usr/bin:/bin", "HOME": str(alice), "SMOKE": "1",
                            "MPLBACKEND": "Agg", **env},
                       cwd=alice, limits=limits or Limits(wall_seconds=120))


def last_json(result: sandbox.SandboxResult) -> dict:
    assert result.returncode == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def no_process_with(marker: str) -> bool:
    """True when no process on this machine has `marker` in its command line."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker.encode() in Path(entry.path, "cmdline").read_bytes():
                    return False
            except OSError:
                pass
    return True


# --- Limits and messages (no sandbox needed) ----------------------------------------------------

def test_sizes_parse_in_binary_units():
    assert parse_size("6G") == 6 << 30
    assert parse_size("512m") == 512 << 20
    assert parse_size("1.5GiB") == 3 << 29
    assert parse_size(" 2 GB ") == 2 << 30
    assert parse_size("1000") == 1000
    assert format_size(6 << 30) == "6G" and format_size(3 << 29) == "1.5G"
    with pytest.raises(ValueError, match="not a size"):
        parse_size("six gigs")


def test_limits_come_from_the_teachers_environment():
    default = Limits.from_env({})
    assert default == Limits() and default.memory == 6 << 30
    limits = Limits.from_env({"MEM_LIMIT": "2G", "PROC_LIMIT": "64", "CPU_LIMIT": "30",
                              "WALL_LIMIT": "90", "UNRELATED": "x"})
    assert limits == Limits(memory=2 << 30, processes=64, cpu_seconds=30, wall_seconds=90)
    assert Limits.from_env({"MEM_LIMIT": ""}) == Limits()
    with pytest.raises(ValueError, match="MEM_LIMIT"):
        Limits.from_env({"MEM_LIMIT": "lots"})
    with pytest.raises(ValueError, match="WALL_LIMIT"):
        Limits.from_env({"WALL_LIMIT": "-1"})


def test_each_limit_has_a_message_naming_its_variable():
    limits = Limits(memory=6 << 30, processes=64, cpu_seconds=30, wall_seconds=90)
    assert limits.message("memory") == "stopped: used more than 6G of memory (MEM_LIMIT)"
    assert "64" in limits.message("processes") and "PROC_LIMIT" in limits.message("processes")
    assert "30 s" in limits.message("cpu") and "CPU_LIMIT" in limits.message("cpu")
    assert limits.message("wall") == "stopped: ran longer than 90 s (WALL_LIMIT)"


@pytest.fixture
def fresh_probe():
    sandbox._find.cache_clear()
    yield
    sandbox._find.cache_clear()


def test_unavailable_names_the_opt_out_in_one_line(monkeypatch, fresh_probe):
    monkeypatch.setattr(sandbox, "_candidates", lambda: [])
    why = sandbox.unavailable()
    assert why and "\n" not in why and "UNSAFE_NO_SANDBOX=1" in why and "bubblewrap" in why
    monkeypatch.setattr(sandbox, "_candidates", lambda: ["/bin/false"])
    sandbox._find.cache_clear()
    why = sandbox.unavailable()
    assert why and "\n" not in why and "/bin/false" in why and "UNSAFE_NO_SANDBOX=1" in why
    with pytest.raises(RuntimeError, match="UNSAFE_NO_SANDBOX"):
        sandbox.command(["true"])


# --- Containment --------------------------------------------------------------------------------

@needs_sandbox
def test_command_line_isolates_everything(course):
    argv = sandbox.command(["python", "-c", "pass"], read_only=[course / "helpers"],
                           writable=[course / "submitted" / "alice"], env={"A": "1"})
    for option in ("--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
                   "--clearenv"):
        assert option in argv
    assert "--share-net" not in argv
    assert argv[argv.index("--setenv") + 1:argv.index("--setenv") + 3] == ["A", "1"]
    # Parents before children, so the student's folder inside a read-only course stays writable.
    argv = sandbox.command(["true"], read_only=[course], writable=[course / "submitted"])
    assert argv.index(str(course)) < argv.index(str(course / "submitted"))


@needs_sandbox
def test_bwraps_own_refusal_comes_back_as_output(course):
    result = sandbox.run(["/no/such/program"], limits=Limits(wall_seconds=30))
    assert result.returncode not in (0, -9) and result.limit_hit is None
    assert "/no/such/program" in result.output


@needs_sandbox
def test_files_outside_the_binds_do_not_exist(course):
    result = sandboxed(course, f"""
        import json, os
        seen = {{}}
        for path in [{str(course / "source" / "voc" / "x.ipynb")!r},
                     {str(course / "submitted" / "bob" / "01_dataset.ipynb")!r},
                     {str(REPO / "README.md")!r},
                     "/root/.bashrc", "/etc/shadow", "/sys/kernel/notes"]:
            try:
                seen[path] = open(path).read()[:40]
            except OSError as exc:
                seen[path] = type(exc).__name__
        seen["submitted"] = sorted(os.listdir({str(course / "submitted")!r}))
        seen["course"] = sorted(os.listdir({str(course)!r}))
        seen["root"] = sorted(os.listdir("/"))
        seen["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        try:
            seen["repository"] = sorted(os.listdir({str(REPO)!r}))
        except OSError as exc:
            seen["repository"] = type(exc).__name__
        seen["helpers"] = open({str(course / "helpers" / "__init__.py")!r}).read()
        print(json.dumps(seen))
    """)
    seen = last_json(result)
    assert SOLUTION not in result.output and OTHER_HAND_IN not in result.output
    hidden = [key for key in seen if key.startswith("/")]
    assert all(seen[key] == "FileNotFoundError" for key in hidden), seen
    assert seen["submitted"] == ["alice"]
    assert seen["course"] == ["helpers", "submitted"]
    assert seen["pids"] == [1, 2]  # bwrap as PID 1 and this script: no process of the host
    assert not {"home", "sys", "opt", "var", "srv", "mnt", "boot"} & set(seen["root"])
    # Of the repository, only the venv that runs the script (when it lives there) is visible.
    venv = Path(sys.prefix).resolve()
    if venv.is_relative_to(REPO):
        assert seen["repository"] == [venv.relative_to(REPO).parts[0]]
    else:
        assert seen["repository"] == "FileNotFoundError"
    assert seen["helpers"] == "COURSE = 'voc'\n"


@needs_sandbox
def test_the_graders_environment_is_not_visible(course, monkeypatch):
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "hunter2")
    result = sandboxed(course, """
        import json, os
        # The environments of the sandbox's other processes (bwrap is PID 1) are readable here.
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                print(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
        print(json.dumps(dict(os.environ)))
    """, VOC_ROOT="/data/voc")
    env = last_json(result)
    assert "hunter2" not in result.output
    assert set(env) - {"PWD", "LC_CTYPE"} == {"PATH", "HOME", "SMOKE", "MPLBACKEND", "VOC_ROOT"}
    assert env["VOC_ROOT"] == "/data/voc"


@needs_sandbox
def test_read_only_binds_and_the_system_cannot_be_written(course):
    helpers = course / "helpers"
    result = sandboxed(course, f"""
        import json, os
        outcome = {{}}
        for path in [{str(helpers / "__init__.py")!r}, {str(helpers / "evil.py")!r},
                     "/usr/evil", "/evil", "/dev/evil", {sys.executable!r}]:
            try:
                with open(path, "a") as f:
                    f.write("pwned")
                outcome[path] = "written"
            except OSError as exc:
                outcome[path] = type(exc).__name__
        open("/tmp/scratch", "w").write("private")
        open("mine.txt", "w").write("ok")
        print(json.dumps(outcome))
    """)
    outcome = last_json(result)
    assert "written" not in outcome.values(), outcome
    assert (helpers / "__init__.py").read_text() == "COURSE = 'voc'\n"
    assert not (helpers / "evil.py").exists()
    assert (course / "submitted" / "alice" / "mine.txt").read_text() == "ok"
    assert not Path("/tmp/scratch").exists()


@needs_sandbox
def test_no_network_not_even_the_hosts_loopback(course):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        result = sandboxed(course, f"""
            import json, socket
            outcome = {{}}
            for address in [("127.0.0.1", {port}), ("1.1.1.1", 53)]:
                try:
                    socket.create_connection(address, timeout=3).close()
                    outcome[str(address)] = "connected"
                except OSError as exc:
                    outcome[str(address)] = type(exc).__name__
            # The sandbox's own loopback works: a kernel and its client inside talk over it.
            with socket.create_server(("127.0.0.1", 0)) as own:
                socket.create_connection(own.getsockname(), timeout=3).close()
                outcome["own loopback"] = "connected"
            print(json.dumps(outcome))
        """)
        with pytest.raises(BlockingIOError):
            server.accept()
    outcome = last_json(result)
    assert outcome.pop("own loopback") == "connected"
    assert "connected" not in outcome.values(), outcome


@needs_sandbox
def test_memory_hog_is_stopped_fast(course):
    # Stopped as soon as it passes 2G: how fast depends only on how fast this machine hands out
    # pages (2 GB take 3-20 s on 2 busy cores); without the sandbox it would take all 24 GB.
    limits = Limits(memory=2 << 30, wall_seconds=300)
    result = sandboxed(course, "x = b'x' * (12 << 30)\nprint('allocated 12 GB')", limits=limits)
    assert result.limit_hit == "memory", result
    assert result.message == "stopped: used more than 2G of memory (MEM_LIMIT)"
    assert "allocated" not in result.output
    assert result.seconds < 120


@needs_sandbox
def test_memory_in_tmpfs_counts_too(course):
    # /tmp and /dev/shm are RAM: each is capped at MEM_LIMIT (a write past it fails with ENOSPC),
    # and what they hold together counts against MEM_LIMIT with the processes' memory.
    limits = Limits(memory=512 << 20, wall_seconds=60)
    result = sandboxed(course, """
        chunk = b"x" * (32 << 20)
        for path in ["/dev/shm/hoard", "/tmp/hoard"]:
            with open(path, "wb") as f:
                for _ in range(10):
                    f.write(chunk)
        del chunk
        print("hoarded 640 MB", flush=True)
        import time; time.sleep(30)
    """, limits=limits)
    assert result.limit_hit == "memory", result
    assert result.seconds < 25


@needs_sandbox
def test_process_bomb_is_stopped_and_leaves_nothing(course):
    marker = f"bomb-{uuid.uuid4().hex}"
    result = sandboxed(course, f"""
        import os, time
        # {marker}
        for _ in range(200):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
        time.sleep(60)
    """, limits=Limits(processes=64, wall_seconds=60))
    assert result.limit_hit == "processes", result
    assert "PROC_LIMIT" in result.message
    assert result.seconds < 30
    assert no_process_with(marker)


@needs_sandbox
def test_endless_loop_hits_the_wall_limit(course):
    result = sandboxed(course, "while True:\n    pass", limits=Limits(wall_seconds=3))
    assert result.limit_hit == "wall", result
    assert 3 <= result.seconds < 10
    assert result.message == "stopped: ran longer than 3 s (WALL_LIMIT)"


@needs_sandbox
def test_cpu_hog_hits_the_cpu_limit(course):
    limits = Limits(cpu_seconds=1, wall_seconds=60)
    result = sandboxed(course, "while True:\n    pass", limits=limits)
    assert result.limit_hit == "cpu", result
    assert result.seconds < 30


@needs_sandbox
def test_a_daemon_does_not_outlive_the_sandbox(course):
    alice = course / "submitted" / "alice"
    marker = f"daemon-{uuid.uuid4().hex}"
    result = sandboxed(course, f"""
        import os, time
        # {marker}
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(2)
                open("daemon.txt", "w").write("I survived")
                os._exit(0)
            os._exit(0)
        print("parent exits", flush=True)
    """)
    assert result.returncode == 0 and result.limit_hit is None, result
    assert no_process_with(marker)
    time.sleep(3)
    assert not (alice / "daemon.txt").exists()


@needs_sandbox
def test_torch_and_mmseg_work_under_the_default_limits(course):
    alice = course / "submitted" / "alice"
    result = sandboxed(course, f"""
        import getpass, json, sys
        import numpy, torch, mmseg
        user = getpass.getuser()  # mmengine's logger asks
        sys.path.insert(0, {str(course)!r})
        import helpers
        x = torch.randn(2, 3, 64, 64)
        y = torch.nn.Conv2d(3, 8, 3)(x)
        open("result.txt", "w").write(str(tuple(y.shape)))
        print(json.dumps({{"torch": torch.__version__, "mmseg": mmseg.__version__,
                           "numpy": numpy.__version__, "course": helpers.COURSE,
                           "user": user}}))
    """, limits=Limits.from_env({}))
    assert result.limit_hit is None, result
    versions = last_json(result)
    assert versions["course"] == "voc" and versions["user"]
    assert (alice / "result.txt").read_text() == "(2, 8, 62, 62)"
    assert "cpuinfo" not in result.output, result.output  # no complaint about the hidden /sys


SERVER = """
import json, sys, time
for line in sys.stdin:
    job = json.loads(line)
    if job["what"] == "work":
        time.sleep(job["seconds"])
    else:  # answers, then misbehaves between requests
        print(json.dumps({"done": True}), flush=True)
        blob = b"x" * (1 << 30)
        time.sleep(60)
    print(json.dumps({"done": True}), flush=True)
"""


@needs_sandbox
def test_a_session_watches_closely_during_requests_and_still_between(course, monkeypatch):
    """The watchdog checks every POLL_SECONDS while a request runs and once a second while the
    server waits (it costs an idle server nothing), and still stops a server that grows
    between requests."""
    checks = []
    real = sandbox._Sandbox.check

    def counted(self):
        checks.append(time.monotonic())
        return real(self)

    monkeypatch.setattr(sandbox._Sandbox, "check", counted)
    alice = course / "submitted" / "alice"
    session = sandbox.Session([sys.executable, "-c", SERVER], writable=[alice],
                              env={"PATH": "/usr/bin:/bin", "HOME": str(alice)}, cwd=alice,
                              limits=Limits(memory=512 << 20, wall_seconds=120))

    def between(start: float, end: float) -> int:
        return sum(start <= t <= end for t in checks)

    try:
        assert session.request({"what": "work", "seconds": 0.1}, 60, print, 1 << 20)[0] == ""
        began = time.monotonic()
        assert session.request({"what": "work", "seconds": 1.5}, 60, print, 1 << 20)[0] == ""
        busy = between(began, time.monotonic())
        began = time.monotonic()
        time.sleep(2.5)
        idle = between(began, time.monotonic())
        assert busy >= 10 and idle <= 4, (busy, idle)  # 1.5 s at 20 a second; 2.5 s at 1
        assert session.request({"what": "grow"}, 60, print, 1 << 20)[0] == ""
        box = session._box
        deadline = time.monotonic() + 60
        while box.limit_hit is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert box.limit_hit == "memory" and box.proc.poll() is not None
        assert session.request({"what": "work", "seconds": 0}, 60, print, 1 << 20)[0] == ""
        assert session.starts == 2
    finally:
        session.close()
