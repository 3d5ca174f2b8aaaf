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


async def import_file(settings: Settings, path: str, batch_size: int = 1000,
                      progress: bool = True) -> int:  # fmt: skip
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


async def _write_all(settings: Settings, handle: IO[bytes], batch_size: int,
                     bar: Progress) -> int:  # fmt: skip
    db = Database(settings.database_url)
    try:
        await upgrade(db.writer)
        count = consumed = 0
        batch: dict[str, InstanceDocument] = {}
        for _, raw, consumed in _documents(handle):
            doc = parse_document(raw, user_data_max_bytes=settings.user_data_max_bytes)
            if doc.core.uuid in batch:
                # A later duplicate wins, as a second PUT would: written in a later batch.
                await write_batch(db, list(batch.values()))
                count += len(batch)
                batch.clear()
            batch[doc.core.uuid] = doc
            if len(batch) >= batch_size:
                await write_batch(db, list(batch.values()))
                count += len(batch)
                batch.clear()
                bar.update(consumed, count)
        if batch:
            await write_batch(db, list(batch.values()))
            count += len(batch)
        bar.update(consumed, count, final=True)
        return count
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
        await upgrade(db.writer)  # an empty database exports nothing, not a traceback
        out: IO[bytes] = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: ASYNC230, SIM115
        with out:
            async for page in _pages(db):
                for doc in page:
                    out.write(orjson.dumps(document_to_json(doc)) + b"\n")
        return 0
    finally:
        await db.dispose()
