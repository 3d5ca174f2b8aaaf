"""Bulk import and export of instance documents (JSON array or JSON lines).

Import validates every document of the file first (a bad one names its number and field,
and nothing is written), then writes batches with one multi-row INSERT per table per batch,
each batch one transaction. Only a database failure midway can leave the earlier batches
written; re-running the import is safe, as each document replaces its instance.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

import orjson
from sqlalchemy import Table, bindparam, delete, insert, select, update

from metadata.coherence import RedisCoherence
from metadata.config import Settings
from metadata.document import document_to_json, parse_document
from metadata.errors import InvalidDocument
from metadata.records import InstanceDocument
from metadata.store import schema as t
from metadata.store.engine import Database
from metadata.store.events import WriteEvent
from metadata.store.migrate import upgrade
from metadata.store.reads import list_instance_uuids, load_documents
from metadata.store.writes import child_rows, instance_row, next_generation, user_data_row


class Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total_bytes: int | None, enabled: bool) -> None:
        self.total = total_bytes
        self.enabled = (enabled and sys.stderr.isatty()) or (enabled and bool(total_bytes))
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, done_bytes: int, count: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._drawn < 0.1):
            return
        self._drawn = now
        rate = count / max(now - self.started, 1e-9)
        if self.total:
            share = min(done_bytes / self.total, 1.0)
            bar = "#" * int(share * 30)
            line = f"[{bar:<30}] {share:6.1%} {count} instances, {rate:,.0f}/s"
        else:
            line = f"{count} instances, {rate:,.0f}/s"
        print("\r" + line, end="\n" if final else "", file=sys.stderr, flush=True)


def _documents(handle: IO[bytes]) -> Iterator[tuple[int, Any, int]]:
    """(line number, raw document, bytes consumed so far) from a JSON array or JSON lines."""
    first = handle.read(1)
    while first.isspace():
        first = handle.read(1)
    if first == b"[":
        data = first + handle.read()
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidDocument("file", f"not valid JSON: {exc}") from None
        for index, item in enumerate(items):
            yield index + 1, item, len(data) * (index + 1) // max(len(items), 1)
        return
    consumed = len(first)
    for number, line in enumerate(_prefixed(first, handle), start=1):
        consumed += len(line)
        if line.strip():
            try:
                yield number, orjson.loads(line), consumed
            except orjson.JSONDecodeError as exc:
                raise InvalidDocument(f"line {number}", f"not valid JSON: {exc}") from None


def _prefixed(first: bytes, handle: IO[bytes]) -> Iterator[bytes]:
    rest = handle.readline()
    yield first + rest
    yield from handle


async def write_batch(db: Database, docs: list[InstanceDocument]) -> list[WriteEvent]:
    """Create or replace these instances in one transaction, with one statement per table,
    as a PUT of each would: the guest's password is kept, and so is user data where the
    document has no `user_data` field. Returns what running caches must learn."""
    uuids = [d.core.uuid for d in docs]
    rows: dict[Table, list[dict[str, Any]]] = {table: [] for table in t.CHILD_TABLES}
    replaced_user_data = [d.core.uuid for d in docs if d.user_data is not None]
    now = time_now()
    async with db.transaction() as conn:
        previous = dict(
            (
                await conn.execute(
                    select(t.instances.c.uuid, t.instances.c.generation)
                    .where(t.instances.c.uuid.in_(uuids))
                    .with_for_update()
                )
            ).all()
        )
        addresses: dict[str, set[str]] = {uuid: set() for uuid in uuids}
        for uuid, address in await conn.execute(
            select(t.fixed_ips.c.instance_uuid, t.fixed_ips.c.address).where(
                t.fixed_ips.c.instance_uuid.in_(uuids)
            )
        ):
            addresses[uuid].add(address)
        created, replaced, events = [], [], []
        for doc in docs:
            uuid = doc.core.uuid
            generation = next_generation(previous.get(uuid))
            row = {**instance_row(doc, generation), "updated_at": now}
            if uuid in previous:
                # bound parameters may not share a column's name in an UPDATE's SET
                replaced.append({"match_uuid": uuid, **{f"new_{k}": v for k, v in row.items()}})
            else:
                created.append({**row, "created_at": now})
            for table, table_rows in child_rows(doc).items():
                rows[table].extend(table_rows)
            if doc.user_data is not None and doc.user_data.data is not None:
                rows[t.user_data].append(user_data_row(uuid, doc.user_data.data))
            addresses[uuid] |= {ip.address for p in doc.network.ports for ip in p.fixed_ips}
            events.append(WriteEvent(uuid, generation, frozenset(addresses[uuid])))
        for table in (t.metadata_items, t.keys, t.fixed_ips, t.ports, t.vendor_data):
            await conn.execute(delete(table).where(table.c.instance_uuid.in_(uuids)))
        if replaced_user_data:
            await conn.execute(
                delete(t.user_data).where(t.user_data.c.instance_uuid.in_(replaced_user_data))
            )
        if created:
            await conn.execute(insert(t.instances), created)
        if replaced:
            columns = [k.removeprefix("new_") for k in replaced[0] if k != "match_uuid"]
            await conn.execute(
                update(t.instances)
                .where(t.instances.c.uuid == bindparam("match_uuid"))
                .values({c: bindparam(f"new_{c}") for c in columns}),
                replaced,
            )
        for table in (t.metadata_items, t.keys, t.ports, t.fixed_ips, t.user_data, t.vendor_data):
            if rows[table]:
                await conn.execute(insert(table), rows[table])
    return events


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _open(path: str) -> IO[bytes]:
    """The file; standard input is spooled to a temporary file so it can be read twice."""
    if path != "-":
        return open(path, "rb")
    spool = tempfile.TemporaryFile()  # noqa: SIM115
    shutil.copyfileobj(sys.stdin.buffer, spool)
    spool.seek(0)
    return spool


def _size(handle: IO[bytes]) -> int:
    return os.fstat(handle.fileno()).st_size


def validate(handle: IO[bytes], user_data_max_bytes: int) -> str | None:
    """What is wrong with the first bad document, or None: nothing is written until every
    document of the file has passed."""
    documents = _documents(handle)
    while True:
        try:
            number, raw, _ = next(documents)
        except StopIteration:
            return None
        except InvalidDocument as exc:  # not JSON: the message names the line or the file
            return str(exc)
        try:
            parse_document(raw, user_data_max_bytes=user_data_max_bytes)
        except InvalidDocument as exc:
            return f"document {number}: {exc}"


async def import_file(
    settings: Settings, path: str, batch_size: int = 1000, progress: bool = True
) -> int:
    """Validate the whole file, then write it in batches; 0 on success, 1 on a bad file."""
    if batch_size < 1:
        print("metadata: --batch-size must be at least 1", file=sys.stderr)
        return 2
    try:
        handle = _open(path)
    except OSError as exc:
        print(f"metadata: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    with handle:
        problem = validate(handle, settings.user_data_max_bytes)
        if problem is not None:
            print(f"metadata: {problem}", file=sys.stderr)
            print("nothing was imported", file=sys.stderr)
            return 1
        handle.seek(0)
        count = await _write_all(settings, handle, batch_size, Progress(_size(handle), progress))
    print(f"imported {count} instances", file=sys.stderr)
    return 0


async def _write_all(settings: Settings, handle: IO[bytes], batch_size: int, bar: Progress) -> int:
    db = Database(settings.database_url)
    announcer = Announcer(settings.cache_url, settings.cache_ttl)
    count = consumed = 0
    batch: dict[str, InstanceDocument] = {}

    async def flush() -> None:
        nonlocal count
        await announcer.announce(await write_batch(db, list(batch.values())))
        count += len(batch)
        batch.clear()

    try:
        await upgrade(db.writer)
        for _, raw, consumed in _documents(handle):
            doc = parse_document(raw, user_data_max_bytes=settings.user_data_max_bytes)
            if doc.core.uuid in batch:
                # A later duplicate wins, as a second PUT would: written in a later batch.
                await flush()
            batch[doc.core.uuid] = doc
            if len(batch) >= batch_size:
                await flush()
                bar.update(consumed, count)
        if batch:
            await flush()
        bar.update(consumed, count, final=True)
        return count
    finally:
        await announcer.close()
        await db.dispose()


class Announcer:
    """Tells running servers what an import wrote, as their own write path would: through
    Redis when the cache is shared. With the in-process cache there is nobody to tell: the
    servers see imported changes to instances they had cached within the cache TTL."""

    def __init__(self, cache_url: str, ttl: int) -> None:
        self._coherence: RedisCoherence | None = None
        self._client: Any = None
        if cache_url.startswith(("redis://", "rediss://")):
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(cache_url)
            self._coherence = RedisCoherence(self._client, ttl, max_entries=1)

    async def announce(self, events: list[WriteEvent]) -> None:
        if self._coherence is not None:
            for event in events:
                await self._coherence.written(event)

    async def close(self) -> None:
        if self._coherence is not None:
            await self._coherence.close()
            await self._client.aclose()


async def _pages(db: Database, size: int = 500) -> AsyncIterator[list[InstanceDocument]]:
    marker = None
    while True:
        async with db.read() as conn:
            uuids = await list_instance_uuids(conn, size, marker)
            if not uuids:
                return
            yield await load_documents(conn, uuids)
        marker = uuids[-1]


async def export_file(settings: Settings, output: str) -> int:
    db = Database(settings.database_url)
    try:
        await upgrade(db.writer)  # an empty database exports nothing, not a traceback
        out: IO[bytes] = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: ASYNC230, SIM115
        with out:
            async for page in _pages(db):
                for doc in page:
                    out.write(orjson.dumps(document_to_json(doc)) + b"\n")
        return 0
    finally:
        await db.dispose()
