"""docs/ARCHITECTURE.md's module map lists every module of the package, and every file it
names exists: a module added, moved or removed without updating the map fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
MIGRATIONS = Path("metadata/store/migrations")


def is_package_marker(path: Path) -> bool:
    """An `__init__.py` holding only its docstring: the directory's line says enough."""
    text = (ROOT / path).read_text(encoding="utf-8")
    return path.name == "__init__.py" and not re.search(r"^(def|class|from|import) ", text, re.M)


def modules() -> list[Path]:
    found = []
    for path in sorted((ROOT / "metadata").rglob("*")):
        relative = path.relative_to(ROOT)
        if path.suffix not in (".py", ".html") or MIGRATIONS in relative.parents:
            continue
        if not is_package_marker(relative):
            found.append(relative)
    return found


def module_map() -> set[str]:
    table = ARCHITECTURE.partition("## Module map")[2].partition("\n## ")[0]
    return {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", table, re.MULTILINE)}


def test_every_module_is_in_the_module_map() -> None:
    listed = module_map()
    text = ARCHITECTURE
    missing = [str(p) for p in modules() if str(p) not in listed and f"`{p}`" not in text]
    assert missing == []


def test_every_file_the_architecture_names_exists() -> None:
    named = set(re.findall(r"`(metadata/[\w./]+)`", ARCHITECTURE))
    assert named
    assert sorted(n for n in named if not (ROOT / n).exists()) == []


def test_every_module_path_the_documentation_names_exists() -> None:
    documents = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "loadtests" / "README.md",
        ROOT / "deploy" / "BINDING.md",
    ]
    missing = []
    for document in documents:
        for named in re.findall(r"`(metadata/[\w./]+)", document.read_text(encoding="utf-8")):
            if not (ROOT / named.rstrip(".")).exists():
                missing.append(f"{document.relative_to(ROOT)}: {named}")
    assert missing == []
