"""Seed N distinct instances fast, straight into the database (no HTTP).

    python -m loadtests.seed --count 10000 --database-url sqlite+aiosqlite:///bench.db
    python -m loadtests.seed --count 1000000 --database-url postgresql+asyncpg://... --copy

Each instance n has its own uuid and its own address (`instance_address(n)`), so a load
generator on a trusted proxy can speak for any of them with X-Forwarded-For, or sign
X-Instance-ID with the shared secret. Documents go through the same validation as an
import (`parse_document`); the rows are written with one multi-row INSERT per table per
batch (`metadata.importer.write_batch`), or on PostgreSQL with `--copy` through COPY
(binary, asyncpg's `copy_records_to_table`) into an empty database. Progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import subprocess
import sys
import time
import uuid as uuid_module
from collections.abc import Iterator
from typing import Any

import orjson

from metadata.admin.importer import time_now, write_batch
from metadata.document import parse_document
from metadata.records import InstanceDocument
from metadata.store import schema as t
from metadata.store.engine import Database
from metadata.store.migrate import upgrade
from metadata.store.writes import child_rows, instance_row, next_generation, user_data_row

NAMESPACE = uuid_module.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
PROJECTS = 50
HOSTS_PER_NET = 250  # .1 to .250: never the network or broadcast address


def instance_uuid(n: int) -> str:
    return str(uuid_module.uuid5(NAMESPACE, str(n)))


def instance_address(n: int) -> str:
    """A distinct 10.x.y.z address per n, for up to 16 million instances."""
    net, host = divmod(n, HOSTS_PER_NET)
    return f"10.{(net >> 8) & 255}.{net & 255}.{host + 1}"


def project_id(n: int) -> str:
    return f"project-{n % PROJECTS}"


def document(n: int) -> dict[str, Any]:
    """A realistic small instance: one key, one port with one address, user and vendor data."""
    address = instance_address(n)
    network = address.rsplit(".", 1)[0]
    return {
        "uuid": instance_uuid(n),
        "name": f"vm-{n}",
        "hostname": f"vm-{n}",
        "project_id": project_id(n),
        "user_id": "load",
        "availability_zone": "az1",
        "launch_index": 0,
        "image_id": "5d3c6a4e-8b1f-4f0e-9d3a-2b7c1e0f9a88",
        "flavor": {"name": "m1.small", "vcpus": 1, "ram_mb": 2048, "disk_gb": 20},
        "metadata": {"role": "load", "n": str(n)},
        "keys": [{"name": "k1", "type": "ssh", "data": f"ssh-ed25519 AAAAC3Nza{n} k1"}],
        "ports": [
            {
                "id": f"port-{n}",
                "mac": f"fa:16:3e:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}",
                "network_id": "net-1",
                "mtu": 1450,
                "fixed_ips": [
                    {
                        "address": address,
                        "cidr": f"{network}.0/24",
                        "gateway": f"{network}.254",
                        "dns": ["10.255.0.2"],
                    }
                ],
            }
        ],
        "user_data": base64.b64encode(f"#cloud-config\nhostname: vm-{n}\n".encode()).decode(),
        "vendor_data": {"cloud": "load"},
    }


def documents(start: int, count: int) -> Iterator[InstanceDocument]:
    for n in range(start, start + count):
        yield parse_document(document(n))


class Progress:
    """One line on stderr, redrawn at most once a second."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet = total, quiet
        self.started = self.drawn = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not final and now - self.drawn < 1.0):
            return
        self.drawn = now
        rate = done / max(now - self.started, 1e-9)
        print(
            f"\rseeded {done:,}/{self.total:,} instances, {rate:,.0f}/s, {now - self.started:.0f}s",
            end="\n" if final else "",
            file=sys.stderr,
            flush=True,
        )


# Column order of each table, for COPY.
COPY_TABLES = (
    t.instances,
    t.metadata_items,
    t.keys,
    t.ports,
    t.fixed_ips,
    t.user_data,
    t.vendor_data,
)


def copy_records(docs: list[InstanceDocument]) -> dict[str, list[tuple[Any, ...]]]:
    """Rows per table as tuples in column order; JSON columns as JSON text."""
    now = time_now()
    rows: dict[Any, list[dict[str, Any]]] = {table: [] for table in COPY_TABLES}
    for doc in docs:
        rows[t.instances].append(
            {**instance_row(doc, next_generation(None)), "created_at": now, "updated_at": now}
        )
        for table, table_rows in child_rows(doc).items():
            rows[table].extend(table_rows)
        if doc.user_data is not None and doc.user_data.data is not None:
            rows[t.user_data].append(user_data_row(doc.core.uuid, doc.user_data.data))
    records: dict[str, list[tuple[Any, ...]]] = {}
    for table, table_rows in rows.items():
        json_columns = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
        names = [c.name for c in table.columns]
        records[table.name] = [
            tuple(
                orjson.dumps(row.get(n)).decode() if n in json_columns else row.get(n)
                for n in names
            )
            for row in table_rows
        ]
    return records


async def copy_batch(db: Database, docs: list[InstanceDocument]) -> None:
    """One COPY per table, in one transaction (PostgreSQL only, into an empty database)."""
    records = copy_records(docs)
    async with db.transaction() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        for table in COPY_TABLES:
            if records[table.name]:
                await driver.copy_records_to_table(
                    table.name,
                    records=records[table.name],
                    columns=[c.name for c in table.columns],
                )


async def seed(
    database_url: str,
    count: int,
    start: int = 0,
    batch_size: int = 1000,
    use_copy: bool = False,
    quiet: bool = False,
) -> float:
    """Create instances start..start+count-1; returns the seconds it took."""
    if use_copy and not database_url.startswith("postgresql"):
        raise SystemExit("--copy needs a PostgreSQL database_url")
    db = Database(database_url)
    progress = Progress(count, quiet)
    try:
        await upgrade(db.writer)
        write = copy_batch if use_copy else write_batch
        batch: list[InstanceDocument] = []
        done = 0
        for doc in documents(start, count):
            batch.append(doc)
            if len(batch) >= batch_size:
                await write(db, batch)
                done += len(batch)
                batch = []
                progress.update(done)
        if batch:
            await write(db, batch)
            done += len(batch)
        progress.update(done, final=True)
        if database_url.startswith("postgresql") and count:
            # Planner statistics now, not when autovacuum gets round to it: without them a
            # cold read of a freshly bulk-loaded table took seconds (a poor plan).
            async with db.transaction() as conn:
                await conn.exec_driver_sql("ANALYZE")
    finally:
        await db.dispose()
    return time.monotonic() - progress.started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.seed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--start", type=int, default=0, help="number of the first instance")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--copy", action="store_true", help="PostgreSQL COPY (empty database)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="seed in this many processes, each its own range (PostgreSQL)",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.jobs > 1:
        return seed_in_parallel(args)
    seconds = asyncio.run(
        seed(args.database_url, args.count, args.start, args.batch_size, args.copy, args.quiet)
    )
    print(f"seeded {args.count:,} instances in {seconds:.1f}s", file=sys.stderr)
    return 0


def seed_in_parallel(args: argparse.Namespace) -> int:
    """Split the range over `--jobs` processes: the client's Python work (building rows)
    and the server's (COPY, indexes) then use every core."""
    started = time.monotonic()
    asyncio.run(seed(args.database_url, 0, quiet=True))  # migrate once, before the jobs
    share = -(-args.count // args.jobs)
    jobs = []
    for job in range(args.jobs):
        first = args.start + job * share
        count = min(share, args.start + args.count - first)
        if count <= 0:
            break
        command = [
            sys.executable,
            "-m",
            "loadtests.seed",
            "--database-url",
            args.database_url,
            "--start",
            str(first),
            "--count",
            str(count),
            "--batch-size",
            str(args.batch_size),
        ]
        command += ["--copy"] if args.copy else []
        command += ["--quiet"] if args.quiet or job else []  # one progress line, job 0's
        jobs.append(subprocess.Popen(command))
    failed = sum(1 for job in jobs if job.wait() != 0)
    print(
        f"seeded {args.count:,} instances with {len(jobs)} jobs in "
        f"{time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
