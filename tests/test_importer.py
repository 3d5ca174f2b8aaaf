"""`metadata instances import/export` and `metadata db upgrade`, run as the CLI runs them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from metadata.cli import main
from metadata.config import Settings
from metadata.document import parse_document
from metadata.services import Services
from metadata.store.engine import Database
from metadata.store.migrate import current_revision, head_revision
from metadata.store.schema import instances
from tests.documents import guest_headers, instance_uuid, sample_document


def write_lines(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(doc) + b"\n" for doc in docs))
    return path


def export(database_url: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    out = tmp_path / "export.jsonl"
    assert main(["instances", "export", "--database-url", database_url, "-o", str(out)]) == 0
    docs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    return {doc["uuid"]: doc for doc in docs}


def assert_same_documents(exported: dict[str, dict[str, Any]], given: list[dict[str, Any]]) -> None:
    # Compared as parsed documents: the export adds the derived fields (ec2_id, ami_id, ...).
    assert sorted(exported) == sorted(doc["uuid"] for doc in given)
    for doc in given:
        assert parse_document(exported[doc["uuid"]]) == parse_document(doc)


def test_import_json_lines_then_export_gives_the_same_documents(
    database_url: str, tmp_path: Path
) -> None:
    docs = [sample_document(n) for n in range(1, 6)]
    source = write_lines(tmp_path / "in.jsonl", docs)
    assert main(["instances", "import", "--database-url", database_url, str(source)]) == 0
    assert_same_documents(export(database_url, tmp_path), docs)


def test_import_json_array_through_python_m_metadata(database_url: str, tmp_path: Path) -> None:
    docs = [sample_document(n) for n in range(1, 4)]
    source = tmp_path / "in.json"
    source.write_bytes(orjson.dumps(docs, option=orjson.OPT_INDENT_2))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "metadata",
            "instances",
            "import",
            "--database-url",
            database_url,
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "imported 3 instances" in result.stderr
    assert_same_documents(export(database_url, tmp_path), docs)


def test_reimported_export_restores_the_exported_state_without_user_data(
    database_url: str, tmp_path: Path
) -> None:
    docs = [sample_document(1, user_data=None)]
    assert (
        main(
            [
                "instances",
                "import",
                "--database-url",
                database_url,
                str(write_lines(tmp_path / "a.jsonl", docs)),
            ]
        )
        == 0
    )
    snapshot = tmp_path / "snapshot.jsonl"
    assert main(["instances", "export", "--database-url", database_url, "-o", str(snapshot)]) == 0
    # User data added after the export is gone again once the export is imported back.
    assert (
        main(
            [
                "instances",
                "import",
                "--database-url",
                database_url,
                str(write_lines(tmp_path / "b.jsonl", [sample_document(1)])),
            ]
        )
        == 0
    )
    assert main(["instances", "import", "--database-url", database_url, str(snapshot)]) == 0
    assert export(database_url, tmp_path)[docs[0]["uuid"]].get("user_data") is None


def test_bad_document_names_number_and_field_and_nothing_is_imported(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = [sample_document(n) for n in range(1, 8)]
    docs[5]["ports"][0]["mac"] = "not-a-mac"
    source = write_lines(tmp_path / "in.jsonl", docs)
    code = main(
        ["instances", "import", "--batch-size", "2", "--database-url", database_url, str(source)]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "document 6" in err
    assert "ports[0].mac" in err
    # The file is validated whole before the first batch: the earlier batches are not written.
    assert export(database_url, tmp_path) == {}


@pytest.mark.parametrize("content", [b"[{]", b'{"uuid": 1}\n{not json\n', b"[1, 2]", b"\xff\xfe"])
def test_malformed_file_is_a_clear_error_not_a_traceback(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    source = tmp_path / "bad.json"
    source.write_bytes(content)
    assert main(["instances", "import", "--database-url", database_url, str(source)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("metadata: ")
    assert "Traceback" not in err


def test_missing_file_is_a_clear_error(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.json"
    assert main(["instances", "import", "--database-url", database_url, str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err


def test_large_file_imports_all_in_batches_with_a_progress_line(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = [sample_document(n) for n in range(1, 3001)]
    source = write_lines(tmp_path / "big.jsonl", docs)
    code = main(
        ["instances", "import", "--batch-size", "500", "--database-url", database_url, str(source)]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "3000 instances" in err
    assert "100.0%" in err  # the final redraw of the bar
    assert "imported 3000 instances" in err
    assert _count_instances(database_url) == 3000


def test_a_later_duplicate_in_one_batch_wins(database_url: str, tmp_path: Path) -> None:
    docs = [sample_document(1), sample_document(1, hostname="second")]
    assert (
        main(
            [
                "instances",
                "import",
                "--database-url",
                database_url,
                str(write_lines(tmp_path / "d.jsonl", docs)),
            ]
        )
        == 0
    )
    assert export(database_url, tmp_path)[instance_uuid(1)]["hostname"] == "second"


async def test_imported_instance_is_served_to_its_guest(
    database_url: str, tmp_path: Path, aiohttp_client: Any, settings: Settings
) -> None:
    from metadata.app import build_guest_app

    source = write_lines(tmp_path / "in.jsonl", [sample_document(7)])
    # main() runs its own event loop: run it off this test's loop.
    code = await asyncio.to_thread(
        main, ["instances", "import", "--quiet", "--database-url", database_url, str(source)]
    )
    assert code == 0
    async with Services.open(settings) as services:
        stored = await services.store.get_document(instance_uuid(7))
        assert stored.core.hostname == "web-7"
        guest = await aiohttp_client(build_guest_app(services))
        response = await guest.get("/latest/meta-data/hostname", headers=guest_headers(7))
        assert response.status == 200
        assert await response.text() == "web-7"


def test_db_upgrade_on_sqlite_reaches_head(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):  # idempotent
        assert main(["db", "upgrade", "--database-url", database_url]) == 0
    assert str(head_revision()) in capsys.readouterr().out
    assert _revision(database_url) == head_revision()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_db_upgrade_on_the_database_servers(request: pytest.FixtureRequest, backend: str) -> None:
    url: str = request.getfixturevalue(f"{backend}_database")
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert _revision(url) == head_revision()


def _revision(url: str) -> str | None:
    async def read() -> str | None:
        db = Database(url)
        try:
            return await current_revision(db.writer)
        finally:
            await db.dispose()

    return asyncio.run(read())


def _count_instances(url: str) -> int:
    async def read() -> int:
        db = Database(url)
        try:
            async with db.read() as conn:
                return int(await conn.scalar(select(func.count()).select_from(instances)) or 0)
        finally:
            await db.dispose()

    return asyncio.run(read())
