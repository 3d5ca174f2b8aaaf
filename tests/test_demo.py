"""`metadata serve --demo`, the examples the README uses, and what a first start logs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from metadata.cli import main
from metadata.config import Settings
from metadata.demo import DEMO_ADDRESS, DEMO_DOCUMENT, DEMO_USER_DATA, DEMO_UUID, seed_demo_instance
from metadata.document import parse_document
from metadata.store.engine import Database
from metadata.store.store import Store
from tests.documents import instance_uuid, sample_document
from tests.servers import start_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DEMO_INSTANCE_ID = "i-" + DEMO_UUID.replace("-", "")[:17]


def log_records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_a_demo_server_answers_instance_id_to_loopback_at_once_and_twice(tmp_path: Path) -> None:
    # The database is the default one, metadata.db in the working directory, as in README.
    env = {"METADATA_TRUSTED_PROXIES": ""}
    first = start_server(tmp_path, env, "first", args=["--demo"])
    try:
        assert first.guest("/latest/meta-data/instance-id") == (200, DEMO_INSTANCE_ID.encode())
        assert first.guest("/openstack/latest/user_data") == (200, DEMO_USER_DATA)
        # What the operator changes while trying it out survives the next --demo start.
        assert first.admin("PUT", f"/v1/instances/{DEMO_UUID}/user-data", raw=b"changed")[0] == 204
    finally:
        first.stop()
    messages = [str(r["message"]) for r in log_records(first.log)]
    seeded = f"demo instance {DEMO_UUID} (demo-1) owned by {DEMO_ADDRESS}"
    assert any(m.startswith(seeded) for m in messages), messages

    second = start_server(tmp_path, env, "second", args=["--demo"])
    try:
        assert second.guest("/latest/meta-data/instance-id") == (200, DEMO_INSTANCE_ID.encode())
        assert second.guest("/latest/user-data") == (200, b"changed")
        status, body = second.admin("GET", "/v1/instances")
        assert status == 200
        assert [d["uuid"] for d in json.loads(body)["instances"]] == [DEMO_UUID]
    finally:
        second.stop()
    assert any("already present" in str(r["message"]) for r in log_records(second.log))


def test_startup_logs_carry_no_alembic_lines_and_say_the_schema_revision(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"METADATA_LOG_LEVEL": "INFO"})
    server.stop()
    text = server.log.read_text()
    for noise in ("Context impl", "Will assume", "setup plugin", "Running upgrade"):
        assert noise not in text
    records = log_records(server.log)
    assert not [r for r in records if str(r["logger"]).startswith("alembic")]
    migrated = re.compile(r"database schema migrated from revision none to \w+")
    assert any(migrated.fullmatch(str(r["message"])) for r in records), records


def test_demo_refuses_a_database_that_is_not_sqlite_unless_forced(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Refused before any connection: nothing listens on port 1.
    url = "postgresql+asyncpg://someone:secret@127.0.0.1:1/production"
    assert main(["serve", "--demo", "--database-url", url]) == 2
    error = capsys.readouterr().err
    assert "--force-demo" in error and "not the embedded SQLite database" in error
    assert "secret" not in error


async def test_the_demo_seeds_once_and_never_takes_an_address_from_another_instance(
    tmp_path: Path,
) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/demo.db")
    assert await seed_demo_instance(settings) is True
    assert await seed_demo_instance(settings) is False

    # An instance of the operator's already owns 127.0.0.1: the demo must not make it ambiguous.
    other = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/other.db")
    doc = sample_document(1)
    doc["ports"][0]["fixed_ips"] = [{"address": DEMO_ADDRESS, "cidr": "127.0.0.0/8"}]
    database = Database(other.database_url)
    try:
        store = Store(database)
        await store.migrate()
        await store.put_document(parse_document(doc))
        assert await seed_demo_instance(other) is False
        owners = await store.find_instances_by_address(DEMO_ADDRESS)
        assert [uuid for uuid, _ in owners] == [instance_uuid(1)]
    finally:
        await database.dispose()


def test_examples_instance_json_is_the_demo_instance_and_every_example_is_valid() -> None:
    assert json.loads((EXAMPLES / "instance.json").read_text()) == DEMO_DOCUMENT
    for path in EXAMPLES.glob("*.json"):
        parse_document(json.loads(path.read_text()))
    assert (EXAMPLES / "user-data.yaml").read_bytes().startswith(b"#cloud-config\n")


def test_every_example_file_the_readme_names_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"examples/[\w.-]+", readme))
    assert named, "the README's quick start uses the examples"
    assert not [n for n in named if not (ROOT / n).is_file()]
    assert DEMO_INSTANCE_ID in readme
