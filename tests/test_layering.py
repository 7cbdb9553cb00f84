"""The layering: every package imports only packages below it, and no two files import each other (in any circle).

The order, lowest first (written here and in the README's layout table, nowhere else):

    layers, data -> models -> cost -> hw -> train -> compress -> deploy -> nas -> report -> load -> api -> design -> cli

``layers`` and ``data`` share the bottom and do not import each other. Every import counts: at module level, inside
functions (lazy imports) and under ``TYPE_CHECKING``. The root ``chipfit/__init__.py`` re-exports the public API
lazily and sits above everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ORDER: list[tuple[str, ...]] = [("layers", "data"), ("models",), ("cost",), ("hw",), ("train",), ("compress",),
                                ("deploy",), ("nas",), ("report",), ("load",), ("api",), ("design",),
                                ("cli",)]
RANK = {pkg: i for i, level in enumerate(ORDER) for pkg in level}
ROOT = "<root>"
RANK[ROOT] = len(ORDER)


def modules(src: Path, top: str = "chipfit") -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package ``top`` under ``src``."""
    out = {}
    for path in sorted((src / top).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(path: Path, name: str, known: set[str], top: str = "chipfit") -> set[str]:
    """The modules of ``top`` that the file imports (a ``from a.b import c`` names a.b.c when that is a module)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == top)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != top:
                continue
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
            found.update(subs)
            if len(subs) < len(node.names):
                found.add(mod)
    found.discard(name)
    return {m for m in found if m in known}


def package_of(module: str, top: str = "chipfit") -> str:
    parts = module.split(".")
    return ROOT if parts == [top] else parts[1]


def upward_imports(src: Path, top: str = "chipfit") -> list[str]:
    """Every import of a package that is not below the importing one, as 'file: a -> b'."""
    mods = modules(src, top)
    bad = []
    for name, path in mods.items():
        here = package_of(name, top)
        if here not in RANK:
            bad.append(f"{name}: package {here!r} has no place in the layering order")
            continue
        for dep in sorted(imports(path, name, set(mods), top)):
            there = package_of(dep, top)
            if there == here or there == ROOT and here == ROOT:
                continue
            if there not in RANK or RANK[there] >= RANK[here]:
                bad.append(f"{path.relative_to(src)}: {here} imports {dep} ({there} is not below {here})")
    return bad


def import_cycles(src: Path, top: str = "chipfit") -> list[list[str]]:
    """Circles of files importing each other (strongly connected components of more than one file)."""
    mods = modules(src, top)
    graph = {name: imports(path, name, set(mods), top) for name, path in mods.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
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
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_package_imports_one_above_it():
    bad = upward_imports(SRC)
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_circles_between_files():
    cycles = import_cycles(SRC)
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_every_package_has_a_place_in_the_order():
    packages = {p.name for p in (SRC / "chipfit").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    files = {p.stem for p in (SRC / "chipfit").glob("*.py") if p.stem != "__init__"}
    assert packages | files <= set(RANK), sorted((packages | files) - set(RANK))


@pytest.fixture
def fake_tree(tmp_path):
    """A small package laid out like chipfit, to show that the checks catch what they claim to."""
    def write(rel: str, text: str = "") -> None:
        p = tmp_path / "chipfit" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    write("__init__.py")
    for pkg in ("cost", "hw", "train"):
        write(f"{pkg}/__init__.py")
    write("cost/records.py", "X = 1\n")
    write("hw/roofline.py", "from chipfit.cost.records import X\n")
    write("train/engine.py", "def f():\n    from chipfit.hw import roofline\n")
    return tmp_path, write


def test_checks_pass_on_a_clean_tree(fake_tree):
    src, _ = fake_tree
    assert upward_imports(src) == [] and import_cycles(src) == []


def test_an_upward_import_is_caught_even_inside_a_function(fake_tree):
    src, write = fake_tree
    write("cost/profile.py", "def g():\n    from chipfit.train.engine import f\n")
    bad = upward_imports(src)
    assert len(bad) == 1 and "cost imports chipfit.train.engine" in bad[0]


def test_a_circle_is_caught(fake_tree):
    src, write = fake_tree
    write("hw/a.py", "from chipfit.hw import b\n")
    write("hw/b.py", "from . import a\n")
    assert import_cycles(src) == [["chipfit.hw.a", "chipfit.hw.b"]]
