"""The grader's harness, run inside the sandbox: ``python -I harness.py KIT [--sandboxed]``.

It grades notebook hand-ins, one task at a time, the way PrairieLearn's Python grader does:
setup code, then the student's code, then test code, each in its place. It is a server: the
sandbox starts and the libraries are imported once, then it grades one hand-in after another.

1. It reads ``KIT/init.json`` (written by the grader: the task modules ``teacher/tasks/nNN_*.py``
   with the tasks' givens and hidden probes, and the scratch folder), compiles the modules,
   imports their libraries, then deletes the kit: nothing of it stays on disk. It makes itself
   undumpable: no process of the sandbox may ptrace it or open its /proc files.
2. For each hand-in it forks the hand-in's own process *before* the job is read, so that no
   other hand-in's answers are ever in its memory. That process reads one job (a line of JSON
   on stdin) and, for every task, forks a child with a fresh namespace. In the child:

   - stdin, stdout and stderr are /dev/null: what the student's code prints goes nowhere;
   - the task's **givens** are built (``givens(ns, ctx)``: the names the task text says the
     answer may use, made here, never taken from the student's notebook), and only the course
     modules the task declares (``uses``) exist, as ``course.<name>``;
   - the ``def``, ``class`` and ``import`` statements of the hand-in's *earlier* answer cells run
     (a function written for one task may be used in a later one), each on its own, errors
     ignored; then the task's own answer cell runs;
   - the **probe** (``probe(ns, ctx)``) returns the task's cases, ``{kind: call}``; each call's
     result becomes plain data (:mod:`data`), or the one-line reason it has none.

3. The hand-in's process waits for each child at most the task's ``timeout`` and sends each
   task's results to the grader as a line of JSON on stdout. When it ends, the server kills
   every other process of the sandbox (with ``--sandboxed``: what the answers left running),
   empties the scratch folder, /tmp and /dev/shm, and says ``{"done": true}``. The grader reads
   the lines (capped), compares them with the truths in its own process and never runs
   anything the sandbox wrote.

Nothing here imports the course's package: it is not in the sandbox.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import os
import secrets
import select
import shutil
import signal
import sys
import time
import traceback
import types
from pathlib import Path

_PENDING: list[dict] = []
"""The job's tasks (each child empties its copy before the student's code runs)."""

#: The most bytes of results one task may send back (a larger answer is reported as such).
MAX_TASK_BYTES = 1 << 20

#: Seconds without a hand-in after which the server ends (the grader starts a fresh one).
IDLE_SECONDS = 300

ANSWER = "<answer>"
"""The file name the task's own answer cell is compiled under (tracebacks name its lines)."""


class Context:
    """What givens and probes get besides the namespace: where things are, and plain data."""

    def __init__(self, job: dict, scratch: str) -> None:
        from data import digest, plain

        self.voc_root = job["voc_root"]
        self.fixtures = job["fixtures"]
        self.scratch = scratch
        self.plain = plain
        self.digest = digest


def _parse(source: str, filename: str) -> ast.Module:
    """The cell's syntax tree; IPython magics and shell lines become Python as IPython would
    (they then fail when run: an answer is plain Python)."""
    try:
        return ast.parse(source, filename)
    except SyntaxError:
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source), filename)


def _where(tb) -> str:
    """`` in line N of your answer`` for the deepest frame of the student's code in `tb`."""
    found = ""
    for frame in traceback.extract_tb(tb):
        if frame.filename == ANSWER:
            found = f" in line {frame.lineno} of your answer"
        elif frame.filename.startswith("<answer to "):
            found = f" in line {frame.lineno} of your answer to {frame.filename[11:-1]}"
    return found


def _run_earlier(cells: list[list[str]], ns: dict) -> None:
    """The def, class and import statements of earlier answer cells, each on its own."""
    for grade_id, source in cells:
        filename = f"<answer to {grade_id}>"
        try:
            tree = _parse(source, filename)
        except BaseException:  # noqa: BLE001 (a broken earlier cell defines nothing)
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
                          | ast.Import | ast.ImportFrom):
                try:
                    exec(compile(ast.Module([node], []), filename, "exec"), ns)  # noqa: S102
                except BaseException:  # noqa: BLE001,S112
                    continue


def _course(sources: dict[str, str]) -> None:
    """``course.<name>`` modules from the task's declared course sources."""
    package = types.ModuleType("course")
    package.__path__ = []
    sys.modules["course"] = package
    for name, source in sources.items():
        module = types.ModuleType(f"course.{name}")
        module.__file__ = f"<course {name}>"
        sys.modules[module.__name__] = module
        setattr(package, name, module)
        exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102


def _child(module: types.ModuleType, task: dict, job: dict) -> dict:
    from data import check_plain, plain

    spec = module.TASKS[task["grade_id"]]
    scratch = Path(task.pop("folder"))
    os.chdir(scratch)
    os.environ["HOME"] = str(scratch)
    ctx = Context(job, str(scratch))
    _course(task.pop("course", {}))
    job.clear()  # other tasks' course code and cells: gone before the student's code runs
    _PENDING.clear()
    ns: dict = {"__name__": "__main__", "__builtins__": builtins}
    spec["givens"](ns, ctx)
    _run_earlier(task["earlier"], ns)
    result: dict = {"cases": {}}
    try:
        code = compile(_parse(task["answer"], ANSWER), ANSWER, "exec")
    except BaseException as exc:  # noqa: BLE001 (SyntaxError, RecursionError, MemoryError)
        result["answer"] = f"your answer cell could not be compiled ({type(exc).__name__})"
        code = None
    if code is not None:
        try:
            exec(code, ns)  # noqa: S102 (the student's answer, in the sandbox)
        except BaseException as exc:  # noqa: BLE001 (SystemExit too: the answer's own)
            where = _where(exc.__traceback__).replace(" of your answer", "", 1)
            result["answer"] = f"your answer cell raised {type(exc).__name__}{where}"
    try:
        cases = spec["probe"](ns, ctx)
    except BaseException as exc:  # noqa: BLE001 (the answer left out what the probe calls)
        return result if "answer" in result else dict(
            result, error=f"its probe could not start ({type(exc).__name__})")
    for kind, call in cases.items():
        try:
            payload = plain(call())
            check_plain(payload)
            result["cases"][kind] = {"payload": payload}
        except BaseException as exc:  # noqa: BLE001
            where = _where(exc.__traceback__)
            result["cases"][kind] = {"error": f"raised {type(exc).__name__}{where}" if where
                                     else f"its result could not be used ({type(exc).__name__})"}
    return result


def _collect(read_fd: int, pid: int, timeout: float) -> tuple[bytes, str]:
    """Read the child's result until EOF, the child's end (a process it left may hold the pipe
    open) or `timeout`; ("", reason) when there is none."""
    chunks, size, deadline = [], 0, time.monotonic() + timeout
    reason, status = "", None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            reason = f"took longer than {timeout:g} s"
            break
        ready, _, _ = select.select([read_fd], [], [], min(left, 0.05))
        if not ready:
            done, code = os.waitpid(pid, os.WNOHANG)
            if not done:
                continue
            status = code  # it wrote all it had before it ended: take what the pipe holds
            os.set_blocking(read_fd, False)
        try:
            chunk = os.read(read_fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_TASK_BYTES:
            reason = f"returned more than {MAX_TASK_BYTES >> 20} MB of results"
            break
        chunks.append(chunk)
    os.close(read_fd)
    if reason:
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except (ProcessLookupError, PermissionError):
                pass
    if status is None:
        _, status = os.waitpid(pid, 0)
    try:
        os.killpg(pid, signal.SIGKILL)  # what the answer left running
    except (ProcessLookupError, PermissionError):
        pass
    if not reason and not chunks:
        reason = ("stopped: the process grading it was killed or ran out of memory"
                  if os.WIFSIGNALED(status) else "ended the grading process (os._exit?)")
    return b"".join(chunks), reason


def _task(module: types.ModuleType, task: dict, job: dict) -> dict:
    # A folder no earlier task can have guessed and filled: its name is drawn now.
    task["folder"] = os.path.join(job["scratch"], f"{task['grade_id']}-{secrets.token_hex(8)}")
    os.mkdir(task["folder"], 0o700)
    read_fd, write_fd = os.pipe()
    began = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        status = 0
        try:
            os.setpgid(0, 0)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            out = _child(module, task, job)
        except BaseException as exc:  # noqa: BLE001
            out, status = {"error": f"the harness failed ({type(exc).__name__}: {exc})"}, 1
        try:
            data = json.dumps(out, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            data = json.dumps({"error": f"results not plain data ({exc})"}).encode()
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(write_fd, view[: 1 << 16]):]
        except OSError:
            status = 1
        os._exit(status)
    os.close(write_fd)
    timeout = min(float(module.TASKS[task["grade_id"]].get("timeout", 120)),
                  float(job.get("timeout_cap") or "inf"))
    data, reason = _collect(read_fd, pid, timeout)
    seconds = round(time.monotonic() - began, 3)
    shutil.rmtree(task["folder"], ignore_errors=True)
    if reason:
        return {"error": reason, "seconds": seconds}
    try:
        out = json.loads(data)
    except ValueError:
        return {"error": "sent back something that is not JSON", "seconds": seconds}
    return dict(out, seconds=seconds) if isinstance(out, dict) else {"error": "bad result"}


def _emit(answer: dict) -> None:
    """One line of JSON to the grader (fd 1: the sandbox's stdout)."""
    view = memoryview(json.dumps(answer).encode() + b"\n")
    while view:
        view = view[os.write(1, view):]


def _load(kit: str) -> tuple[dict, str]:
    """The task modules of ``kit/init.json`` compiled, their libraries imported; the kit
    deleted. Returns (notebook → module, the scratch folder)."""
    init = json.loads(Path(kit, "init.json").read_text())
    sys.path.insert(0, kit)
    importlib.import_module("data")
    sys.path.remove(kit)
    modules = {}
    for notebook, source in init["modules"].items():
        module = types.ModuleType("course_tasks")
        module.__file__ = "<tasks>"
        sys.modules[module.__name__] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102
        modules[notebook] = module
    for module in modules.values():
        for name in getattr(module, "PRELOAD", ()):
            importlib.import_module(name)
        try:  # what a library does once on its first call (tables, registries), done here once
            getattr(module, "warm_up", lambda: None)()
        except Exception:  # noqa: BLE001,S110 (a warm-up only saves time)
            pass
    shutil.rmtree(kit, ignore_errors=True)  # this kit and the init: not on disk for the answers
    return modules, init["scratch"]


def _hand_in(modules: dict) -> int:
    """Read one job from stdin and grade it, task by task (in the hand-in's own process, forked
    from the server before the job is read: no other hand-in's answers are in its memory)."""
    line = sys.stdin.buffer.readline()
    if not line:
        return 3  # the grader closed the session
    job = json.loads(line)
    module = modules[job.pop("notebook")]
    sys.modules["course_tasks"] = module
    _PENDING.extend(job.pop("tasks"))
    while _PENDING:
        task = _PENDING.pop(0)
        _emit({"task": task["grade_id"], "result": _task(module, task, job)})
        del task
    return 0


def _undumpable() -> None:
    """No process of the sandbox may ptrace this one or open its /proc files (fd, mem): the
    answers run as the same user. Children inherit it."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _reset(scratch: str, sandboxed: bool) -> bool:
    """After a hand-in: every other process of the sandbox killed (what its answers left
    running, daemons included) and every writable place emptied. False if something stays."""
    if sandboxed:
        # kill(-1) signals every process of this PID namespace but its init and the caller;
        # only in the sandbox (checked twice: the flag, and bwrap's hostname).
        for _ in range(500):
            _reap()
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.002)
        else:
            return False
    _reap()
    mounts = _mount_points()
    places = [scratch] + (["/tmp", "/dev/shm"] if sandboxed else [])
    return all(_empty(place, mounts) for place in places)


def _mount_points() -> set[str]:
    """Every mount point of this process's view (the read-only binds under /tmp among them)."""
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4].replace("\\040", " ") for line in f}


def _empty(folder: str, mounts: set[str]) -> bool:
    """Delete what `folder` holds, except the mounts in it and the folders that lead to them."""
    for entry in os.scandir(folder):
        path = entry.path
        try:
            if path in mounts:
                continue
            if any(m.startswith(path + "/") for m in mounts):
                if not _empty(path, mounts):
                    return False
            elif entry.is_dir(follow_symlinks=False):
                for root, dirs, _ in os.walk(path):
                    for d in dirs:
                        os.chmod(os.path.join(root, d), 0o700, follow_symlinks=False)
                os.chmod(path, 0o700)
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError:
            return False
    return True


def main(argv: list[str]) -> int:
    """``harness.py KIT [--sandboxed]``: serve hand-ins until stdin closes or stays idle."""
    import socket

    kit, flags = argv[0], argv[1:]
    sandboxed = "--sandboxed" in flags and socket.gethostname() == "sandbox"
    modules, scratch = _load(kit)
    _undumpable()
    while True:
        ready, _, _ = select.select([0], [], [], IDLE_SECONDS)
        if not ready:
            return 0
        pid = os.fork()
        if pid == 0:  # the hand-in's process: never returns
            status = 1
            try:
                status = _hand_in(modules)
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        clean = _reset(scratch, sandboxed)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3:
            return 0
        _emit({"done": True})
        if not clean:
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
