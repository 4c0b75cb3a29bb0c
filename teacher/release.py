"""The student repository: `python -m teacher.release [--out build/student]` (`make release`).

Writes a folder ready to push as its own Git repository (``[project.urls] Student`` of
pyproject.toml), holding only what a student needs:

- ``notebooks/``: the release notebooks, generated afresh by nbgrader from ``source/voc/``
  (solutions replaced by stubs, hidden tests removed), with badges and Colab cells that name the
  student repository;
- ``helpers/``: the course package the notebooks import (the visible checks included: they say
  ✓ or ✗, they do not compute an answer);
- ``requirements.txt``, ``requirements-build.txt``, ``environment.yml``, ``images/``, the speed
  figures that notebook 05 reads (``benchmarks/*.json``);
- ``student/README.md`` and ``student/Makefile`` of this repository as its README and Makefile
  (``make env``, ``make run``), and a ``pyproject.toml`` that installs ``helpers`` only.

Nothing of ``source/``, ``tests/``, ``teacher/`` or the teacher's requirements goes there: no
solution, hidden test, wrong answer, gradebook or grading code. :func:`leaks` proves it line by
line, and ``make release`` refuses to finish when it finds one.
"""

from __future__ import annotations

import argparse
import functools
import re
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from helpers.env import repo_root
from teacher.assignments import generate, repo_url, sync_readme

__all__ = ["FILES", "secret_lines", "leaks", "release", "main"]

#: Files and folders copied as they are (relative to the repository root).
FILES = ("helpers", "images", "requirements.txt", "requirements-build.txt", "environment.yml",
         "benchmarks/results.json", "benchmarks/results_gpu.json",
         "benchmarks/results_int8_amx.json")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".ipynb_checkpoints")
_GITIGNORE = """.venv/
__pycache__/
*.egg-info/
.ipynb_checkpoints/
data/
work_dirs/
build/
*.onnx
*.onnx.data
"""
_PACKAGES = re.compile(r'include = \[[^\]]*\]')


def _norm(line: str) -> str:
    """Whitespace collapsed, a trailing comment dropped, one kind of quotes."""
    code = line if line.lstrip().startswith("#") else line.split("  #")[0]
    return re.sub(r"\s+", " ", code).strip().replace("'", '"')


@functools.cache
def _library_lines() -> frozenset[str]:
    """Lines of mmseg's and mmengine's own code and configs: public, whoever repeats them."""
    import mmengine
    import mmseg

    lines = set()
    for package in (mmseg, mmengine):
        for path in Path(package.__file__).parent.rglob("*.py"):
            lines.update(_norm(line) for line in path.read_text(errors="replace").splitlines())
    return frozenset(lines)


def _trivial(line: str) -> bool:
    """Lines too generic to betray a solution: imports, short lines, lone brackets, comments,
    bare control-flow headers (``with np.errstate(...):``, ``if isinstance(x, dict):``)."""
    return (len(line) < 20 or line.startswith(("import ", "from ", "#", "return None"))
            or (line.startswith(("with ", "if ", "elif ", "else", "try", "except", "finally"))
                and line.endswith(":"))
            or not re.search(r"[A-Za-z_]\w*\s*[(=\[.]", line))


def secret_lines(source: Path) -> set[str]:
    """The normalised, non-trivial lines of every solution in `source` and of the task modules
    (teacher/tasks/: givens and hidden probes), less
    those that the lessons show in the open anyway and those of mmseg's and mmengine's own code
    and configs (``dict(type="LoadAnnotations"),``)."""
    found, shown = set(), set()
    for path in sorted(Path(source).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            inside = False
            for line in cell.source.splitlines():
                if re.search(r"### (BEGIN|END) (SOLUTION|HIDDEN TESTS)", line):
                    inside = "BEGIN" in line
                    continue
                norm = _norm(line)
                if norm and not _trivial(norm):
                    (found if inside else shown).add(norm)
    # The task modules' givens and hidden probes, less the lines the visible checks (shipped,
    # helpers/) share with them anyway: a generic line such as ``rng =
    # np.random.default_rng(seed)`` hides nothing; a hidden input or a case's code does.
    root = Path(source).resolve().parents[1]
    public = {_norm(line) for path in (root / "helpers").rglob("*.py")
              for line in path.read_text().splitlines()}
    probes = set()
    for path in sorted((root / "teacher" / "tasks").glob("n[0-9][0-9]_*.py")):
        probes.update(n for n in map(_norm, path.read_text().splitlines()) if n and not _trivial(n))
    return (found | (probes - public)) - shown - _library_lines()


def leaks(folder: Path, source: Path) -> list[str]:
    """Every ``file: line`` of `folder` that repeats a solution or hidden-test line of `source`,
    and every file whose name betrays teacher material."""
    secrets = secret_lines(source)
    problems = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if rel.parts[0] in ("source", "tests", "teacher") or path.suffix == ".db" or \
                "wrong_answers" in rel.parts or "gradebook" in path.name:
            problems.append(f"{rel}: teacher material")
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if path.suffix == ".ipynb":
            nb = nbformat.reads(text, as_version=4)
            lines = [line for c in nb.cells for line in c.source.splitlines()]
        else:
            lines = text.splitlines()
        problems += [f"{rel}: {norm}" for norm in (_norm(line) for line in lines)
                     if norm in secrets]
    return problems


def _pyproject(root: Path, url: str) -> str:
    text = (root / "pyproject.toml").read_text()
    text = _PACKAGES.sub('include = ["helpers*"]', text, count=1)
    head, _, rest = text.partition("[project.urls]")
    head = re.sub(r"(\n#[^\n]*)+\n$", "\n", head)  # the teacher's note on the two repositories
    urls, _, tail = rest.partition("\n\n")
    return f'{head}[project.urls]\nRepository = "{url}"\n\n{tail}'


def release(out: Path | None = None, root: Path | None = None) -> Path:
    """Write the student repository to `out` (default ``build/student``); return it."""
    root = root or repo_root()
    out = Path(out or root / "build" / "student").resolve()
    url = repo_url(root)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in FILES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, out / name, ignore=_IGNORE)
        elif src.is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / name)
    with tempfile.TemporaryDirectory() as tmp:
        (out / "notebooks").mkdir()
        for made in generate(Path(tmp), root):
            shutil.copyfile(made, out / "notebooks" / made.name)
    shutil.copyfile(root / "student" / "README.md", out / "README.md")
    sync_readme(out / "README.md", url)
    shutil.copyfile(root / "student" / "Makefile", out / "Makefile")
    (out / "pyproject.toml").write_text(_pyproject(root, url))
    (out / ".gitignore").write_text(_GITIGNORE)
    found = leaks(out, root / "source" / "voc")
    if found:
        raise RuntimeError(f"{out} would hand out teacher material; nothing was published:\n"
                           + "\n".join(found[:20]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder to write (default: build/student)")
    args = parser.parse_args(argv)
    out = release(args.out)
    print(f"student repository → {out} (push it to {repo_url()}: see README, 'Publishing')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
