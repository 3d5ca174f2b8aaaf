"""The import graph of the `metadata` package, read from the source (no module is imported):
every `import` and `from … import` at module level, inside functions and under
`TYPE_CHECKING` alike, since an import a function hides is still an arrow between modules.

`python -m tests.import_graph` prints the modules, their arrows, any circle and any private
name imported across modules; tests/test_imports.py asserts on the same graph.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "metadata"


@dataclass(frozen=True)
class Arrow:
    """One import statement: `source` imports `names` from `target` at `line`."""

    source: str
    target: str
    names: tuple[str, ...]
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name a (possibly relative) `from` import refers to."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def arrows_of(module: str, path: Path, known: set[str]) -> Iterator[Arrow]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield Arrow(module, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = absolute(module, is_package, node.level, node.module)
            if target.split(".")[0] != PACKAGE:
                continue
            plain = tuple(a.name for a in node.names if f"{target}.{a.name}" not in known)
            if plain:
                yield Arrow(module, target, plain, node.lineno)
            for alias in node.names:  # `from metadata.store import schema` imports a module
                if f"{target}.{alias.name}" in known:
                    yield Arrow(module, f"{target}.{alias.name}", (), node.lineno)


def all_arrows() -> list[Arrow]:
    modules = package_modules()
    known = set(modules)
    return [arrow for name, path in modules.items() for arrow in arrows_of(name, path, known)]


def graph(arrows: list[Arrow]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in package_modules()}
    for arrow in arrows:
        if arrow.target != arrow.source:
            edges.setdefault(arrow.source, set()).add(arrow.target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def private_imports(arrows: list[Arrow]) -> list[str]:
    """`from a import _x` where `a` is another module: a private name crossing a module."""
    return [
        f"{a.source}:{a.line} imports {name} from {a.target}"
        for a in arrows
        for name in a.names
        if name.startswith("_") and not name.startswith("__") and a.target != a.source
    ]


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def crossing(arrows: list[Arrow], source: str, target: str) -> list[Arrow]:
    """The arrows from the module or package `source` into the module or package `target`."""
    return [a for a in arrows if within(a.source, source) and within(a.target, target)]


def main() -> int:
    arrows = all_arrows()
    edges = graph(arrows)
    for source in sorted(edges):
        print(f"{source} -> {', '.join(sorted(edges[source])) or '(nothing)'}")
    cycle = find_cycle(edges)
    private = private_imports(arrows)
    print(f"\n{len(edges)} modules, {sum(len(t) for t in edges.values())} arrows")
    print("circle: " + (" -> ".join(cycle) if cycle else "none"))
    print("private names imported across modules: " + ("; ".join(private) or "none"))
    return 1 if cycle or private else 0


if __name__ == "__main__":
    sys.exit(main())
