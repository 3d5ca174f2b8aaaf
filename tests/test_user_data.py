"""Mutable user data: the admin routes with ETags and If-Match, the history and its restore,
and guests seeing each change (with ETag and If-None-Match) on their very next read."""

from __future__ import annotations

import base64
import gzip
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from metadata.document import parse_document
from metadata.errors import Conflict, PreconditionFailed
from metadata.store.engine import Database
from metadata.store.store import Store
from metadata.user_data_versions import UserDataChange, etag_of
from tests.conftest import ADMIN_TOKEN
from tests.documents import guest_headers, instance_uuid, sample_document

OPS_TOKEN = "ops-token-abcdefghijklmnop"
MULTIPART = (
    b'Content-Type: multipart/mixed; boundary="==B=="\nMIME-Version: 1.0\n\n--==B==\n'
    b"Content-Type: text/cloud-config\n\n#cloud-config\nruncmd: [true]\n--==B==--\n"
)
GUEST_PATHS = ("/openstack/latest/user_data", "/latest/user-data")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"admin_tokens": {"admin": ADMIN_TOKEN, "ops": OPS_TOKEN}, "user_data_history": 2}


def url(n: int, tail: str = "/user-data") -> str:
    return f"/v1/instances/{instance_uuid(n)}{tail}"


def as_ops() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPS_TOKEN}"}


async def history(admin: Any, n: int) -> list[dict[str, Any]]:
    response = await admin.get(url(n, "/user-data/history"))
    assert response.status == 200
    rows: list[dict[str, Any]] = (await response.json())["history"]
    return rows


@pytest.mark.parametrize(
    "data",
    [gzip.compress(b"#cloud-config\n" * 100), MULTIPART, bytes(range(256)) * 3],
    ids=["gzip", "multipart", "binary"],
)
async def test_any_bytes_come_back_byte_for_byte_with_one_etag_everywhere(
    admin: Any, guest: Any, put_instance: Any, data: bytes
) -> None:
    await put_instance(sample_document(1))
    put = await admin.put(url(1), data=data)
    assert put.status == 204
    expected = f'"{hashlib.sha256(data).hexdigest()}"'
    assert put.headers["ETag"] == expected
    got = await admin.get(url(1))
    assert (await got.read(), got.headers["ETag"]) == (data, expected)
    for path in GUEST_PATHS:
        read = await guest.get(path, headers=guest_headers(1))
        assert (read.status, await read.read()) == (200, data)
        assert read.headers["ETag"] == expected


async def test_user_data_update_is_seen_by_the_next_guest_read_with_its_etag(
    admin: Any, guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(1))
    for _ in range(2):  # the second read is a warm answer
        first = await guest.get("/latest/user-data", headers=guest_headers(1))
    old_etag = first.headers["ETag"]
    unchanged = await guest.get(
        "/latest/user-data", headers={**guest_headers(1), "If-None-Match": old_etag}
    )
    assert (unchanged.status, await unchanged.read()) == (304, b"")
    assert unchanged.headers["ETag"] == old_etag
    assert (await admin.put(url(1), data=b"#!/bin/sh\necho two\n")).status == 204
    for path in GUEST_PATHS:
        changed = await guest.get(path, headers={**guest_headers(1), "If-None-Match": old_etag})
        assert (changed.status, await changed.read()) == (200, b"#!/bin/sh\necho two\n")
        assert changed.headers["ETag"] == etag_of(b"#!/bin/sh\necho two\n")


async def test_a_stale_if_match_is_412_and_leaves_the_bytes(
    admin: Any, guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(1))
    seen = (await admin.get(url(1))).headers["ETag"]
    # Two operators read the same version; the first to write wins, the second is told.
    assert (await admin.put(url(1), data=b"first", headers={"If-Match": seen})).status == 204
    late = await admin.put(url(1), data=b"second", headers={"If-Match": seen})
    assert late.status == 412
    assert (await admin.delete(url(1), headers={"If-Match": seen})).status == 412
    assert await (await admin.get(url(1))).read() == b"first"
    assert await (await guest.get("/latest/user-data", headers=guest_headers(1))).read() == b"first"
    current = etag_of(b"first")
    assert (await admin.delete(url(1), headers={"If-Match": current})).status == 204
    assert (await admin.get(url(1))).status == 404
    # `*` asks for user data to be there: now there is none
    assert (await admin.put(url(1), data=b"x", headers={"If-Match": "*"})).status == 412


async def test_each_change_is_recorded_with_who_when_size_and_hash(
    admin: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(1))  # the document's own user data: version 1
    assert (await admin.put(url(1), data=b"abc", headers=as_ops())).status == 204
    assert (await admin.put(url(1), data=b"abc", headers=as_ops())).status == 204  # same bytes
    assert (await admin.delete(url(1))).status == 204
    doc = sample_document(1, user_data=base64.b64encode(b"from doc").decode())
    await put_instance(doc)
    rows = await history(admin, 1)
    assert [(r["action"], r["changed_by"], r["size"]) for r in rows] == [
        ("set", "admin", 8),
        ("delete", "admin", None),
        ("set", "ops", 3),
        ("set", "admin", len(b"#cloud-config\nhostname: web-1\n")),
    ]
    assert rows[2]["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert rows[2]["etag"] == etag_of(b"abc")
    assert rows[0]["changed_at"] >= rows[-1]["changed_at"]
    assert [r["version"] for r in rows] == sorted((r["version"] for r in rows), reverse=True)


async def test_one_call_restores_a_kept_version_and_older_ones_are_refused(
    admin: Any, guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(1, user_data=None))
    for data in (b"v1", b"v2", b"v3", b"v4"):
        assert (await admin.put(url(1), data=data)).status == 204
    v1, v2 = sorted(r["version"] for r in await history(admin, 1))[:2]
    restored = await admin.post(url(1, f"/user-data/history/{v2}/restore"), headers=as_ops())
    assert restored.status == 200
    assert restored.headers["ETag"] == etag_of(b"v2")
    entry = await restored.json()
    assert (entry["action"], entry["restored_from"], entry["changed_by"]) == ("restore", v2, "ops")
    read = await guest.get("/openstack/latest/user_data", headers=guest_headers(1))
    assert await read.read() == b"v2"
    # user_data_history=2: the current version and two before it keep their bytes
    rows = await history(admin, 1)
    assert [r["restorable"] for r in rows] == [True, True, True, False, False]
    too_old = await admin.post(url(1, f"/user-data/history/{v1}/restore"))
    assert too_old.status == 409
    assert (await admin.post(url(1, "/user-data/history/999999/restore"))).status == 404
    assert await (await admin.get(url(1))).read() == b"v2"


async def test_unknown_instance_is_404_on_every_user_data_route(admin: Any) -> None:
    assert (await admin.put(url(9), data=b"x")).status == 404
    assert (await admin.get(url(9))).status == 404
    assert (await admin.delete(url(9))).status == 404
    assert (await admin.get(url(9, "/user-data/history"))).status == 404
    assert (await admin.post(url(9, "/user-data/history/1/restore"))).status == 404


async def test_oversize_is_413_and_records_nothing(
    admin: Any, put_instance: Any, services: Any
) -> None:
    await put_instance(sample_document(1))
    before = await history(admin, 1)
    too_big = b"z" * (services.settings.user_data_max_bytes + 1)
    assert (await admin.put(url(1), data=too_big)).status == 413
    assert await history(admin, 1) == before


@pytest.fixture
def failing_history_insert(services: Any) -> Iterator[None]:
    """Makes the database refuse the history row, after the user data rows were written:
    the transaction must roll back as a whole."""

    def refuse(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO user_data_history"):
            raise OperationalError(statement, None, Exception("injected failure"))

    engine = services.db.writer.sync_engine
    event.listen(engine, "before_cursor_execute", refuse)
    yield
    event.remove(engine, "before_cursor_execute", refuse)


async def test_a_failed_write_leaves_the_old_bytes_in_place(
    admin: Any, guest: Any, put_instance: Any, request: pytest.FixtureRequest
) -> None:
    await put_instance(sample_document(1))
    assert (await admin.put(url(1), data=b"old bytes")).status == 204
    assert await (await guest.get("/latest/user-data", headers=guest_headers(1))).read() == (
        b"old bytes"
    )
    before = await history(admin, 1)
    request.getfixturevalue("failing_history_insert")
    assert (await admin.put(url(1), data=b"new bytes")).status == 503
    assert (await admin.delete(url(1))).status == 503
    assert await (await admin.get(url(1))).read() == b"old bytes"
    read = await guest.get("/latest/user-data", headers=guest_headers(1))
    assert (await read.read(), read.headers["ETag"]) == (b"old bytes", etag_of(b"old bytes"))
    assert await history(admin, 1) == before


async def test_history_if_match_and_restore_work_on_every_database(
    any_database_url: str,
) -> None:
    db = Database(any_database_url)
    store = Store(db, user_data_history=1)
    try:
        await store.migrate()
        await store.put_document(parse_document(sample_document(1, user_data=None)), "admin")
        uuid = instance_uuid(1)
        big = bytes(range(256)) * 256  # 64 KiB: over MySQL's BLOB, under MEDIUMBLOB
        first = await store.set_user_data(uuid, big, UserDataChange("ops"))
        assert first == etag_of(big)
        with pytest.raises(PreconditionFailed):
            await store.set_user_data(uuid, b"b", UserDataChange("ops", '"stale"'))
        await store.set_user_data(uuid, b"b", UserDataChange("ops", first))
        await store.set_user_data(uuid, None, UserDataChange("admin"))
        rows = await store.user_data_history(uuid, 10)
        assert [(r.action, r.size, r.is_restorable) for r in rows] == [
            ("delete", None, True),
            ("set", 1, True),
            ("set", len(big), False),
        ]
        with pytest.raises(Conflict):
            await store.restore_user_data(uuid, rows[2].version, UserDataChange("admin"))
        restored = await store.restore_user_data(uuid, rows[1].version, UserDataChange("ops"))
        assert (restored.action, restored.restored_from) == ("restore", rows[1].version)
        assert (await store.get_user_data(uuid)).data == b"b"
        assert await store.user_data_etag(uuid) == etag_of(b"b")
        await store.delete_instance(uuid)  # history goes with the instance
        await store.put_document(parse_document(sample_document(1, user_data=None)), "admin")
        assert await store.user_data_history(uuid, 10) == []
    finally:
        await db.dispose()


async def test_oversize_user_data_inside_a_document_is_413_naming_the_field(
    admin: Any, put_instance: Any, services: Any
) -> None:
    await put_instance(sample_document(1))
    too_big = base64.b64encode(b"z" * (services.settings.user_data_max_bytes + 1)).decode()
    response = await admin.put(
        f"/v1/instances/{instance_uuid(1)}", json=sample_document(1, user_data=too_big)
    )
    assert response.status == 413
    assert "user_data" in (await response.json())["error"]
    assert await (await admin.get(url(1))).read() == base64.b64decode(
        sample_document(1)["user_data"]
    )
