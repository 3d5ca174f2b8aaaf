"""The database servers of this machine, for tests of the PostgreSQL and MySQL paths.

Each test session makes a database of its own (named after the process) and drops it at
the end, so parallel sessions never meet. A server that does not answer makes its tests
skip with the reason, unless METADATA_TEST_REQUIRE_SERVICES=1 (CI) turns that into a failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
from collections.abc import Coroutine
from typing import Any

import pytest

REQUIRE_SERVICES = os.environ.get("METADATA_TEST_REQUIRE_SERVICES") == "1"
PG_HOST, PG_PORT = "127.0.0.1", 5432
MYSQL_HOST, MYSQL_PORT = "127.0.0.1", 3306
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def unavailable(what: str) -> None:
    """Skip, or fail where the services are required (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} (METADATA_TEST_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(what)


def run_coroutine(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run on a loop of its own in a thread: session fixtures may be set up while a test's
    loop is already running."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


def session_database_name() -> str:
    return f"metadata_test_{os.getpid()}"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="test")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _mysql_admin(sql: str) -> None:
    import aiomysql

    conn = await aiomysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", db="test")
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(sql)
        await conn.commit()
    finally:
        conn.close()


def create_postgres_database() -> str:
    if not port_open(PG_HOST, PG_PORT):
        unavailable(f"PostgreSQL is not answering on {PG_HOST}:{PG_PORT}")
    name = session_database_name()
    run_coroutine(_pg_admin(f'DROP DATABASE IF EXISTS "{name}"'))
    run_coroutine(_pg_admin(f'CREATE DATABASE "{name}"'))
    return f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"


def drop_postgres_database() -> None:
    run_coroutine(_pg_admin(f'DROP DATABASE IF EXISTS "{session_database_name()}" WITH (FORCE)'))


def create_mysql_database() -> str:
    if not port_open(MYSQL_HOST, MYSQL_PORT):
        unavailable(f"MariaDB/MySQL is not answering on {MYSQL_HOST}:{MYSQL_PORT}")
    name = session_database_name()
    run_coroutine(_mysql_admin(f"DROP DATABASE IF EXISTS `{name}`"))
    run_coroutine(_mysql_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    return f"mysql+aiomysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{name}?charset=utf8mb4"


def drop_mysql_database() -> None:
    run_coroutine(_mysql_admin(f"DROP DATABASE IF EXISTS `{session_database_name()}`"))


def require_redis() -> str:
    if not port_open(REDIS_HOST, REDIS_PORT):
        unavailable(f"Redis is not answering on {REDIS_HOST}:{REDIS_PORT}")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def flush_redis(db: int) -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    try:
        client.flushdb()
    finally:
        client.close()
