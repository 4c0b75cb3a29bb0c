"""The student's kernel in a sandbox, nbgrader outside it.

`make grade` runs ``nbgrader autograde`` with the teacher's rights (it reads the gradebook, which
holds the hidden tests, and writes the graded notebook), and only the kernel that executes the
hand-in inside :mod:`teacher.sandbox`. nbgrader's executor is configured with
:class:`SandboxedKernelManager`: the kernel talks to nbgrader over Unix sockets (``ipc``
transport) in one folder that both see, since the sandbox has no network, and it starts through
``python -m teacher.kernel -- KERNEL ARGV``, which runs the kernel with :func:`teacher.sandbox.run`
under the limits and writes how it ended to a report file for the grader.

The launcher reads what the sandbox may see from the ``COURSE_SANDBOX`` variable (JSON, set by
the grader on nbgrader's environment; see :func:`settings`), and hands the kernel exactly the
environment it gets itself, without that variable.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

__all__ = ["SandboxedKernelManager", "settings", "main", "ENV"]

#: The variable that carries the sandbox's settings from the grader to the launcher.
ENV = "COURSE_SANDBOX"


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts the kernel through the sandbox launcher.

    Its connection file and Unix sockets lie in ``JUPYTER_RUNTIME_DIR`` (the grader binds that
    folder into the sandbox), by absolute paths: nbgrader and the kernel work in other folders.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from jupyter_core.paths import jupyter_runtime_dir

        self.transport = "ipc"
        stem = os.path.join(jupyter_runtime_dir(), f"kernel-{uuid.uuid4().hex[:12]}")
        self.connection_file = stem + ".json"
        self.ip = stem + "-ipc"

    @property
    def kernel_spec(self) -> Any:
        """The kernel's spec, interrupted by a message: a signal to the launcher would not reach
        the kernel inside the sandbox's PID namespace."""
        spec = super().kernel_spec
        if spec is not None:
            spec.interrupt_mode = "message"
        return spec

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        return [sys.executable, "-m", "teacher.kernel", "--", *cmd]


def settings(*, read_only: list[str], writable: list[str], mapped: dict[str, str],
             report: str, limits: dict[str, float]) -> str:
    """The ``COURSE_SANDBOX`` value: what the kernel sees, where the launcher reports, limits.

    The kernel's working folder (nbgrader's folder of the graded notebook) is replaced inside by
    an empty folder of the launcher's: the kernel never sees the graded notebooks."""
    return json.dumps(dict(read_only=read_only, writable=writable, mapped=mapped, report=report,
                           limits=limits))


def _die_with_parent() -> None:
    """Be killed when nbgrader ends, however it ends (the sandbox then dies with us)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: nbgrader's own shutdown still ends us
        pass


def main(argv: list[str] | None = None) -> int:
    from teacher import sandbox

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts reach the kernel as messages
    _die_with_parent()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    conf: dict[str, Any] = json.loads(os.environ[ENV])
    # JPY_PARENT_PID names the grader's process, which the sandbox's own PID namespace does not
    # have: the kernel would think its parent gone and quit. --die-with-parent stands for it.
    env = {k: v for k, v in os.environ.items() if k not in (ENV, "JPY_PARENT_PID")}
    cwd = Path.cwd()
    empty = Path(conf["report"]).with_suffix(".cwd")
    empty.mkdir(parents=True, exist_ok=True)
    limits = sandbox.Limits(**conf["limits"])
    result = sandbox.run(argv, read_only=conf["read_only"], writable=conf["writable"],
                         mapped={**conf["mapped"], str(empty): str(cwd)}, env=env, cwd=cwd,
                         limits=limits)
    Path(conf["report"]).write_text(json.dumps(dict(
        returncode=result.returncode, limit_hit=result.limit_hit, message=result.message,
        seconds=result.seconds, peak_rss=result.peak_rss)))
    if result.limit_hit or result.returncode:
        sys.stderr.write(result.output[-2000:])
    return result.returncode if result.returncode >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
