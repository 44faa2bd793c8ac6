"""The rooms of docs/architecture.md hold: every module is in one room, imports point down (a lower rank
or the module's own room), the extra rules hold, and no imports form a circle. The test reads the doc's
tables, so the doc stays true."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "methods", "protocols")


def rooms() -> tuple[dict[str, tuple[int, str]], dict[str, list[str]]]:
    """From docs/architecture.md: module prefix -> (rank, room), and room -> prefixes it must not import."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    prefixes, forbidden = {}, {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit():
            for mod in re.findall(r"`([\w.]+)`", cells[2]):
                prefixes[mod] = (int(cells[0]), cells[1])
        elif len(cells) == 2 and cells[1].startswith("`"):
            forbidden[cells[0]] = re.findall(r"`([\w.]+)`", cells[1])
    return prefixes, forbidden


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Every project module each module imports (function-level imports included), resolved to a module."""
    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                r = resolve(t)
                if r and r != name and r.split(".")[0] in PACKAGES:
                    deps.add(r)
        graph[name] = deps
    return graph


def room_of(module: str, prefixes: dict[str, tuple[int, str]]) -> tuple[int, str] | None:
    best = max((p for p in prefixes if module == p or module.startswith(p + ".")), key=len, default=None)
    return prefixes[best] if best else None


def violations(graph: dict[str, set[str]], prefixes, forbidden) -> list[str]:
    """Each import that points up or across the rooms, or into what its room must not import."""
    wrong = []
    for m, deps in sorted(graph.items()):
        rank, room = room_of(m, prefixes)
        for d in sorted(deps):
            d_rank, d_room = room_of(d, prefixes)
            if d_rank > rank or (d_rank == rank and d_room != room):
                wrong.append(f"{m} ({room}, {rank}) imports {d} ({d_room}, {d_rank})")
            if any(d == f or d.startswith(f + ".") for f in forbidden.get(room, [])):
                wrong.append(f"{m} ({room}) imports {d}, which its room must not")
    return wrong


def test_every_module_is_in_a_room_and_imports_point_down():
    prefixes, forbidden = rooms()
    assert len(prefixes) > 20 and forbidden, "the tables of docs/architecture.md were not found"
    mods = modules()
    homeless = sorted(m for m in mods if room_of(m, prefixes) is None)
    assert not homeless, f"modules in no room of docs/architecture.md: {homeless}"
    wrong = violations(imports(mods), prefixes, forbidden)
    assert not wrong, "imports across the rooms of docs/architecture.md:\n" + "\n".join(wrong)


def test_no_import_circles():
    graph = imports(modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                circles.append(sorted(part))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


@pytest.mark.parametrize("upward", ["from harness.runner import run", "from harness import catalog",
                                    "from methods.base import Method"])
def test_the_check_sees_an_upward_import(tmp_path, upward):
    """A model that imports the runner, the catalog or a method is caught (the check can fail)."""
    mods = modules()
    fake = tmp_path / "bad.py"
    fake.write_text(upward + "\n")
    mods["harness.models.bad"] = fake
    prefixes, forbidden = rooms()
    wrong = violations(imports(mods), prefixes, forbidden)
    assert len(wrong) == 1 and wrong[0].startswith("harness.models.bad")
