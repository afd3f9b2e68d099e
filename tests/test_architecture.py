"""The shape ARCHITECTURE.md promises: arrows run down, no cycles, no module over 600 lines.

Every import counts, function-local and ``TYPE_CHECKING`` ones included: a cycle
hidden in a function is still a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("intake", "signing", "rules", "mailer")
#: Which top-level package may import which (besides itself).
ALLOWED = {
    "daemon": {"intake", "signing", "rules", "mailer"},
    "intake": {"signing", "rules", "mailer"},
    "rules": {"signing"},
    "mailer": set(),
    "signing": set(),
}
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {"daemon": ROOT / "daemon.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            resolved = _resolve(target)
            if resolved is not None and resolved != name:
                deps.add(resolved)
    return deps


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_arrow_runs_down() -> None:
    upward = sorted(
        f"{module} imports {dep}"
        for module, deps in GRAPH.items()
        for dep in deps
        if (top := module.split(".")[0]) != (dep_top := dep.split(".")[0])
        and dep_top not in ALLOWED[top]
    )
    assert upward == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (Tarjan's strongly connected components of two or more)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_no_module_sits_in_an_import_cycle() -> None:
    assert cycles(GRAPH) == []


def test_the_checks_see_what_they_must() -> None:
    """A cycle through a function-local import is found; the graph is the real one."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    local = ast.parse("def f():\n    from intake.runtime import Runtime\n")
    assert any(isinstance(n, ast.ImportFrom) and n.module == "intake.runtime" for n in ast.walk(local))
    assert "intake.runtime" in GRAPH["daemon"] or any(d.startswith("intake") for d in GRAPH["daemon"])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_600_lines(module: str) -> None:
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines"
