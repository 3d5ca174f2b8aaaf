"""The package's import graph (tests/import_graph.py, read from the source, function-local
imports included) has no circle, no private name crossing a module, and none of the arrows
that go against the intended shape: the store knows no cache, the cache no tree or SQL, the
guest side no operator side, and the modules everything else stands on import nothing
heavy."""

from __future__ import annotations

from tests.import_graph import Arrow, all_arrows, crossing, find_cycle, graph, private_imports

ARROWS = all_arrows()

# (from, to, why): a module or package may not import from the other.
FORBIDDEN = [
    ("metadata.store", "metadata.coherence", "the store knows no cache"),
    ("metadata.store", "metadata.cache", "the store knows no cache"),
    ("metadata.store", "metadata.loader", "the store is below the loader"),
    ("metadata.store", "metadata.providers", "providers ask the store, not the reverse"),
    ("metadata.store", "metadata.guest", "the store knows no listener"),
    ("metadata.store", "metadata.admin", "the store knows no listener"),
    ("metadata.store", "metadata.services", "the store is given what it needs"),
    ("metadata.store", "metadata.config", "the store is given values, not the settings"),
    ("metadata.providers", "metadata.config", "a provider is given values, not the settings"),
    ("metadata.providers", "metadata.cache", "a provider loads, the loader caches"),
    ("metadata.providers", "metadata.coherence", "a provider loads, the loader caches"),
    ("metadata.providers", "metadata.guest", "a provider knows no HTTP"),
    ("metadata.providers", "metadata.admin", "a provider knows no HTTP"),
    ("metadata.providers", "metadata.store", "a provider asks a source, not the store"),
    ("metadata.loader", "metadata.store", "the loader asks a source, not the store"),
    ("metadata.sources", "metadata.store", "the source interface knows no implementation"),
    ("metadata.sources", "metadata.cache", "a source loads, the loader caches"),
    ("metadata.cache", "metadata.guest", "the cache holds slices, not the tree"),
    ("metadata.cache", "metadata.store", "the cache knows no SQL"),
    ("metadata.cache", "metadata.providers", "the cache knows no SQL"),
    ("metadata.guest", "metadata.admin", "the guest listener knows no operator API"),
    ("metadata.loader", "metadata.guest", "loading knows no path tree"),
]

# Arrows of the FORBIDDEN kind still present, each waiting for the work that removes it
# (the slice source work removed the last two: store.store -> coherence, providers ->
# config). An arrow that is gone must leave this list.
KNOWN: set[tuple[str, str]] = set()

# What everything else stands on: these import only one another.
FOUNDATION = {
    "metadata.errors",
    "metadata.records",
    "metadata.lru",
    "metadata.stats",
    "metadata.codec",
    "metadata.user_data_versions",
}

# The ways in: only they may import one another (and `__main__` the CLI).
ENTRY_POINTS = {"metadata.__main__", "metadata.cli", "metadata.workers", "metadata.app"}


def describe(arrows: list[Arrow]) -> list[str]:
    return [f"{a.source}:{a.line} -> {a.target}" for a in arrows]


def test_there_is_no_import_circle() -> None:
    cycle = find_cycle(graph(ARROWS))
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_private_name_is_imported_across_modules() -> None:
    assert private_imports(ARROWS) == []


def test_no_forbidden_arrow() -> None:
    found = [
        f"{a.source}:{a.line} -> {a.target} ({why})"
        for source, target, why in FORBIDDEN
        for a in crossing(ARROWS, source, target)
        if (a.source, a.target) not in KNOWN
    ]
    assert found == []


def test_every_known_arrow_is_still_there() -> None:
    """A KNOWN arrow that is gone leaves the list: it would let the arrow come back."""
    present = {(a.source, a.target) for a in ARROWS}
    assert KNOWN - present == set()


def test_the_foundation_imports_only_the_foundation() -> None:
    leaving = [a for a in ARROWS if a.source in FOUNDATION and a.target not in FOUNDATION]
    assert describe(leaving) == []


def test_only_entry_points_import_entry_points() -> None:
    inward = [a for a in ARROWS if a.target in ENTRY_POINTS and a.source not in ENTRY_POINTS]
    assert describe(inward) == []


def test_the_graph_sees_function_local_imports() -> None:
    """The check is only as good as its reading: `cli` imports the admin importer inside a
    function, and that arrow must be in the graph."""
    assert "metadata.admin.importer" in graph(ARROWS)["metadata.cli"]


def test_the_check_finds_a_circle_and_a_private_name() -> None:
    """The checker itself: a circle hidden two steps deep, and `from a import _x`."""
    edges = {"m.a": {"m.b"}, "m.b": {"m.c"}, "m.c": {"m.a"}, "m.d": set()}
    assert find_cycle(edges) == ["m.a", "m.b", "m.c", "m.a"]
    assert find_cycle({"m.a": {"m.b"}, "m.b": set()}) is None
    private = private_imports([Arrow("m.a", "m.b", ("run", "_run"), 3)])
    assert private == ["m.a:3 imports _run from m.b"]
