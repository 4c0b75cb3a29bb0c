"""Build mmcv's wheel against the installed torch, once, and find it again (Colab, `make wheel`).

Standard library only: it runs on a fresh Colab runtime before anything is installed.

No mmcv 2.1.0 wheel exists for today's torch, so it is built from the sdist on PyPI with its
compiled ops and CUDA hidden (PSPNet needs no mmcv CUDA kernel; the CPU build is much faster).
A built wheel is named by its key (`wheel_key`): Python tag, torch version, torch's CUDA or CPU
build, mmcv version. A wheel is only valid for exactly that torch.

torch 2.15 and later need C++20 (their headers say ``#error C++20 or later compatible compiler is
required to use ATen``) while mmcv 2.1.0's ``setup.py`` asks for ``-std=c++17``. When the headers
say so, `build_wheel` raises that one flag in the unpacked sdist, a checked one-line edit.

    python -m helpers.mmcv_wheel --out build/wheels   # build for this Python + torch, print path
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

__all__ = ["SetupError", "read_pins", "torch_info", "needs_cxx20", "wheel_key", "install_name",
           "build_wheel", "patch_cxx_standard", "run_step", "say", "TORCH_FIX"]

CXX17 = "extra_compile_args['cxx'] = ['-std=c++17']"
CXX20 = "extra_compile_args['cxx'] = ['-std=c++20']"
CXX20_MARK = b"C++20 or later"
TORCH_FIX = ("Install the torch the course is tested with, then restart and rerun: in a cell "
             "`%pip install torch==2.13.0`, then Runtime > Restart session (locally: `make env`).")


class SetupError(RuntimeError):
    """A set-up step failed; the message names the step, the command and the fix."""


def say(message: str) -> None:
    """Print one line of progress at once (a notebook shows it while the cell still runs)."""
    print(message, flush=True)


def run_step(step: str, cmd: list[str], fix: str, env: dict[str, str] | None = None,
             log: Path | None = None) -> str:
    """Run `cmd`; on failure raise `SetupError` naming `step`, the command, its output and `fix`.

    Output goes to `log` when given (long builds), otherwise it is captured and returned.
    """
    shown = " ".join(cmd)
    try:
        if log is None:
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            out = r.stdout + r.stderr
        else:
            with open(log, "w") as fh:
                r = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True, env=env)
            out = log.read_text(errors="replace")
    except OSError as exc:
        raise SetupError(f"{step}: `{shown}` could not start ({exc}).\nFix: {fix}") from None
    if r.returncode:
        tail = "\n".join(out.strip().splitlines()[-25:])
        where = f" (full log: {log})" if log else ""
        raise SetupError(f"{step}: `{shown}` failed with exit code {r.returncode}{where}:\n"
                         f"{tail}\nFix: {fix}")
    return out


def read_pins(path: Path) -> dict[str, str]:
    """``{normalized name: version}`` of the ``name==version`` lines of a requirements file,
    following ``-r other.txt``."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r"):
            pins.update(read_pins(path.parent / line[2:].strip()))
        elif "==" in line:
            name, version = (part.strip() for part in line.split("==", 1))
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def torch_info() -> tuple[str, str, Path]:
    """(version, 'cu132' or 'cpu', package folder) of the installed torch, without importing it."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        raise SetupError("Step 2/3 mmcv: torch is not installed, and mmcv is built against it.\n"
                         f"Fix: {TORCH_FIX}")
    folder = Path(spec.origin).parent
    text = (folder / "version.py").read_text()
    version = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text).group(1)
    cuda = re.search(r"^cuda\b.*=\s*['\"]([\d.]+)", text, re.M)
    return version, f"cu{cuda.group(1).replace('.', '')}" if cuda else "cpu", folder


def needs_cxx20(torch_dir: Path) -> bool:
    """True when torch's headers refuse anything older than C++20 (torch >= 2.15)."""
    include = torch_dir / "include"
    known = [include / "ATen" / "ATen.h", include / "torch" / "csrc" / "api" / "include" /
             "torch" / "all.h"]
    headers = [p for p in known if p.is_file()] or include.rglob("*.h")
    return any(CXX20_MARK in p.read_bytes() for p in headers)


def wheel_key(mmcv_version: str) -> str:
    """File stem of a cached wheel, e.g. ``mmcv2.1.0-cp312-torch2.15.0-cu132-cpuops``."""
    version, build, _ = torch_info()
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return f"mmcv{mmcv_version}-{tag}-torch{version.split('+')[0]}-{build}-cpuops"


def install_name(wheel: Path) -> str:
    """The standard file name pip needs (``mmcv-2.1.0-cp312-cp312-linux_x86_64.whl``),
    read from the wheel itself: a cached wheel is stored under its key instead."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/WHEEL", n))
            tags = re.findall(r"^Tag: (\S+)", zf.read(meta).decode(), re.M)
    except (zipfile.BadZipFile, StopIteration, OSError) as exc:
        raise SetupError(f"Step 2/3 mmcv: {wheel} is not a wheel ({exc}).\n"
                         "Fix: delete it (a new one is built), or host a wheel from `make wheel`."
                         ) from None
    return f"{meta.split('.dist-info')[0]}-{tags[0]}.whl"


def patch_cxx_standard(setup_py: Path) -> None:
    """Raise mmcv's C++ standard from 17 to 20: exactly one line of its ``setup.py``."""
    text = setup_py.read_text()
    found = text.count(CXX17)
    if found != 1:
        raise SetupError(f"Step 2/3 mmcv: expected exactly one `{CXX17}` in {setup_py}, found "
                         f"{found}: this is not the mmcv sdist the course knows.\nFix: {TORCH_FIX}")
    setup_py.write_text(text.replace(CXX17, CXX20))


def _build_tools(work: Path, pins: dict[str, str]) -> Path:
    """setuptools<82 (mmcv's setup.py imports pkg_resources), wheel and ninja into a private
    folder: Colab's own setuptools stays as it is."""
    tools = work / "tools"
    names = [f"{n}=={pins[n]}" if n in pins else n for n in ("setuptools", "wheel", "ninja")]
    run_step("Step 2/3 mmcv (build tools)",
             [sys.executable, "-m", "pip", "install", "-q", "--target", str(tools), *names],
             "check the internet connection and that PyPI is reachable, then run the cell again.")
    return tools


def build_wheel(mmcv_version: str, out_dir: Path, pins: dict[str, str] | None = None,
                say=say) -> Path:
    """Build mmcv `mmcv_version` against the installed torch; return ``out_dir/<key>.whl``."""
    version, _, torch_dir = torch_info()
    key = wheel_key(mmcv_version)
    cxx20 = needs_cxx20(torch_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mmcv-build-"))
    tools = _build_tools(work, pins or {})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tools), os.environ.get("PYTHONPATH",
               "")]).rstrip(os.pathsep), PATH=f"{tools / 'bin'}{os.pathsep}{os.environ['PATH']}",
               CUDA_VISIBLE_DEVICES="", FORCE_CUDA="0", MMCV_WITH_OPS="1",
               MAX_JOBS=str(os.cpu_count() or 2))
    pip = [sys.executable, "-m", "pip"]
    run_step("Step 2/3 mmcv (download sdist)",
             [*pip, "download", "-q", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
              f"mmcv=={mmcv_version}", "-d", str(work)],
             "check the internet connection and that PyPI is reachable, then run the cell again.",
             env=env)
    with tarfile.open(work / f"mmcv-{mmcv_version}.tar.gz") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: refuse links out of `work`
            tar.extractall(work, filter="data")
        else:
            tar.extractall(work)
    src = work / f"mmcv-{mmcv_version}"
    if cxx20:
        patch_cxx_standard(src / "setup.py")
    std = "C++20 (setup.py edited: -std=c++17 -> -std=c++20)" if cxx20 else "C++17 as shipped"
    say(f"Building mmcv {mmcv_version} from its sdist against torch {version}, {std}, CPU ops, "
        f"{env['MAX_JOBS']} jobs: 7 min on 2 idle cores, longer on busy ones...")
    start = time.monotonic()
    built = work / "dist"
    run_step("Step 2/3 mmcv (build)",
             [*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(built)],
             f"this torch ({version}) cannot build mmcv {mmcv_version}. {TORCH_FIX}",
             env=env, log=work / "build.log")
    wheel = next(built.glob("mmcv-*.whl"))
    target = out_dir / f"{key}.whl"
    shutil.copyfile(wheel, target)
    say(f"Built {target.name} in {time.monotonic() - start:.0f} s.")
    shutil.rmtree(work, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> None:
    """`make wheel`: build mmcv's wheel for this Python and torch into --out, print its path."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/wheels"))
    parser.add_argument("--requirements", type=Path, default=Path("requirements.txt"),
                        help="the mmcv pin and the build tools' pins come from here")
    args = parser.parse_args(argv)
    pins = read_pins(args.requirements)
    try:
        print(build_wheel(pins["mmcv"], args.out, pins))
    except SetupError as exc:
        sys.exit(f"make wheel: {exc}")


if __name__ == "__main__":
    main()
