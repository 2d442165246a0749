"""The package's layering: ``justitia.core`` loads nothing of ``justitia.predict``, and no two justitia
modules import each other at module level (an import cycle)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import justitia

SRC = Path(justitia.__file__).resolve().parent.parent


def module_names() -> dict[str, Path]:
    """Every module of the installed source tree: dotted name -> file."""
    out: dict[str, Path] = {}
    for f in sorted((SRC / "justitia").rglob("*.py")):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_module_literals(tree: ast.AST) -> set[str]:
    """Modules named by ``importlib.import_module("literal")`` calls: an import all the same."""
    return {n.args[0].value for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "import_module"
            and n.args and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str)}


def imports_of(name: str, path: Path, modules: dict[str, Path], deferred: bool = False) -> set[str]:
    """justitia modules ``name`` imports while it is being imported: statements at module level
    (also inside top-level ``if``/``try``, not under ``if TYPE_CHECKING``); with ``deferred`` also those
    inside functions and classes (run later, but a dependency all the same)."""
    found: set[str] = set()
    is_pkg = path.name == "__init__.py"
    todo = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                todo += node.body
            todo += node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        elif deferred and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            todo += [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
            found.update(m for m in _import_module_literals(node) if m in modules)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            if base in modules:
                found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules)
    found.discard(name)
    return found


def import_cycles(deferred: bool = False) -> list[list[str]]:
    """The strongly connected components (size > 1) of the import graph (module level; with ``deferred``
    also imports inside functions)."""
    modules = module_names()
    graph = {m: sorted(imports_of(m, p, modules, deferred)) for m, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph is small, recursion depth is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for m in graph:
        if m not in index:
            visit(m)
    return sorted(comps)


def test_the_graph_sees_known_edges() -> None:
    """The parser is not blind: a few imports we know exist are found."""
    modules = module_names()
    assert "justitia.core.clock" in imports_of("justitia.core", modules["justitia.core"], modules)
    assert "justitia.core.policy" in imports_of(
        "justitia.core.policies.vtc", modules["justitia.core.policies.vtc"], modules)


def test_no_import_cycles_among_justitia_modules() -> None:
    assert import_cycles() == []
    assert import_cycles(deferred=True) == []  # not even through imports inside functions


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two modules that import each other (one inside a function, one by importlib) form a cycle."""
    pkg = tmp_path / "justitia"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from justitia import b\n")
    (pkg / "b.py").write_text("import importlib\ndef g():\n    importlib.import_module('justitia.a')\n")
    (pkg / "c.py").write_text("import justitia.a\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    assert import_cycles() == []
    assert import_cycles(deferred=True) == [["justitia.a", "justitia.b"]]


def test_core_loads_nothing_of_predict() -> None:
    """Importing every ``justitia.core`` module in a fresh interpreter loads no ``justitia.predict`` module."""
    core = [m for m in module_names() if m == "justitia.core" or m.startswith("justitia.core.")]
    assert len(core) >= 10
    code = (
        "import importlib, sys\n"
        f"for m in {core!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'justitia.predict' or m.startswith('justitia.predict.'))\n"
        "print(len([m for m in sys.modules if m.startswith('justitia.core')]), bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert int(out[0]) >= len(core)  # every core module was loaded ...
    assert out[1].strip() == "[]"  # ... and no predict module
