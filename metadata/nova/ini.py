"""nova.conf read as oslo.config reads it: several files, later wins, repeated keys kept.

The grammar follows oslo.config's `iniparser`: `[section]` headers, `key = value` or
`key: value` (whichever separator comes first), `#`/`;` comment lines, continuation lines
indented under a key (joined with newlines), one pair of matching quotes stripped. Section
names other than `DEFAULT` are case-insensitive and `-` in a key is `_`, as oslo.config
normalises group and option names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from metadata.errors import InvalidSettings

DEFAULT = "DEFAULT"


@dataclass(frozen=True, slots=True)
class Value:
    text: str
    # "file, line N": where the value was read, for messages about it.
    origin: str


@dataclass(slots=True)
class IniFiles:
    """Every value of every key, in file then line order: section -> key -> values."""

    files: tuple[str, ...]
    sections: dict[str, dict[str, list[Value]]] = field(default_factory=dict)

    def values(self, section: str, key: str) -> list[Value]:
        return self.sections.get(normalise_section(section), {}).get(normalise_key(key), [])

    def last(self, section: str, key: str) -> Value | None:
        """The value oslo.config uses for a single-valued option: the last one read."""
        values = self.values(section, key)
        return values[-1] if values else None

    def has_section(self, section: str) -> bool:
        return normalise_section(section) in self.sections


def normalise_section(name: str) -> str:
    return name if name == DEFAULT else name.lower()


def normalise_key(name: str) -> str:
    return name.strip().replace("-", "_")


def _split_assignment(line: str) -> tuple[str, str] | None:
    colon, equal = line.find(":"), line.find("=")
    if colon < 0 and equal < 0:
        return None
    at = equal if colon < 0 or 0 <= equal < colon else colon
    key, value = line[:at].strip(), line[at + 1 :].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return key, value


def parse_text(text: str, name: str, into: IniFiles) -> None:
    """Add one file's values to `into`; a malformed line is an error naming file and line."""
    section: str | None = None
    key: str | None = None
    lines: list[str] = []
    start = 0

    def assign() -> None:
        assert section is not None and key is not None
        store = into.sections.setdefault(section, {}).setdefault(normalise_key(key), [])
        store.append(Value("\n".join(lines), f"{name}, line {start}"))

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line:
            if key is not None:
                assign()
                key = None
            continue
        if line.startswith((" ", "\t")):
            if key is None:
                raise InvalidSettings(
                    [
                        f"nova config {name}, line {number}: a continuation "
                        "line with no option above it"
                    ]
                )
            lines.append(line.lstrip())
            continue
        if key is not None:
            assign()
            key = None
        if line.startswith("["):
            if not line.endswith("]") or len(line) <= 2:
                raise InvalidSettings(
                    [f"nova config {name}, line {number}: malformed section header {line[:80]!r}"]
                )
            section = normalise_section(line[1:-1])
            into.sections.setdefault(section, {})
        elif line.startswith(("#", ";")):
            continue
        else:
            pair = _split_assignment(line)
            if pair is None or not pair[0]:
                raise InvalidSettings(
                    [f"nova config {name}, line {number}: expected 'option = value'"]
                )
            if section is None:
                raise InvalidSettings(
                    [f"nova config {name}, line {number}: option {pair[0]!r} before any [section]"]
                )
            key, lines, start = pair[0], [pair[1]], number
    if key is not None:
        assign()


def read_files(paths: Sequence[str]) -> IniFiles:
    """Read every file in order (as `--config-file A --config-file B`: B wins)."""
    if not paths:
        raise InvalidSettings(["nova_config: no nova.conf file named"])
    into = IniFiles(tuple(paths))
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidSettings([f"nova config {path}: cannot be read: {exc}"]) from exc
        parse_text(text, path, into)
    return into
