"""The formatter decides the layout: no file turns it off (issue 10 removed 341 markers)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKERS = ("# fmt: skip", "# fmt: off")


def test_no_file_turns_the_formatter_off() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("metadata", "tests", "loadtests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "test_style.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(marker in line for marker in MARKERS)
    ]
    assert not found, found
