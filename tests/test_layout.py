"""The package's shape stays as the house style says: small modules, short functions, no import cycles.

The checks read the source with :mod:`ast` (nothing is imported), so they also run on a hand-made tree in a test's
tmp dir — which is how the tests below show that each check can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rait

PKG = Path(rait.__file__).resolve().parent
BENCH = PKG.parent / "bench"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package directory ``root``."""
    out = {}
    for p in sorted(root.rglob("*.py")):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def long_modules(root: Path, limit: int = MAX_MODULE_LINES) -> list[str]:
    """``path: N lines`` for each module longer than ``limit`` lines."""
    return [f"{p}: {n} lines" for p in sorted(root.rglob("*.py")) if (n := len(p.read_text().splitlines())) > limit]


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name: N lines`` for each function (``def`` line to last line, docstring included) over ``limit``."""
    out = []
    for p in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{p}:{node.lineno} {node.name}: {n} lines")
    return out


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported (module level, incl. inside if/try; not in defs and not
    under ``if TYPE_CHECKING:``)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)) and not _is_type_checking(node):
            todo.extend(c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt))


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at import time. ``from a import b`` points at ``a`` (whose
    ``__init__`` it reads) and also at ``a.b`` when that is a module; relative imports are resolved."""
    mods = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            graph[mod] |= {t for t in targets if t in mods and t != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(_path_in(graph, set(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _path_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A closed path through ``comp`` (a strongly connected component), for the error message."""
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in comp)
        back = [w for w in nxt if w in seen]
        if back:
            return path[path.index(back[0]):] + [back[0]]
        path.append(nxt[0])
        seen.add(nxt[0])


# ------------------------------------------------------------------------------------------------ the package


def test_no_module_over_the_limit():
    assert long_modules(PKG) == []


def test_no_function_over_the_limit():
    assert long_functions(PKG) == []


def test_bench_functions_over_the_limit():
    assert long_functions(BENCH) == []


def test_no_import_cycles():
    graph = import_graph(PKG)
    assert "rait.data.loaders" in graph and "rait.data.schema" in graph["rait.data.loaders"]  # the graph is read
    assert cycles(graph) == []


# -------------------------------------------------------------------------------------- the checks can fail


@pytest.fixture
def toy(tmp_path):
    """A package ``toy`` in tmp_path; ``write(relpath, text)`` adds a module."""
    root = tmp_path / "toy"

    def write(rel: str, text: str) -> Path:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    write("__init__.py", "")
    return root, write


def test_long_function_and_module_are_found(toy):
    root, write = toy
    write("ok.py", "def f():\n" + "    x = 1\n" * 59)
    write("long.py", "def f():\n" + "    x = 1\n" * 60)
    assert long_functions(root) == [f"{root / 'long.py'}:1 f: 61 lines"]
    assert long_modules(root, limit=60) == [f"{root / 'long.py'}: 61 lines"]


def test_cycle_through_a_package_init_is_found(toy):
    root, write = toy
    write("data/__init__.py", "from toy.data.loaders import load\n")
    write("data/loaders.py", "from toy.data import helper\n")  # helper is a name in __init__, not a module
    write("data/schema.py", "import os\n")
    graph = import_graph(root)
    assert graph["toy.data"] == {"toy.data.loaders"} and graph["toy.data.loaders"] == {"toy.data"}
    assert cycles(graph) == [["toy.data", "toy.data.loaders", "toy.data"]]


def test_submodule_imports_relative_imports_and_deferred_imports(toy):
    root, write = toy
    write("a.py", "from toy import b\nfrom . import c\nfrom .c import x\n\ndef f():\n    import toy.a2\n")
    write("b.py", "import toy.c\n")
    write("c.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy.a import f\n")
    write("a2.py", "from toy.a import f\n")
    graph = import_graph(root)
    assert graph["toy.a"] == {"toy", "toy.b", "toy.c"} and graph["toy.b"] == {"toy.c"} and graph["toy.c"] == set()
    assert cycles(graph) == []  # a -> a2 is inside a function: not an import-time edge
    write("c.py", "try:\n    from toy.a import f\nexcept ImportError:\n    pass\n")
    assert cycles(import_graph(root)) == [["toy.a", "toy.b", "toy.c", "toy.a"]]
