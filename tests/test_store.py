"""The SQL store on SQLite, PostgreSQL and MariaDB: writes, generations, one-statement
slice reads, transactions that roll back whole, paging, and migrations."""

from __future__ import annotations

import base64
import dataclasses
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from metadata.document import parse_document
from metadata.errors import Conflict, InstanceNotFound
from metadata.records import InstanceDocument, Slice, UserData
from metadata.store import reads, writes
from metadata.store import schema as t
from metadata.store.engine import Database
from metadata.store.events import WriteEvent
from metadata.store.migrate import current_revision, head_revision, upgrade
from metadata.store.slices import DEFINITIONS
from metadata.store.source import StoreSource
from metadata.store.store import Store
from tests.documents import instance_address, instance_uuid, sample_document


@pytest.fixture
async def store(any_database_url: str) -> AsyncIterator[Store]:
    db = Database(any_database_url)
    try:
        opened = Store(db)
        await opened.migrate()
        yield opened
    finally:
        await db.dispose()


def document(n: int, **overrides: Any) -> InstanceDocument:
    return parse_document(sample_document(n, **overrides))


async def generation(store: Store, uuid: str) -> int:
    found = await StoreSource(store.db).generation(uuid)
    assert found is not None
    return found


async def test_put_replace_and_delete_each_tell_the_listeners(store: Store) -> None:
    heard: list[tuple[str, int | None]] = []

    async def listener(event: WriteEvent) -> None:
        heard.append((event.uuid, event.generation))

    store.add_write_listener(listener)
    doc = document(1)
    assert await store.put_document(doc) is True
    assert heard == [(doc.core.uuid, await generation(store, doc.core.uuid))]
    stored = await store.get_document(doc.core.uuid)
    assert (stored.metadata, stored.keys, stored.network, stored.vendor_data, stored.user_data) == (
        doc.metadata,
        doc.keys,
        doc.network,
        doc.vendor_data,
        doc.user_data,
    )

    replacement = document(1, hostname="renamed", metadata={"only": "this"}, keys=[], ports=[])
    assert await store.put_document(replacement) is False
    stored = await store.get_document(doc.core.uuid)
    assert stored.core.hostname == "renamed"
    assert dict(stored.metadata.items) == {"only": "this"}
    assert stored.keys.keys == ()
    assert stored.network.ports == ()
    # The replacement said nothing of user data: the old bytes stay.
    assert stored.user_data == doc.user_data
    assert heard[-1] == (doc.core.uuid, stored.core.generation)

    await store.delete_instance(doc.core.uuid)
    assert heard[-1] == (doc.core.uuid, None)
    with pytest.raises(InstanceNotFound):
        await store.get_document(doc.core.uuid)
    with pytest.raises(InstanceNotFound):
        await store.delete_instance(doc.core.uuid)
    # No orphan child rows are left behind.
    async with store.db.read() as conn:
        for table in t.CHILD_TABLES:
            count = await conn.scalar(
                select(func.count())
                .select_from(table)
                .where(table.c.instance_uuid == doc.core.uuid)
            )
            assert count == 0, table.name


async def test_generation_strictly_increases_across_writes_and_recreation(store: Store) -> None:
    uuid = instance_uuid(1)
    seen: list[int] = []
    await store.put_document(document(1))
    seen.append(await generation(store, uuid))
    await store.put_document(document(1, hostname="b"))
    seen.append(await generation(store, uuid))
    await store.set_user_data(uuid, b"new")
    seen.append(await generation(store, uuid))
    await store.set_user_data(uuid, None)
    seen.append(await generation(store, uuid))
    await store.delete_instance(uuid)
    await store.put_document(document(1))
    seen.append(await generation(store, uuid))
    assert all(a < b for a, b in itertools.pairwise(seen)), seen


async def test_each_slice_read_sends_exactly_one_statement(store: Store) -> None:
    """Each slice alone, every slice together, by address and a page of documents: one
    statement each, derived from the one definition per slice."""
    doc = document(1)
    await store.put_document(doc)
    source = StoreSource(store.db)
    await source.read(doc.core.uuid, frozenset())  # the dialect's first-connect queries
    for names in [*({name} for name in DEFINITIONS), set(DEFINITIONS)]:
        before = store.db.counter.total
        found = await source.read(doc.core.uuid, frozenset(names))
        assert store.db.counter.total - before == 1, names
        assert found is not None and found.slices.keys() == names
    before = store.db.counter.total
    [owner] = await source.read_by_address(instance_address(1), frozenset({Slice.CORE}))
    assert store.db.counter.total - before == 1
    assert owner.slices[Slice.CORE].uuid == doc.core.uuid
    before = store.db.counter.total
    got = await store.get_document(doc.core.uuid)
    async with store.db.read() as conn:
        [page] = await reads.load_documents(conn, [doc.core.uuid])
    assert store.db.counter.total - before == 2
    # the stored document, with the generation the store gave it
    assert got == dataclasses.replace(
        doc, core=dataclasses.replace(doc.core, generation=got.core.generation)
    )
    assert page == got


async def test_transaction_failing_midway_leaves_the_old_data(store: Store) -> None:
    old = document(1)
    await store.put_document(old)
    before = await store.get_document(old.core.uuid)
    with pytest.raises(RuntimeError):
        async with store.db.transaction() as conn:
            await writes.put_instance(conn, document(1, hostname="half", metadata={}))
            raise RuntimeError("fails midway")
    assert await store.get_document(old.core.uuid) == before
    with pytest.raises(Conflict):
        async with store.db.transaction() as conn:
            await writes.put_instance(conn, document(1, hostname="half"))
            # A second metadata row with the same key violates the primary key.
            await conn.execute(
                t.metadata_items.insert().values(instance_uuid=old.core.uuid, key="role", value="x")
            )
    assert await store.get_document(old.core.uuid) == before


async def test_metadata_keys_differing_only_in_case_or_trailing_space_are_kept(
    store: Store,
) -> None:
    # MariaDB's default collation would call these equal and refuse the write.
    items = {"Role": "a", "role": "b", "role ": "c"}
    doc = document(1, metadata=items)
    await store.put_document(doc)
    assert dict((await store.get_document(doc.core.uuid)).metadata.items) == items


async def test_list_documents_pages_in_uuid_order(store: Store) -> None:
    for n in range(1, 6):
        await store.put_document(document(n))
    expected = sorted(instance_uuid(n) for n in range(1, 6))
    seen: list[str] = []
    marker = None
    while True:
        page, marker = await store.list_documents(2, marker)
        seen.extend(doc.core.uuid for doc in page)
        if marker is None:
            break
    assert seen == expected
    full, last = await store.list_documents(5, None)
    assert [d.core.uuid for d in full] == expected
    assert last is None
    # A listed document carries the same slices as a single read.
    assert full[0] == await store.get_document(full[0].core.uuid)


async def test_two_instances_sharing_an_address_are_both_found(store: Store) -> None:
    one = sample_document(1)
    two = sample_document(2)
    two["ports"][0]["fixed_ips"] = one["ports"][0]["fixed_ips"]
    await store.put_document(parse_document(one))
    await store.put_document(parse_document(two))
    found = await store.find_instances_by_address(instance_address(1))
    assert sorted(uuid for uuid, _ in found) == sorted([instance_uuid(1), instance_uuid(2)])
    assert await store.find_instances_by_address(instance_address(2)) == []


async def test_64_kib_of_user_data_round_trips_byte_exact_and_needs_an_instance(
    store: Store,
) -> None:
    data = bytes(range(256)) * 256
    assert len(data) == 65536
    doc = document(1, user_data=base64.b64encode(data).decode())
    await store.put_document(doc)
    assert await store.get_user_data(doc.core.uuid) == UserData(data)
    await store.set_user_data(doc.core.uuid, data[::-1])
    assert await store.get_user_data(doc.core.uuid) == UserData(data[::-1])
    with pytest.raises(InstanceNotFound):
        await store.set_user_data(instance_uuid(9), b"x")
    with pytest.raises(InstanceNotFound):
        await store.get_user_data(instance_uuid(9))


async def test_upgrade_is_idempotent_reaches_head_and_matches_the_tables(store: Store) -> None:
    await store.migrate()
    await upgrade(store.db.writer)
    assert await current_revision(store.db.writer) == head_revision()
    assert head_revision() is not None
    # ...and the migrated schema is exactly what schema.py declares.
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    def differences(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(context, t.metadata_obj))

    async with store.db.writer.connect() as conn:
        assert await conn.run_sync(differences) == []


async def test_concurrent_puts_of_one_new_instance_all_succeed(any_database_url: str) -> None:
    """They race to create it (a deadlock on MariaDB, a key taken on PostgreSQL); the losers
    run again as replaces: every PUT succeeds and exactly one created."""
    import asyncio

    from metadata.config import Settings
    from metadata.services import Services

    settings = Settings(database_url=any_database_url, admin_tokens={"admin": "x" * 20})
    async with Services.open(settings) as services:
        for n in range(300, 305):
            doc = parse_document(sample_document(n))
            created = await asyncio.gather(*(services.store.put_document(doc) for _ in range(6)))
            assert sorted(created) == [False] * 5 + [True]
