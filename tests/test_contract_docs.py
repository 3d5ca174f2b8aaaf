"""docs/CONTRACT.md names everything the code offers, as the code offers it.

Every list below is read from the code itself (the Settings fields and their parsers, the
argparse parser of `metadata`, the router of a real admin app, the document validator's
fields, the rows of both guest trees), so adding a setting, a flag, a command, a route, a
field or a leaf without a line in the contract fails here. Sections marked "(in progress)"
describe work not built yet and are left out of the checks in the other direction.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from metadata.admin.routes import build_admin_app
from metadata.cli import build_parser
from metadata.config import ALIASES, FLAG_SETTINGS, Settings, env_name
from metadata.document import KNOWN_FIELDS
from metadata.guest import ec2, nocloud, openstack
from metadata.services import Services

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = (ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
IN_PROGRESS = "(in progress)"


def section(title: str, level: int = 2, text: str = CONTRACT) -> str:
    """The body of the one heading of this level that starts with `title`."""
    marks = "#" * level
    parts = re.split(rf"^(?={marks} )", text, flags=re.MULTILINE)
    found = [p for p in parts if p.startswith(f"{marks} {title}")]
    assert len(found) == 1, f"CONTRACT.md needs one '{marks} {title}' section"
    return found[0]


def table_rows(text: str, first_cell: str = "`") -> list[list[str]]:
    """The cells of every table row whose first cell starts with `first_cell`."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| " + first_cell):
            # `\|` inside a cell is an escaped bar, not a column
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            rows.append([c.strip() for c in cells])
    return rows


# -- settings ---------------------------------------------------------------------------


def spelling(field_name: str) -> str:
    """The name a setting has in the environment, on flags and in TOML (the alias, if any)."""
    return next((alias for alias, target in ALIASES.items() if target == field_name), field_name)


def default_shown(value: object) -> set[str]:
    """How the settings table may write a default `config show` prints as `value`."""
    if value is None or value in ({}, [], ()):
        return {"none", "`{}`", "random per process"}
    if isinstance(value, bool):
        return {f"`{str(value).lower()}`"}
    if isinstance(value, float):
        return {f"`{value:g}`"}
    return {f"`{value}`"}


SETTINGS_ROWS = {row[0].strip("`"): row for row in table_rows(section("Settings"), "`METADATA_")}


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Settings)])
def test_every_setting_has_a_row_naming_its_variable_flag_toml_key_and_default(name: str) -> None:
    spelled = spelling(name)
    row = SETTINGS_ROWS.get(env_name(spelled))
    assert row is not None, f"no settings row for {env_name(spelled)}"
    _, flag, toml_key, default, meaning = row
    assert flag == f"`--{spelled.replace('_', '-')}`"
    assert toml_key == f"`{spelled}`"
    assert default in default_shown(Settings().masked()[name]), (name, default)
    assert meaning


def test_the_settings_table_names_only_settings_that_exist() -> None:
    assert set(SETTINGS_ROWS) == {env_name(name) for name in FLAG_SETTINGS}


# -- the metadata command ---------------------------------------------------------------


def leaf_commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command words, parser) of every command that takes no further subcommand."""
    # argparse has no public way to list subcommands: its actions are the documented shape.
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield path, parser
    for action in subcommands:
        for name, child in action.choices.items():
            yield from leaf_commands(child, (*path, name))


COMMANDS = dict(leaf_commands(build_parser()))
SETTINGS_FLAGS = {"--" + name.replace("_", "-") for name in FLAG_SETTINGS}


def command_section(words: tuple[str, ...]) -> str:
    """The `### metadata …` section whose heading names these words (`a|b` names either)."""
    cli = section("The `metadata` command")
    for part in re.split(r"^(?=### )", cli, flags=re.MULTILINE):
        heading = re.match(r"### `metadata ([^`]*)`", part)
        if heading is None:
            continue
        named = heading.group(1).split()
        if len(named) >= len(words) and all(
            word in choice.split("|") for word, choice in zip(words, named, strict=False)
        ):
            return part
    raise AssertionError(f"no '### `metadata {' '.join(words)}`' section in CONTRACT.md")


@pytest.mark.parametrize("words", sorted(COMMANDS), ids=" ".join)
def test_every_command_has_a_section_naming_its_flags_and_arguments(words: tuple[str, ...]) -> None:
    text = command_section(words)
    assert f"`metadata {' '.join(words)}" in text
    options = {
        option
        for action in COMMANDS[words]._actions
        for option in action.option_strings
        if option not in ("-h", "--help")
    }
    if options >= SETTINGS_FLAGS:
        # serve and config show take all of them: the settings table lists each one.
        assert "every settings flag" in text
        options -= SETTINGS_FLAGS
    for option in sorted(options):
        assert re.search(rf"`{re.escape(option)}[`\s]", text), f"{option} of {words}"
    for action in COMMANDS[words]._actions:
        if not action.option_strings:
            assert action.dest.upper() in text, f"argument {action.dest} of {words}"


# -- admin API --------------------------------------------------------------------------


@pytest.fixture
async def admin_routes(tmp_path: Path) -> set[str]:
    """`METHOD path` of every route of a real admin app (HEAD: aiohttp adds one per GET)."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/contract.db",
        admin_tokens={"admin": "contract-admin-token-0123"},
    )
    async with Services.open(settings) as services:
        app = build_admin_app(services)
        return {
            f"{route.method} {route.resource.canonical}"
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }


def documented_routes() -> set[str]:
    return {row[0].strip("`") for row in table_rows(section("Admin API"), "`")}


def test_every_admin_route_has_a_row(admin_routes: set[str]) -> None:
    assert sorted(admin_routes - documented_routes()) == []


def test_every_admin_row_is_a_route(admin_routes: set[str]) -> None:
    assert sorted(documented_routes() - admin_routes) == []


# -- instance document and guest API -----------------------------------------------------


@pytest.mark.parametrize("field", sorted(KNOWN_FIELDS))
def test_every_document_field_is_described(field: str) -> None:
    rows = table_rows(section("Instance document"), "`")
    assert any(f"`{field}`" in row[0] for row in rows), field


GUEST = section("Guest API")
# Each tree's rows are in the part of the section that its bold name opens.
TREES = {
    "ec2": (ec2.build_tree(), "1.0", "**EC2**"),
    "openstack": (openstack.build_tree({}), "", "**OpenStack**"),
    "nocloud": (nocloud.build_tree({}), "", "**NoCloud**"),
}


def tree_part(marker: str) -> str:
    start = GUEST.index(marker)
    ends = [GUEST.find(m, start + 1) for _, _, m in TREES.values()]
    ends = [e for e in ends if e > start] + [GUEST.index("### User data")]
    return GUEST[start : min(ends)]


@pytest.mark.parametrize(
    ("tree", "path", "since"),
    [
        (name, leaf.path, leaf.since or oldest)
        for name, (tree, oldest, _) in TREES.items()
        for leaf in tree.leaves
    ],
)
def test_every_guest_leaf_has_a_row_saying_since_which_version(
    tree: str, path: str, since: str
) -> None:
    part = tree_part(TREES[tree][2])
    rows = [row for row in table_rows(part, "`") if row[0] == f"`{path}`"]
    assert len(rows) == 1, f"{tree} leaf {path}: one row"
    assert rows[0][1].startswith(since), (path, since, rows[0][1])


@pytest.mark.parametrize("version", [*ec2.VERSIONS, *openstack.VERSIONS])
def test_every_served_version_is_named(version: str) -> None:
    assert f"`{version}`" in GUEST


def test_the_nova_source_is_a_built_section() -> None:
    assert "## Nova source\n" in CONTRACT
    assert "## Nova source (in progress)" not in CONTRACT


def test_every_command_section_names_commands_that_exist() -> None:
    cli = section("The `metadata` command")
    headings = re.findall(r"^### `metadata ([^`]*)`", cli, flags=re.MULTILINE)
    assert headings
    for heading in headings:
        words = [w for w in heading.split() if not w.isupper()]
        for choice in words[-1].split("|"):
            command = (*words[:-1], choice)
            assert any(path[: len(command)] == command for path in COMMANDS), heading
