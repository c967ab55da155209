"""The shape of the code, checked: modules of one job (no file over 400 lines), dependencies that point one way
(no import cycle at run time), and no module reaching into another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

SOURCE = REPO / "src"
MAX_LINES = 400
# Private names of the standard library used on purpose: a frame for warnings' stack level, argparse's type.
ALLOWED_PRIVATE = {("sys", "_getframe"), ("argparse", "_SubParsersAction")}


def modules() -> dict[str, tuple[Path, ast.Module]]:
    found = {}
    for path in sorted((SOURCE / "stepline").rglob("*.py")):
        name = ".".join(path.relative_to(SOURCE).with_suffix("").parts).removesuffix(".__init__")
        found[name] = (path, ast.parse(path.read_text()))
    return found


def runtime_imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The stepline modules ``tree`` imports when it runs (an ``if TYPE_CHECKING:`` block does not count)."""
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
               for statement in block.body for node in ast.walk(statement)}
    imported = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stepline"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                imported.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names if alias.name.startswith("stepline"))
    return imported


def test_no_module_is_over_400_lines():
    long = {name: len(path.read_text().splitlines()) for name, (path, _) in modules().items()}
    assert {name: lines for name, lines in long.items() if lines > MAX_LINES} == {}


def test_no_import_cycle():
    found = modules()
    graph = {name: runtime_imports(tree, set(found)) - {name} for name, (_, tree) in found.items()}
    cycles = []

    def visit(name, trail):
        if name in trail:
            cycles.append(trail[trail.index(name):] + [name])
            return
        if name in done:
            return
        for target in sorted(graph.get(name, ())):
            visit(target, trail + [name])
        done.add(name)

    done: set[str] = set()
    for name in graph:
        visit(name, [])
    # the package itself re-exports its modules' public names: an edge into "stepline" is not a cycle of code
    assert [cycle for cycle in cycles if "stepline" not in cycle] == []


def test_no_private_name_of_another_module_is_used():
    used = []
    for name, (_, tree) in modules().items():
        own = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        own |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stepline"):
                used += [f"{name}: from {node.module} import {a.name}" for a in node.names
                         if a.name.startswith("_") and not a.name.startswith("__")]
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
                continue
            base = node.value
            if isinstance(base, ast.Name) and (base.id in ("self", "cls") or (base.id, node.attr) in ALLOWED_PRIVATE):
                continue
            if node.attr not in own:  # a private name this module did not define: another module's
                used.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert used == []
