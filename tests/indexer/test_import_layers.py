"""The indexer's modules form layers: no module imports, even lazily inside a function or only for
mypy (``if TYPE_CHECKING:``), a module that imports it back. Read from the sources with ``ast``;
nothing is imported."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "indexer"
FOLDER = Path(__file__).resolve().parents[2] / PACKAGE


def imported_modules(source: str, module: str, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that ``source`` (the text of ``module``) imports anywhere: at the
    top, in a function, under ``if TYPE_CHECKING:``; ``from indexer import x`` counts as importing
    ``indexer.x`` when that is a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this module is in
                package = module.split(".")[: -node.level]
                base = ".".join(package + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import indexer.a.b` imports indexer.a
                name = name.rpartition(".")[0]
            if name and name != PACKAGE:
                found.add(name)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: the indexer modules it imports}`` for every ``indexer/*.py``."""
    files = {f"{PACKAGE}.{p.stem}" if p.stem != "__init__" else PACKAGE: p for p in sorted(FOLDER.glob("*.py"))}
    return {m: imported_modules(p.read_text(encoding="utf-8"), m, set(files)) for m, p in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or ``None``."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in done and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_every_import_form_is_an_edge():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import indexer.a.inner\n"
        "from indexer import b, not_a_module\n"
        "from indexer.c import name\n"
        "from . import d\n"
        "if TYPE_CHECKING:\n"
        "    from indexer.e import Type\n"
        "def f():\n"
        "    from indexer.f import g\n"
    )
    modules = {PACKAGE} | {f"{PACKAGE}.{m}" for m in "abcdefz"}
    assert imported_modules(source, "indexer.z", modules) == {f"{PACKAGE}.{m}" for m in "abcdef"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_indexer_modules_import_no_cycle():
    graph = import_graph()
    assert {"indexer.job", "indexer.protocols"} <= set(graph) and any(graph.values())
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
