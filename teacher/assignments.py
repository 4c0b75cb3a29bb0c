"""The release notebooks: `python -m teacher.assignments assign|check` (`make assign`).

`assign` writes the student repository's URL of ``pyproject.toml`` (``[project.urls] Student``,
what `make release` publishes) into every Colab badge and Colab install cell of the instructor
notebooks (``source/voc/``) and into the README's badges, runs ``nbgrader generate_assignment voc``
(solutions become stubs, hidden tests go) into ``build/nbgrader/release/voc/`` and copies the
result to ``notebooks/``. `check` changes nothing and exits 1 when ``notebooks/`` or a URL is out
of date. See source/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import tomllib

from helpers.env import repo_root

__all__ = ["ASSIGNMENT", "NBGRADER", "nbgrader_env", "repo_url", "colab_cell", "sync_notebook",
           "sync_readme", "url_problems", "generate", "release_differences", "assign", "main"]

ASSIGNMENT = "voc"
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/"
                   r"notebooks/([\w.-]+\.ipynb)")
GITHUB = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+?(?=\.git\b|[^\w.-]|$)")


def repo_url(root: Path | None = None, key: str = "Student") -> str:
    """``[project.urls] <key>`` of pyproject.toml: ``Student`` (default), the repository that
    students clone and every badge and Colab cell names, or ``Repository``, the teacher's."""
    path = (root or repo_root()) / "pyproject.toml"
    url = tomllib.loads(path.read_text()).get("project", {}).get("urls", {}).get(key)
    if not url or not GITHUB.fullmatch(url.rstrip("/")):
        raise ValueError(f"{path}: set [project.urls] {key} = "
                         f"\"https://github.com/OWNER/REPO\" (found {url!r}); every badge and "
                         "Colab cell is generated from it")
    return url.rstrip("/")


def _badge(url: str, notebook: str) -> str:
    return url.replace("https://github.com/", "https://colab.research.google.com/github/") + \
        f"/blob/main/notebooks/{notebook}"


def colab_cell(nb) -> nbformat.NotebookNode | None:
    """The notebook's Colab install cell: tagged ``colab``, else the first that tests for Colab."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "colab" in c.metadata.get("tags", [])]
    return (tagged or [c for c in code if "google.colab" in c.source] or [None])[0]


def _install_source(url: str, current: str) -> str:
    try:
        from helpers.colab import install_cell
    except ImportError:  # no installer module: keep the cell, only point it at `url`
        return GITHUB.sub(url, current)
    return install_cell(url)


def sync_notebook(nb, name: str, url: str) -> bool:
    """Point the badges of `nb` (notebook file `name`) and its Colab cell at `url`."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            new = BADGE.sub(lambda m: _badge(url, m.group(1)), cell.source)
            changed |= new != cell.source
            cell.source = new
    cell = colab_cell(nb)
    if cell is not None:
        new = _install_source(url, cell.source)
        tags = cell.metadata.setdefault("tags", [])
        changed |= new != cell.source or "colab" not in tags
        cell.source = new
        if "colab" not in tags:
            tags.append("colab")
    return changed


def sync_readme(path: Path, url: str) -> bool:
    """Point the README's Colab badges and ``git clone`` lines at `url`."""
    text = path.read_text()
    new = BADGE.sub(lambda m: _badge(url, m.group(1)), text)
    new = "\n".join(GITHUB.sub(url, line) if "git clone" in line else line
                    for line in new.split("\n"))
    if new != text:
        path.write_text(new)
    return new != text


def url_problems(root: Path | None = None) -> list[str]:
    """Every badge, Colab-cell or clone URL in notebooks/, source/ and README.md that is off."""
    root = root or repo_root()
    url = repo_url(root)
    problems = []
    paths = sorted((root / "notebooks").glob("*.ipynb")) + sorted(root.glob("source/*/*.ipynb"))
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        texts = [(c.source, "badge") for c in nb.cells if c.cell_type == "markdown"]
        cell = colab_cell(nb)
        if cell is None:
            problems.append(f"{path.relative_to(root)}: no Colab install cell (tag it 'colab')")
        else:
            texts.append((cell.source, "Colab cell"))
            if not GITHUB.search(cell.source):
                problems.append(f"{path.relative_to(root)}: the Colab cell clones no GitHub URL")
        own = _badge(url, path.name)
        if own not in [m.group(0) for text, _ in texts for m in BADGE.finditer(text)]:
            problems.append(f"{path.relative_to(root)}: no Colab badge for {own}")
        for text, where in texts:
            problems += [f"{path.relative_to(root)}: {where} links {m.group(0)}" for m in
                         BADGE.finditer(text) if m.group(0) != _badge(url, m.group(1))]
            if where == "Colab cell":
                problems += [f"{path.relative_to(root)}: Colab cell clones {m.group(0)}"
                             for m in GITHUB.finditer(text) if m.group(0) != url]
    readme = (root / "README.md").read_text()
    problems += [f"README.md: badge links {m.group(0)}" for m in BADGE.finditer(readme)
                 if m.group(0) != _badge(url, m.group(1))]
    problems += [f"README.md: clones {m.group(0)}" for line in readme.split("\n")
                 if "git clone" in line for m in GITHUB.finditer(line) if m.group(0) != url]
    return [f"{p} (pyproject.toml's Student URL is {url}; run `make assign`)" for p in problems]


#: nbgrader's command line, from the same environment as this Python.
NBGRADER = str(Path(sys.executable).parent / "nbgrader")


def nbgrader_env(**extra: str) -> dict[str, str]:
    """The environment for nbgrader: this Python's bin/ first on PATH (it runs `alembic`)."""
    bindir = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""), **extra)


def _nbgrader(*args: str, root: Path) -> None:
    done = subprocess.run([NBGRADER, *args], cwd=root, env=nbgrader_env(), capture_output=True,
                          text=True)
    if done.returncode:
        log = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed in {root}; its log ends:\n{log}")


def generate(release: Path, root: Path | None = None) -> list[Path]:
    """Run nbgrader's generate_assignment on source/voc/ into `release`; return the notebooks."""
    root = root or repo_root()
    release = Path(release).resolve()
    release.mkdir(parents=True, exist_ok=True)
    _nbgrader("generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN",
              f"--CourseDirectory.release_directory={release}",
              f"--CourseDirectory.db_url=sqlite:///{release / 'gradebook.db'}", root=root)
    return sorted((release / ASSIGNMENT).glob("*.ipynb"))


def release_differences(root: Path | None = None) -> list[str]:
    """What differs between notebooks/ and a fresh release of source/voc/ (empty: in sync)."""
    root = root or repo_root()
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for made in generate(Path(tmp), root):
            committed = root / "notebooks" / made.name
            if not committed.exists():
                problems.append(f"notebooks/{made.name} is missing")
                continue
            want, got = nbformat.read(made, 4), nbformat.read(committed, 4)
            if want.metadata != got.metadata:
                problems.append(f"notebooks/{made.name}: notebook metadata differ")
            if len(want.cells) != len(got.cells):
                problems.append(f"notebooks/{made.name}: {len(got.cells)} cells, the release "
                                f"has {len(want.cells)}")
            problems += [f"notebooks/{made.name}: cell {i} differs" for i, (a, b) in
                         enumerate(zip(want.cells, got.cells, strict=False)) if a != b]
    return [f"{p} (run `make assign`)" for p in problems]


def assign(root: Path | None = None) -> list[Path]:
    """Sync URLs in source/voc/*.ipynb and README.md, generate the release, copy to notebooks/.

    A notebook in notebooks/ without an instructor source only gets its URLs updated.
    """
    root = root or repo_root()
    url = repo_url(root)
    sources = sorted((root / "source" / ASSIGNMENT).glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"No instructor notebooks in {root / 'source' / ASSIGNMENT}")
    for path in sources:
        nb = nbformat.read(path, as_version=4)
        if sync_notebook(nb, path.name, url):
            nbformat.write(nb, path)
            print(f"URLs → {url}: {path.relative_to(root)}")
    if sync_readme(root / "README.md", url):
        print(f"URLs → {url}: README.md")
    release = root / "build" / "nbgrader" / "release"
    shutil.rmtree(release, ignore_errors=True)
    made = generate(release, root)
    for path in made:
        shutil.copyfile(path, root / "notebooks" / path.name)
        print(f"released notebooks/{path.name}")
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        if not (root / "source" / ASSIGNMENT / path.name).exists():
            nb = nbformat.read(path, as_version=4)
            if sync_notebook(nb, path.name, url):
                nbformat.write(nb, path)
            print(f"warning: notebooks/{path.name} has no instructor source in "
                  f"source/{ASSIGNMENT}/: only its URLs were updated", file=sys.stderr)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["assign", "check"])
    args = parser.parse_args(argv)
    if args.action == "assign":
        assign()
        return 0
    problems = url_problems() + release_differences()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
