"""Colab: the notebooks' install cell and the installer it runs (`python -m helpers.colab`).

Standard library only: this module runs on a fresh Colab runtime before anything is installed.

The install cell (`install_cell`) clones the course into ``/content/course`` and calls `setup`,
which installs only what Colab lacks from ``requirements.txt``: Colab's own torch, numpy and
friends stay. mmcv 2.1.0 has no wheel for Colab's torch, so it is built once from its sdist
(`helpers.mmcv_wheel`) and, when the student opts in with ``USE_DRIVE = True``, kept on Google
Drive for later runtimes. Every step that fails raises `SetupError`, naming the step, the command
and the fix.
"""

from __future__ import annotations

__all__ = ["install_cell", "setup", "SetupError"]

CELL = '''\
# Colab only: fetch the course and install what Colab lacks (mmcv builds once, ~7 min; with
# USE_DRIVE its wheel is kept on your Google Drive and later runtimes reuse it). Locally: nothing.
USE_DRIVE = False  # True: keep mmcv's wheel, data/ and work_dirs/ on Google Drive (asks consent)
import os
import subprocess
import sys
if "google.colab" in sys.modules:
    url = os.environ.get("COURSE_REPO_URL", "{repo_url}")
    course = os.environ.get("COURSE_DIR", "/content/course")
    if not os.path.isdir(os.path.join(course, ".git")):
        r = subprocess.run(["git", "clone", "-q", "--depth", "1", url, course],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"Step 1/3 clone: `git clone {{url}} {{course}}` failed: "
                               f"{{r.stderr.strip()}}\\nFix: check the URL, or set COURSE_REPO_URL.")
    os.chdir(course)
    if course not in sys.path:
        sys.path.insert(0, course)
    from helpers.colab import setup
    setup(use_drive=USE_DRIVE)  # step 2/3: what Colab lacks; restarts the runtime when it must
    import helpers  # step 3/3: the stack imports
    import mmcv.ops
    import mmseg
    import torch
    print(f"Colab ready: torch {{torch.__version__}}, mmcv {{mmcv.__version__}} with ops, "
          f"mmseg {{mmseg.__version__}}, helpers in {{os.path.dirname(helpers.__file__)}}")'''


class SetupError(RuntimeError):
    """A set-up step failed; the message names the step, the command and the fix."""


def install_cell(repo_url: str) -> str:
    """Source of the first code cell of every notebook, cloning the course from `repo_url`.

    On Colab (``google.colab`` imported) it clones ``COURSE_REPO_URL`` (default: `repo_url`) into
    ``COURSE_DIR`` (default ``/content/course``), or reuses that clone, runs `setup` and imports
    the stack. Anywhere else it does nothing.
    """
    if not repo_url or any(c in repo_url for c in "\"\\\n"):
        raise ValueError(f"install_cell: {repo_url!r} is not a usable repository URL")
    return CELL.format(repo_url=repo_url)


def setup(use_drive: bool = False) -> None:
    """Install what Colab lacks (placeholder until the installer lands)."""
    raise SetupError("Step 2/3 install: not implemented yet")
