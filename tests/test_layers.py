"""The modules of ``helpers`` form layers: no import cycle between them, lazy imports included.

Every ``.py`` file under ``helpers/`` is parsed with :mod:`ast` (nothing is imported) and every
``import`` / ``from ... import`` of ``helpers.*`` is read, at module level, inside functions and
classes and under ``if TYPE_CHECKING:`` alike: a function-level (lazy) import only postpones a
cycle to the first call. Relative imports are resolved against the importing module's package.

Targets are resolved to files: ``import helpers.x.y`` and ``from helpers.x import y`` are edges
to the module ``helpers.x.y`` when it exists (a package means its ``__init__.py``), else to the
package ``helpers.x`` (``y`` is then a name defined in its ``__init__``). The parent packages
Python initialises on the way are not counted as edges: importing ``helpers.x.y`` always runs
``helpers/x/__init__.py`` first, which is what the rule below accounts for.

Two checks:

1. Between packages: each subpackage ``helpers/x/`` (with all its modules, at any depth) is one
   node ``helpers.x``; each top-level module ``helpers/m.py`` is a node. An ``__init__`` that
   re-exports its own submodules is no cycle at this level. Because importing any module of
   ``helpers/x/`` runs ``helpers/x/__init__.py``, an edge into any part of ``x`` is an edge into
   all of it, which is exactly what the collapsed node says.
2. Inside each subpackage: its modules are nodes, its ``__init__`` included (``helpers.x``).
   ``__init__`` -> submodule edges are re-exports; a submodule importing its own package's
   ``__init__`` while that ``__init__`` imports it is a cycle and is reported.

A failure prints each cycle as ``a -> b -> ... -> a`` with the file and line of every edge.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

HELPERS = Path(__file__).resolve().parents[1] / "helpers"

Edge = tuple[str, str]  # (importing module, imported module), dotted names


def module_name(path: Path) -> str:
    """``helpers/x/__init__.py`` -> ``helpers.x``; ``helpers/x/y.py`` -> ``helpers.x.y``."""
    parts = list(path.relative_to(HELPERS.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(HELPERS.rglob("*.py"))}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of the dotted ``name`` that is a helpers module or package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported helpers module, line) for every import statement anywhere in the file."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..y import z
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # "from pkg import sub" imports the submodule pkg.sub when it is one
            targets = [f"{source}.{alias.name}" for alias in node.names] or [source]
        else:
            continue
        for target in targets:
            if target == "helpers" or target.startswith("helpers."):
                found = resolve(target, modules)
                if found is not None and found != name:
                    yield found, node.lineno


def import_edges() -> dict[Edge, list[str]]:
    """Every edge between helpers modules, with the places (``file:line``) that make it."""
    modules = all_modules()
    edges: dict[Edge, list[str]] = {}
    for name, path in modules.items():
        for target, line in imports_of(name, path, modules):
            where = f"{path.relative_to(HELPERS.parent)}:{line}"
            edges.setdefault((name, target), []).append(where)
    return edges


def top_node(name: str) -> str:
    """``helpers.x.y.z`` -> ``helpers.x`` (one node per top-level module or subpackage)."""
    return ".".join(name.split(".")[:2])


def find_cycles(edges: dict[Edge, list[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component that has one."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    # Tarjan's strongly connected components, iteratively
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    cycles = []
    for component in components:  # a shortest path back to the start, inside the component
        members = set(component)
        start = min(component)
        paths = {start: [start]}
        frontier = [start]
        cycle = None
        while frontier and cycle is None:
            nxt = []
            for node in frontier:
                for child in sorted(graph[node] & members):
                    if child == start:
                        cycle = paths[node] + [start]
                        break
                    if child not in paths:
                        paths[child] = paths[node] + [child]
                        nxt.append(child)
                if cycle:
                    break
            frontier = nxt
        cycles.append(cycle)
    return cycles


def describe(cycles: list[list[str]], edges: dict[Edge, list[str]], collapse: bool) -> str:
    lines = []
    for cycle in cycles:
        lines.append(" -> ".join(cycle))
        for a, b in zip(cycle[:-1], cycle[1:], strict=True):
            places = [where for (x, y), found in edges.items()
                      if ((top_node(x), top_node(y)) if collapse else (x, y)) == (a, b)
                      for where in found]
            lines.append(f"    {a} -> {b}: {', '.join(sorted(set(places)))}")
    return "\n".join(lines)


def test_the_scan_sees_the_known_edges():
    """The parser finds module-level, lazy and package imports (a guard against a blind scan)."""
    edges = import_edges()
    assert ("helpers.train", "helpers.checkpoint") in edges  # lazy, inside prepare_config
    assert ("helpers.config", "helpers.config.build") in edges  # package re-export
    assert ("helpers.voc", "helpers.palette") in edges  # module level
    assert all(a.startswith("helpers") and b.startswith("helpers") for a, b in edges)


def test_the_cycle_finder_reports_a_cycle():
    edges = {("h.a", "h.b"): ["a.py:1"], ("h.b", "h.c"): ["b.py:2"], ("h.c", "h.a"): ["c.py:3"],
             ("h.c", "h.d"): ["c.py:4"], ("h.e", "h.e"): ["e.py:5"]}
    assert sorted(find_cycles(edges)) == [["h.a", "h.b", "h.c", "h.a"], ["h.e", "h.e"]]
    assert find_cycles({("h.a", "h.b"): [], ("h.b", "h.c"): []}) == []


def test_no_import_cycle_between_modules_and_packages():
    edges = import_edges()
    collapsed = {}
    for (a, b), places in edges.items():
        if top_node(a) != top_node(b):
            collapsed.setdefault((top_node(a), top_node(b)), []).extend(places)
    cycles = find_cycles(collapsed)
    assert not cycles, "import cycles in helpers:\n" + describe(cycles, edges, collapse=True)


def test_no_import_cycle_inside_a_subpackage():
    edges = import_edges()
    inside = {(a, b): places for (a, b), places in edges.items() if top_node(a) == top_node(b)}
    cycles = find_cycles(inside)
    assert not cycles, "import cycles inside a helpers package:\n" + describe(
        cycles, edges, collapse=False)
