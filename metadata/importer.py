"""Bulk import and export of instance documents (JSON array or JSON lines).

Import validates every document first, then writes batches with one multi-row INSERT per
table per batch, each batch one transaction; a bad document stops the import before its
batch is written and names its line.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

import orjson
from sqlalchemy import Table, delete, insert

from metadata.config import Settings
from metadata.document import document_to_json, parse_document
from metadata.errors import InvalidDocument
from metadata.records import InstanceDocument
from metadata.store import schema as t
from metadata.store.engine import Database
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


async def write_batch(db: Database, docs: list[InstanceDocument]) -> None:
    """Replace these instances in one transaction with one INSERT per table."""
    uuids = [d.core.uuid for d in docs]
    rows: dict[Table, list[dict[str, Any]]] = {table: [] for table in t.CHILD_TABLES}
    instances = []
    now = time_now()
    for doc in docs:
        instances.append({**instance_row(doc, next_generation(None)),
                          "created_at": now, "updated_at": now})  # fmt: skip
        for table, table_rows in child_rows(doc).items():
            rows[table].extend(table_rows)
        if doc.user_data is not None and doc.user_data.data is not None:
            rows[t.user_data].append(user_data_row(doc.core.uuid, doc.user_data.data))
    async with db.transaction() as conn:
        for table in t.CHILD_TABLES:
            await conn.execute(delete(table).where(table.c.instance_uuid.in_(uuids)))
        await conn.execute(delete(t.instances).where(t.instances.c.uuid.in_(uuids)))
        await conn.execute(insert(t.instances), instances)
        for table in (t.metadata_items, t.keys, t.ports, t.fixed_ips, t.user_data,
                      t.vendor_data):  # fmt: skip
            if rows[table]:
                await conn.execute(insert(table), rows[table])


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def import_file(settings: Settings, path: str, batch_size: int = 1000,
                      progress: bool = True) -> int:  # fmt: skip
    db = Database(settings.database_url)
    try:
        await upgrade(db.writer)
        handle: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: ASYNC230, SIM115
        total = None if path == "-" else os.stat(path).st_size
        bar = Progress(total, progress)
        count = 0
        batch: dict[str, InstanceDocument] = {}
        consumed = 0
        with handle:
            for number, raw, consumed in _documents(handle):
                try:
                    doc = parse_document(raw, user_data_max_bytes=settings.user_data_max_bytes)
                except InvalidDocument as exc:
                    print(f"\nmetadata: document {number}: {exc}", file=sys.stderr)
                    print(f"imported {count} instances before it", file=sys.stderr)
                    return 1
                batch[doc.core.uuid] = doc  # a later duplicate wins, as a second PUT would
                if len(batch) >= batch_size:
                    await write_batch(db, list(batch.values()))
                    count += len(batch)
                    batch.clear()
                    bar.update(consumed, count)
            if batch:
                await write_batch(db, list(batch.values()))
                count += len(batch)
        bar.update(consumed, count, final=True)
        print(f"imported {count} instances", file=sys.stderr)
        return 0
    finally:
        await db.dispose()


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
        out: IO[bytes] = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: ASYNC230, SIM115
        with out:
            async for page in _pages(db):
                for doc in page:
                    out.write(orjson.dumps(document_to_json(doc)) + b"\n")
        return 0
    finally:
        await db.dispose()
