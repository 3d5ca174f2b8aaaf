"""`metadata user-data set|get|history|restore|delete` against a running admin listener."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest

from metadata.cli import main
from metadata.user_data_versions import etag_of
from tests.conftest import ADMIN_TOKEN
from tests.documents import guest_headers, instance_uuid, sample_document

DATA = b"#cloud-config\n\x00\xff binary too\n"


async def cli(admin: Any, *args: str) -> int:
    # In a thread: the CLI blocks on HTTP while this loop serves the admin app.
    argv = [
        "user-data",
        *args[:1],
        instance_uuid(1),
        *args[1:],
        "--admin-url",
        str(admin.make_url("")).rstrip("/"),
        "--token",
        ADMIN_TOKEN,
    ]
    return await asyncio.to_thread(main, argv)


async def test_set_from_a_file_then_get_history_and_restore(
    admin: Any, guest: Any, put_instance: Any, tmp_path: Path, capsysbinary: Any
) -> None:
    await put_instance(sample_document(1, user_data=None))
    (tmp_path / "first").write_bytes(DATA)
    assert await cli(admin, "set", str(tmp_path / "first")) == 0
    assert f"ETag: {etag_of(DATA)}".encode() in capsysbinary.readouterr().err
    assert await cli(admin, "get") == 0
    assert capsysbinary.readouterr().out == DATA
    (tmp_path / "second").write_bytes(b"second")
    assert await cli(admin, "set", str(tmp_path / "second")) == 0
    assert await cli(admin, "history", "--json") == 0
    import orjson

    rows = orjson.loads(capsysbinary.readouterr().out)["history"]
    assert [(r["size"], r["changed_by"]) for r in rows] == [(6, "admin"), (len(DATA), "admin")]
    assert await cli(admin, "restore", str(rows[1]["version"])) == 0
    read = await guest.get("/latest/user-data", headers=guest_headers(1))
    assert await read.read() == DATA
    assert await cli(admin, "history") == 0
    table = capsysbinary.readouterr().out.decode()
    assert table.splitlines()[1].split()[3] == "restore"


async def test_set_from_standard_input_with_a_stale_if_match_fails_and_changes_nothing(
    admin: Any, put_instance: Any, monkeypatch: pytest.MonkeyPatch, capsysbinary: Any
) -> None:
    await put_instance(sample_document(1))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    assert await cli(admin, "set", "-", "--if-match", '"stale"') == 1
    assert b"412" in capsysbinary.readouterr().err
    assert await cli(admin, "get") == 0
    assert capsysbinary.readouterr().out == b"#cloud-config\nhostname: web-1\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    assert await cli(admin, "set", "-") == 0
    assert await cli(admin, "get") == 0
    assert capsysbinary.readouterr().out == b"from stdin"


async def test_unknown_instance_fails_with_the_status(admin: Any, capsysbinary: Any) -> None:
    assert await cli(admin, "get") == 1
    assert b"404" in capsysbinary.readouterr().err
