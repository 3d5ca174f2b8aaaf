"""Replicas that start together on a fresh database: every one of them migrates or finds
the schema migrated, none fails on "already exists"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROCESSES = 4


def upgrade_at_once(database_url: str) -> list[subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_")}
    starts = [
        subprocess.Popen(
            [sys.executable, "-m", "metadata", "db", "upgrade", "--database-url", database_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    results = []
    for process in starts:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_concurrent_upgrades_of_a_fresh_database_all_succeed(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    else:
        import asyncio

        from tests.conftest import _empty_database

        url = request.getfixturevalue(f"{backend}_database")
        asyncio.run(_empty_database(url))
    results = upgrade_at_once(url)
    assert [r.returncode for r in results] == [0] * PROCESSES, [r.stderr[-800:] for r in results]
    from metadata.store.migrate import head_revision

    assert all(f"schema at revision {head_revision()}" in r.stdout for r in results)


def _mysql_lock_holder(url: str, database: str):  # type: ignore[no-untyped-def]
    """A separate session holding the migration lock of `database`."""
    import pymysql
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    conn = pymysql.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=parsed.database,
    )
    from metadata.store.migrate import mysql_lock_name

    with conn.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 0)", (mysql_lock_name(database),))
        assert cursor.fetchone() == (1,)
    return conn


async def _tables(url: str) -> set[str]:
    from sqlalchemy import inspect
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def _upgrade_while_locked(url: str, locked_database: str) -> None:
    """`migrate.upgrade` of `url` while another session holds `locked_database`'s lock."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from metadata.store import migrate
    from tests.conftest import _empty_database

    await _empty_database(url)
    holder = _mysql_lock_holder(url, locked_database)
    engine = create_async_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
        holder.close()


@pytest.mark.mysql
async def test_a_migration_lock_not_obtained_is_an_error_and_migrates_nothing(
    mysql_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import make_url

    from metadata.errors import StoreUnavailable
    from metadata.store import migrate

    monkeypatch.setattr(migrate, "LOCK_TIMEOUT_SECONDS", 1)
    with pytest.raises(StoreUnavailable, match="migration lock"):
        await _upgrade_while_locked(mysql_database, make_url(mysql_database).database or "")
    assert await _tables(mysql_database) == set()


@pytest.mark.mysql
async def test_the_migration_lock_of_another_database_does_not_hold_this_one(
    mysql_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metadata.store import migrate

    monkeypatch.setattr(migrate, "LOCK_TIMEOUT_SECONDS", 1)
    await _upgrade_while_locked(mysql_database, "some_other_database")
    assert "instances" in await _tables(mysql_database)
