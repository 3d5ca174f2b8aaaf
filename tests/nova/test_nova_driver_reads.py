"""The pre-compiled reads that asyncmy sends itself (`NovaDatabase.first`): the same rows as
SQLAlchemy's execution of the same statement, counted, and a failed read answered as
unavailable without leaving its connection in the pool. On the session's MariaDB cloud
(Nova's own schema and rows), read only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import column, func, select, table

from loadtests.nova_peer import NovaCloud
from metadata.errors import StoreUnavailable
from metadata.nova.cells import MAPPING, CellDirectory
from metadata.nova.engines import NovaDatabase
from metadata.nova.slices import statement
from metadata.nova.source import SQL_SLICES
from metadata.nova.urls import async_database_url
from tests.nova.test_nova_parity import SEEDED


@pytest.fixture
async def cells(nova_cloud_mysql: NovaCloud) -> AsyncIterator[CellDirectory]:
    urls = nova_cloud_mysql.database_urls
    api = NovaDatabase("API", async_database_url(urls["api"], "api"))
    directory = CellDirectory(api, None, cell_template_base=urls["cell1"])
    await directory.load_cells()
    yield directory
    await directory.dispose()


async def test_nova_mysql_urls_read_through_asyncmy_itself(cells: CellDirectory) -> None:
    assert cells.api is not None
    assert cells.api.engine.dialect.driver == "asyncmy"
    assert cells.api.reads_on_driver
    url = cells.api.url.replace("mysql+asyncmy", "mysql+aiomysql")
    kept = NovaDatabase("API", url)
    assert kept.engine.dialect.driver == "aiomysql" and not kept.reads_on_driver


@pytest.mark.parametrize("name", SEEDED)
async def test_driver_rows_are_sqlalchemys_rows(
    nova_cloud_mysql: NovaCloud, cells: CellDirectory, name: str
) -> None:
    uuid = nova_cloud_mysql.instance(name).uuid
    location = await cells.locate(uuid)
    assert location is not None
    cell = location.cell
    every = [frozenset({one}) for one in SQL_SLICES] + [SQL_SLICES]
    for names in every:
        query = statement(names, cell.engine.dialect.name)
        before = cell.counter.total
        mine = await cell.rows(query, {"uuid": uuid})
        assert cell.counter.total == before + 1
        async with cell.read() as conn:
            theirs = [row._asdict() for row in (await conn.execute(query, {"uuid": uuid})).all()]
        assert mine and sorted(map(repr, mine)) == sorted(map(repr, theirs)), sorted(names)
    assert await cell.rows(statement(SQL_SLICES, "mysql"), {"uuid": "no-such-uuid"}) == []


async def test_a_failed_read_is_unavailable_and_its_connection_is_not_kept(
    cells: CellDirectory,
) -> None:
    api = cells.api
    assert api is not None
    missing = select(column("id")).select_from(table("no_such_table"))
    with pytest.raises(StoreUnavailable, match="API"):
        await api.first(missing, {})
    assert api.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    uuid_row = await api.first(MAPPING, {"uuid": "no-such-uuid"})
    assert uuid_row is None  # the pool still answers


async def test_a_cancelled_read_does_not_leave_its_connection_in_the_pool(
    cells: CellDirectory,
) -> None:
    api = cells.api
    assert api is not None
    pool = api.engine.sync_engine.pool
    slow = asyncio.ensure_future(api.first(select(func.sleep(5).label("slept")), {}))
    for _ in range(1000):  # until the read holds its connection (then sends and waits)
        if pool.checkedout():  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.01)
    assert pool.checkedout() == 1  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    # Had it gone back, the next read on it would meet the sleeping query's late answer.
    for _ in range(3):
        assert await api.first(MAPPING, {"uuid": "no-such-uuid"}) is None


async def test_an_unreachable_database_is_unavailable() -> None:
    nowhere = NovaDatabase("cell x", "mysql+asyncmy://u:p@127.0.0.1:9/nova", timeout=0.5)
    try:
        with pytest.raises(StoreUnavailable, match="cell x"):
            await nowhere.first(MAPPING, {"uuid": "any"})
    finally:
        await nowhere.dispose()


@pytest.mark.parametrize("driver", ["asyncmy", "aiomysql"])
async def test_a_full_pool_is_unavailable_after_the_timeout(
    nova_cloud_mysql: NovaCloud, driver: str
) -> None:
    url = async_database_url(nova_cloud_mysql.database_urls["api"], "api")
    api = NovaDatabase("API", url.replace("mysql+asyncmy", f"mysql+{driver}"), timeout=0.2)
    try:
        async with contextlib.AsyncExitStack() as held:
            for _ in range(30):  # pool_size 10 + max_overflow 20
                await held.enter_async_context(api.engine.connect())
            with pytest.raises(StoreUnavailable, match="API"):
                await api.first(MAPPING, {"uuid": "no-such-uuid"})
    finally:
        await api.dispose()
