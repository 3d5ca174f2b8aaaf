"""How to read SQLite from the event loop: cold single-row reads per second, four ways.

    python -m loadtests.sqlite_reads [--instances 10000] [--seconds 3] [--concurrency 16]

Seeds a SQLite database (WAL mode, as the service opens it), then reads one instance's
core row and its keys (a cold leaf's statement: the indexed instance row plus one JSON
aggregate of a child table) for distinct instances, `--concurrency` readers at once, each
way for `--seconds`:
- sqlalchemy+aiosqlite: the service's reader engine (a thread per connection, a queue hop
  per call, SQLAlchemy's async adaptation on top);
- aiosqlite: one aiosqlite connection, no SQLAlchemy;
- reader threads: a pool of threads, each with its own sqlite3 connection, via
  `run_in_executor`;
- inline: sqlite3 on the event loop's own thread (a primary-key probe does not wait on
  writers under WAL).
Reads go to loopback files only and every run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiosqlite
from sqlalchemy import create_engine, select
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.pool import StaticPool

from loadtests.seed import instance_uuid, seed
from metadata.store import schema as t
from metadata.store.bundle import json_rows
from metadata.store.engine import Database

Read = Callable[[str], Awaitable[Any]]


def statement() -> str:
    """The SQL of a cold leaf's read: core columns and the keys, one `?` parameter."""
    k = t.keys
    keys = (
        select(json_rows(k.c.position, k.c.name, k.c.type, k.c.data))
        .where(k.c.instance_uuid == t.instances.c.uuid)
        .scalar_subquery()
        .label("keys")
    )
    columns = [c for c in t.instances.c if c.name not in ("created_at", "updated_at")]
    query = select(*columns, keys).where(t.instances.c.uuid == "x")
    return str(query.compile(dialect=sqlite_dialect.dialect()))


async def drive(read: Read, instances: int, seconds: float, concurrency: int) -> float:
    """Reads per second: `concurrency` readers of distinct instances until the deadline."""
    done = 0
    deadline = time.monotonic() + seconds
    uuids = [instance_uuid(n) for n in range(instances)]

    async def reader(offset: int) -> None:
        nonlocal done
        i = offset
        while time.monotonic() < deadline:
            row = await read(uuids[i % instances])
            assert row is not None
            done += 1
            i += concurrency

    started = time.monotonic()
    await asyncio.gather(*(reader(i) for i in range(concurrency)))
    return done / (time.monotonic() - started)


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


async def with_sqlalchemy(path: str, sql: str, run: Callable[[Read], Awaitable[float]]) -> float:
    db = Database(f"sqlite+aiosqlite:///{path}")

    async def read(uuid: str) -> Any:
        async with db.read() as conn:
            return (await conn.exec_driver_sql(sql, (uuid,))).first()

    try:
        return await run(read)
    finally:
        await db.dispose()


async def with_aiosqlite(path: str, sql: str, run: Callable[[Read], Awaitable[float]]) -> float:
    async with aiosqlite.connect(path) as conn:

        async def read(uuid: str) -> Any:
            async with conn.execute(sql, (uuid,)) as cursor:
                return await cursor.fetchone()

        return await run(read)


async def with_threads(
    path: str, sql: str, run: Callable[[Read], Awaitable[float]], threads: int
) -> float:
    local = threading.local()

    def read_sync(uuid: str) -> Any:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = connect(path)
        return conn.execute(sql, (uuid,)).fetchone()

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(threads, thread_name_prefix="sqlite-reader") as pool:

        async def read(uuid: str) -> Any:
            return await loop.run_in_executor(pool, read_sync, uuid)

        return await run(read)


async def inline(path: str, sql: str, run: Callable[[Read], Awaitable[float]]) -> float:
    conn = connect(path)

    async def read(uuid: str) -> Any:
        return conn.execute(sql, (uuid,)).fetchone()

    try:
        return await run(read)
    finally:
        conn.close()


async def sqlalchemy_inline(path: str, sql: str, run: Callable[[Read], Awaitable[float]]) -> float:
    engine = create_engine(f"sqlite:///{path}", isolation_level="AUTOCOMMIT", poolclass=StaticPool)

    async def read(uuid: str) -> Any:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql, (uuid,)).first()

    try:
        return await run(read)
    finally:
        engine.dispose()


async def measure(args: argparse.Namespace, path: str) -> list[tuple[str, float]]:
    sql = statement()

    def run(read: Read) -> Awaitable[float]:
        return drive(read, args.instances, args.seconds, args.concurrency)

    return [
        ("sqlalchemy+aiosqlite", await with_sqlalchemy(path, sql, run)),
        ("aiosqlite", await with_aiosqlite(path, sql, run)),
        (f"{args.threads} reader threads", await with_threads(path, sql, run, args.threads)),
        ("inline sqlite3", await inline(path, sql, run)),
        ("inline sqlalchemy", await sqlalchemy_inline(path, sql, run)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sqlite-reads-") as workdir:
        path = f"{workdir}/reads.db"
        asyncio.run(seed(f"sqlite+aiosqlite:///{path}", args.instances, quiet=True))
        rows = asyncio.run(measure(args, path))
    base = rows[0][1]
    print(f"cold single-row reads, {args.instances:,} instances, {args.concurrency} at once")
    print(f"{'way':<24}{'reads/s':>10}{'vs now':>8}")
    for name, rate in rows:
        print(f"{name:<24}{rate:>10,.0f}{rate / base:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
