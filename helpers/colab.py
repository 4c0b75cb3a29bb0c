"""Colab: the notebooks' install cell and the installer it runs (`python -m helpers.colab`).

Standard library only: this module runs on a fresh Colab runtime before anything is installed.

The install cell (`install_cell`) clones the course into ``/content/course`` and calls `setup`,
which installs only what Colab lacks from ``requirements.txt``: Colab's own torch, numpy and
friends stay. mmcv 2.1.0 has no wheel for Colab's torch, so it is built once from its sdist
(`helpers.mmcv_wheel`) and kept, with ``data/`` and ``work_dirs/``, on the student's Google Drive
(``USE_DRIVE = True``, the default; ``False`` opts out), so that later runtimes reuse the wheel
and notebooks 04 and 05 find the run notebook 03 trained. Within one runtime a wheel built
before is reused too. Every step that fails raises `SetupError`, naming the step, the command
and the fix; a Drive that cannot be mounted only says so, and the set-up goes on without it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import time
import urllib.request
from pathlib import Path

from helpers.mmcv_wheel import (
    TORCH_FIX,
    SetupError,
    build_wheel,
    install_name,
    read_pins,
    run_step,
    say,
    torch_info,
    wheel_key,
)

__all__ = ["install_cell", "setup", "plan", "needs_restart", "SetupError", "main"]

# Not needed on Colab: the test and notebook-running tools of `make test`, and mmcv's build tools
# (those go to a private folder while mmcv builds, see helpers.mmcv_wheel). setuptools is not
# among them: on Python >= 3.12 it provides the `distutils` that mmengine's Runner imports.
TEST_ONLY = {"jupyterlab", "ipykernel", "nbconvert", "nbformat", "nbval", "nbclient", "pytest",
             "ruff", "nbgrader", "papermill"}
BUILD_ONLY = {"wheel", "ninja", "psutil"}
# Colab's own version is kept unless it is older than this: below it the stack cannot work.
FLOORS = {"torch": (2, 0), "numpy": (1, 23)}
KEEP = ("torch", "numpy")  # pip may not change these while installing the rest
DRIVE_FOLDER = "voc-segmentation-course"
STAMP = ".colab-installed.json"
NET_FIX = "check the internet connection (PyPI must be reachable), then run the cell again."

CELL = '''\
# Colab only: fetch the course and install what Colab lacks (mmcv builds once, ~7 min, and is
# kept on your Google Drive with your data and runs, for later runtimes). Locally: nothing.
USE_DRIVE = True  # False: nothing on Drive; your runs and mmcv's build are lost with the runtime
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
                               f"{{r.stderr.strip()}}\\nFix: check the URL or set COURSE_REPO_URL")
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


def install_cell(repo_url: str) -> str:
    """Source of the first code cell of every notebook, cloning the course from `repo_url`.

    On Colab (``google.colab`` imported) it clones ``COURSE_REPO_URL`` (default: `repo_url`) into
    ``COURSE_DIR`` (default ``/content/course``), or reuses that clone, runs `setup` and imports
    the stack. Anywhere else it does nothing.
    """
    if not repo_url or any(c in repo_url for c in "\"\\\n"):
        raise ValueError(f"install_cell: {repo_url!r} is not a usable repository URL")
    return CELL.format(repo_url=repo_url)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.match(r"\d+(?:\.\d+)*", version).group(0).split("."))


def installed() -> dict[str, str]:
    """``{normalized name: version}`` of every distribution this Python sees (first one wins)."""
    importlib.invalidate_caches()
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"]:
            found.setdefault(_norm(dist.metadata["Name"]), dist.version)
    return found


def plan(pins: dict[str, str], have: dict[str, str]) -> tuple[list[str], list[str]]:
    """What to install (``name==pin`` for what is missing, or too old to work) and what of
    Colab's is kept although it differs from the pin (``name version``). mmcv, build tools and
    test tools are left out."""
    todo, kept = [], []
    for name, version in pins.items():
        if name in TEST_ONLY or name in BUILD_ONLY or name == "mmcv":
            continue
        if name not in have or (name in FLOORS and _release(have[name]) < FLOORS[name]):
            todo.append(f"{name}=={version}")
        elif have[name] != version:
            kept.append(f"{name} {have[name]}")
    return todo, kept


def needs_restart(before: dict[str, str], after: dict[str, str], loaded: set[str]) -> list[str]:
    """Distributions that pip replaced while this process had imported them (`loaded` holds
    top-level module names): the running kernel holds their old code."""
    provides: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            provides.setdefault(_norm(dist), set()).add(module)
    changed = [n for n in before if n in after and after[n] != before[n]]
    return [f"{n} {before[n]} -> {after[n]}" for n in changed
            if provides.get(n, {n.replace("-", "_")}) & loaded]


def _mmcv_ready(version: str) -> bool:
    """mmcv `version` with compiled ops is installed (checked without importing it)."""
    try:
        dist = importlib.metadata.distribution("mmcv")
    except importlib.metadata.PackageNotFoundError:
        return False
    return dist.version == version and any(str(f).startswith("mmcv/_ext") for f in dist.files or [])


def _mount_drive(course: Path, say=say) -> Path | None:
    """Mount Google Drive next to the course (Colab asks for consent); return the course folder
    on it, created when missing, or None after saying why it could not be mounted."""
    mount = course.parent / "drive"
    try:
        from google.colab import drive

        drive.mount(str(mount))
    except Exception as exc:  # the consent refused, or no Colab: both end here
        say(f"Step 2/3 Drive: mounting Google Drive at {mount} failed ({exc}): going on without "
            "it, so your runs and mmcv's build last only as long as this runtime. To keep them, "
            "run the cell again and accept Colab's consent prompt; USE_DRIVE = False stops asking.")
        return None
    folder = mount / "MyDrive" / DRIVE_FOLDER
    (folder / "wheels").mkdir(parents=True, exist_ok=True)
    return folder


def _link_to_drive(course: Path, folder: Path, say) -> None:
    """data/ and work_dirs/ of the clone become links into Drive, so they outlive the runtime."""
    for name in ("data", "work_dirs"):
        link, target = course / name, folder / name
        target.mkdir(exist_ok=True)
        if link.is_symlink() and link.resolve() == target.resolve():
            continue
        if link.is_dir() and not link.is_symlink() and any(link.iterdir()):
            say(f"Kept {link} on the runtime (not empty); move it to {target} to keep it.")
            continue
        if link.is_symlink() or link.is_dir():
            link.unlink() if link.is_symlink() else link.rmdir()
        link.symlink_to(target, target_is_directory=True)
    say(f"data/ and work_dirs/ live on Drive: {folder}")


def _find_wheel(key: str, drive: Path | None, wheels: Path, say) -> Path | None:
    """A wheel for `key`: built before in this runtime (`wheels`), from Drive, else from
    MMCV_WHEEL_URL (a .whl or a folder of them), downloaded into `wheels`."""
    if (wheels / f"{key}.whl").is_file():
        say(f"mmcv: wheel built earlier in this runtime ({key}.whl), no build needed.")
        return wheels / f"{key}.whl"
    if drive is not None and (drive / "wheels" / f"{key}.whl").is_file():
        say(f"mmcv: cached wheel found on Drive ({key}.whl), no build needed.")
        return drive / "wheels" / f"{key}.whl"
    url = os.environ.get("MMCV_WHEEL_URL", "").strip()
    if not url:
        return None
    exact = url.endswith(".whl")
    url = url if exact else f"{url.rstrip('/')}/{key}.whl"
    wheels.mkdir(parents=True, exist_ok=True)
    dest = wheels / f"{key}.whl"
    try:
        urllib.request.urlretrieve(url, dest)
    except (OSError, ValueError) as exc:
        dest.unlink(missing_ok=True)  # no half-downloaded wheel for the next call to reuse
        if exact:
            raise SetupError(f"Step 2/3 mmcv: downloading MMCV_WHEEL_URL={url} failed ({exc}).\n"
                             "Fix: correct MMCV_WHEEL_URL, or unset it to build mmcv here."
                             ) from None
        say(f"mmcv: no hosted wheel for this runtime at {url} ({exc}); building instead.")
        return None
    say(f"mmcv: hosted wheel downloaded from {url}.")
    return dest


def _obtain_mmcv(version: str, pins: dict[str, str], course: Path, drive: Path | None,
                 say) -> Path:
    """The mmcv wheel for this Python and torch: cached, hosted, or built (then cached)."""
    key, wheels = wheel_key(version), course / "build" / "wheels"
    wheel = _find_wheel(key, drive, wheels, say)
    if wheel is None:
        wheel = build_wheel(version, wheels, pins, say)
        if drive is not None:
            shutil.copyfile(wheel, drive / "wheels" / wheel.name)
            say(f"mmcv: wheel saved to Drive ({drive / 'wheels' / wheel.name}) for later runtimes.")
    named = wheels / "install" / install_name(wheel)  # the file name pip insists on
    named.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wheel, named)
    return named


def setup(use_drive: bool = True, course: str | Path | None = None, say=say) -> None:
    """Step 2/3 of the install cell: install what this runtime lacks for the course.

    Reads the pins of ``requirements.txt``; installs the missing ones and mmcv (from Drive, from
    ``MMCV_WHEEL_URL``, or built); keeps Colab's versions of what it has. Drive is used when
    `use_drive` (the default) or ``COURSE_USE_DRIVE=1``; a Drive that cannot be mounted is
    skipped with a message. A second call after a success takes seconds (stamp).
    When pip replaced a package the kernel had already imported, the runtime is restarted.
    """
    start = time.monotonic()
    course = Path(course or os.environ.get("COURSE_DIR") or Path(__file__).resolve().parents[1])
    use_drive = use_drive or os.environ.get("COURSE_USE_DRIVE", "0") == "1"
    drive = _mount_drive(course, say) if use_drive else None
    if drive is not None:
        _link_to_drive(course, drive, say)
    pins = read_pins(course / "requirements.txt")
    torch_version = torch_info()[0] if importlib.util.find_spec("torch") else "none"
    stamp_key = {"python": sys.version.split()[0], "torch": torch_version, "pins": pins}
    stamp = course / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == stamp_key \
            and _mmcv_ready(pins["mmcv"]):
        say(f"Course stack already installed for this runtime ({stamp.name}): nothing to do.")
        return
    before = installed()
    todo, kept = plan(pins, before)
    # pip may add what is missing but not move Colab's torch or numpy (unless below FLOORS)
    constraints = course / "build" / "colab-keep.txt"
    constraints.parent.mkdir(exist_ok=True)
    constraints.write_text("".join(f"{n}=={before[n]}\n" for n in KEEP
                                   if n in before and f"{n}=={pins.get(n)}" not in todo))
    pip = [sys.executable, "-m", "pip", "install", "-q", "-c", str(constraints)]
    if todo:
        say(f"Installing what this runtime lacks: {' '.join(todo)}")
        run_step("Step 2/3 packages", [*pip, *todo], NET_FIX)
    if not _mmcv_ready(pins["mmcv"]):
        wheel = _obtain_mmcv(pins["mmcv"], pins, course, drive, say)
        run_step("Step 2/3 mmcv (install)", [*pip, str(wheel)],
                 f"delete the wheel if it came from Drive or MMCV_WHEEL_URL. {TORCH_FIX}")
    run_step("Step 2/3 helpers", [*pip, "--no-deps", "--no-build-isolation", "-e", str(course)],
             f"run the cell again; if it fails again, delete {course} and rerun.")
    run_step("Step 2/3 check", [sys.executable, "-c", "import mmcv.ops, mmseg, helpers"],
             f"read the error above. {TORCH_FIX}")
    stamp.write_text(json.dumps(stamp_key))
    if kept:
        say(f"Kept this runtime's own {', '.join(kept)}.")
    replaced = needs_restart(before, installed(), {m.split(".")[0] for m in sys.modules})
    say(f"Set-up done in {time.monotonic() - start:.0f} s.")
    if replaced and "google.colab" in sys.modules:
        say(f"Restarting the runtime: pip replaced {', '.join(replaced)}, already imported here. "
            "Colab reconnects by itself; then run this cell again (seconds, nothing is rebuilt).")
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    """``python -m helpers.colab``: the same installation outside a notebook (Drive only with
    ``COURSE_USE_DRIVE=1``)."""
    try:
        setup(use_drive=False)
    except SetupError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
