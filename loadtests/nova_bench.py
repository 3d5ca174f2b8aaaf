"""Ours against Nova's own metadata app, on the same instances, in one run.

    python -m loadtests.nova_bench                  # 24,025 instances, 6 s a scenario and side
    python -m loadtests.nova_bench --quick          # a tiny run (tests): no figures to keep
    python -m loadtests.nova_bench --no-nova-mode   # without ours in Nova mode
    python -m loadtests.nova_bench --ours-database postgresql   # store mode on PostgreSQL

Sets up a Nova 34.0.0 cloud with the peer harness (`loadtests/nova_peer/`, MariaDB), where
Nova's own objects make six instances; `web-1` (user data, metadata, a key pair, a port
with a floating IP) is then cloned by SQL with new uuids inside the cloud's own databases
(`loadtests/nova_peer/clone.py`), so that every scenario has fresh instances. The same
instances (same uuids, project, hostname, user data, metadata, key, address) are imported
into our service (store mode, SQLite or `--ours-database postgresql`, `metadata instances
import`). Then it starts Nova's
app (gunicorn, one sync worker, its default 15 s cache), ours (one process, memory://) and
the bare aiohttp floor (`loadtests/floor.py`), and runs each scenario against each:

- warm leaf: `GET /latest/meta-data/instance-id`, signed headers rotating over a few
  instances asked once before (inside Nova's cache), wrk -c16;
- cold leaf: every request a new instance (wrk walks a list of instances once);
- boots side by side / overlapping: cloud-init's OpenStack boot (`loadtests/storm.py`) by
  new instances, 16 connections, driven by a raw Protocol client (`loadtests/wire.py`);
  the same storm on the floor is the driver's own ceiling.
With the Nova source (`metadata/nova/`), a third side runs the same scenarios: ours in Nova
mode (`metadata serve --nova-config`) on the cloud's own databases, as a SELECT-only MariaDB
user of its own (`nova_peer/grants.py`), so that its statements are counted apart.
Identity is Neutron's signed headers for both (one shared secret). Statements per request
are Nova's MariaDB user's (`information_schema.USER_STATISTICS`) and our server's own
counters (admin `/v1/stats/paths`). Every scenario is bounded by `--seconds` and by its
instances; traffic goes to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from loadtests import storm, wire
from loadtests.bench import (
    LEAF,
    Limits,
    Result,
    drive_sequences,
    measured,
    run_floor,
    run_server,
    run_wrk,
    wrk_available,
)
from loadtests.cloud_init import DATED_BOOT as BOOT
from loadtests.nova_peer.app import start_nova_metadata
from loadtests.nova_peer.clone import clone_instance, clone_uuids
from loadtests.nova_peer.cloud import NovaCloud, create_nova_cloud
from loadtests.nova_peer.databases import mysql_reachable
from loadtests.nova_peer.grants import (
    grant_read_only_user,
    read_only_nova_conf,
    template_cell_mappings,
)
from loadtests.nova_peer.instances import SeededInstance
from loadtests.nova_peer.statements import StatementCounter
from loadtests.scratch_database import KINDS, scratch_database
from loadtests.seed import instance_address
from metadata.guest.identify import sign

MODEL = "web-1"
# Without Neutron, Nova mode leaves security-groups out of the EC2 listing (README, "Running
# in front of Nova"), so cloud-init's crawl, which follows the listing, does not ask it.
NOVA_MODE_BOOT = tuple(path for path in BOOT if not path.endswith("/security-groups"))
DATABASE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
LEARNING_BOOTS = 5  # boots before the storms, which teach our prefetch planner the sequence
KEY_DATA = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBlZXJwZWVycGVlcnBlZXJwZWVycGVlcnBlZXI alpha@cloud.test"
)


@dataclass
class Row:
    """One scenario on each side: rate (requests or boots a second), latency, statements."""

    scenario: str
    unit: str  # "req" or "boot"
    ours: Result
    nova: Result
    floor: Result | None = None

    def per_unit(self, result: Result) -> str:
        count = result.instances if self.unit == "boot" else result.hits
        if result.statements is None or not count:
            return "-"
        return f"{result.statements / count:.2f}"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = (
            f"{'scenario':<32}{'unit':>7}{'ours':>9}{'p50 ms':>8}{'p99 ms':>9}{'SQL':>6}"
            f"{'nova':>8}{'p50 ms':>8}{'p99 ms':>9}{'SQL':>6}{'ours/nova':>10}"
            f"{'floor':>8}{'ours/floor':>11}{'errors':>7}"
        )
        out = [head, "-" * len(head)]
        for row in self.rows:
            o, n, f = row.ours, row.nova, row.floor
            ratio = f"{o.rate / n.rate:.1f}x" if n.rate else "-"
            floor_rate = f"{f.rate:,.0f}" if f else "-"
            floor_ratio = f"{o.rate / f.rate:.2f}" if f and f.rate else "-"
            out.append(
                f"{row.scenario:<32}{row.unit + '/s':>7}{o.rate:>9,.0f}{o.p50_ms:>8.1f}"
                f"{o.p99_ms:>9.1f}{row.per_unit(o):>6}{n.rate:>8,.0f}{n.p50_ms:>8.1f}"
                f"{n.p99_ms:>9.1f}{row.per_unit(n):>6}{ratio:>10}{floor_rate:>8}"
                f"{floor_ratio:>11}{o.errors + n.errors + (f.errors if f else 0):>7}"
            )
        return out + self.notes


@dataclass(frozen=True)
class Instances:
    """The clones, split so that each scenario on each server meets instances new to it
    (the servers' caches are their own: both sides use the same split)."""

    uuids: list[str]
    project: str
    secret: str
    warm: range
    learning: range
    cold: range
    side_by_side: range
    overlapping: range

    @classmethod
    def split(
        cls, uuids: list[str], project: str, secret: str, args: argparse.Namespace
    ) -> Instances:
        sizes = (
            args.warm,
            LEARNING_BOOTS,
            args.cold_instances,
            args.boot_instances,
            args.boot_instances,
        )
        ends = list(itertools.accumulate(sizes))
        ranges = [range(end - size, end) for size, end in zip(sizes, ends, strict=True)]
        return cls(uuids, project, secret, *ranges)

    @staticmethod
    def needed(args: argparse.Namespace) -> int:
        return int(args.warm + LEARNING_BOOTS + args.cold_instances + 2 * args.boot_instances)

    def headers(self, n: int) -> dict[str, str]:
        uuid = self.uuids[n]
        return {
            "X-Instance-ID": uuid,
            "X-Tenant-ID": self.project,
            "X-Instance-ID-Signature": sign(self.secret, uuid),
        }

    def wrk_file(self, numbers: range, folder: Path, name: str) -> Path:
        path = folder / name
        path.write_text(
            "".join(
                f"{h['X-Instance-ID']} {h['X-Tenant-ID']} {h['X-Instance-ID-Signature']}\n"
                for h in map(self.headers, numbers)
            )
        )
        return path


def our_document(model: SeededInstance, uuid: str, n: int) -> dict[str, object]:
    """The model instance as our instance document, under the clone's uuid; its fixed
    address is made unique (identity here is signed headers, not the address)."""
    import base64

    return {
        "uuid": uuid,
        "name": model.name,
        "hostname": model.hostname,
        "project_id": model.project_id,
        "user_id": model.user_id,
        "availability_zone": model.availability_zone or "nova",
        "metadata": model.metadata,
        "keys": [{"name": name, "type": "ssh", "data": KEY_DATA} for name in model.key_names],
        "security_groups": list(model.security_groups),
        "ports": [
            {
                "id": f"port-{n}",
                "mac": f"fa:16:3e:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}",
                "network_id": "net-private",
                "mtu": 1500,
                "fixed_ips": [
                    {
                        "address": instance_address(n),
                        "cidr": "10.0.0.0/8",
                        "gateway": "10.0.0.1",
                        "dns": ["10.0.0.2"],
                    }
                ],
                "floating_ips": list(model.floating_addresses),
            }
        ],
        "user_data": base64.b64encode(model.user_data).decode() if model.user_data else None,
    }


def import_ours(model: SeededInstance, uuids: Sequence[str], url: str, folder: Path) -> None:
    source = folder / "instances.jsonl"
    with source.open("wb") as out:
        for n, uuid in enumerate(uuids):
            out.write(orjson.dumps(our_document(model, uuid, n)) + b"\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "metadata",
            "instances",
            "import",
            str(source),
            "--database-url",
            url,
            "--quiet",
        ],
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
    )


async def warm_up(url: str, instances: Instances, numbers: range) -> None:
    async with aiohttp.ClientSession() as session:
        for n in numbers:
            await (await session.get(url + LEAF, headers=instances.headers(n))).read()


async def learn(url: str, instances: Instances, boot: Sequence[str]) -> dict[str, int]:
    """Whole boots one after another (our planner learns the sequence from them); the
    paths that did not answer 200, with their status."""
    failed: dict[str, int] = {}
    async with aiohttp.ClientSession() as session:
        for n in instances.learning:
            for path in boot:
                async with session.get(url + path, headers=instances.headers(n)) as answer:
                    await answer.read()
                    if answer.status != 200:
                        failed[path] = answer.status
    return failed


class Side:
    """One server, how its statements are counted, and the boot its guests walk."""

    def __init__(
        self,
        url: str,
        admin: str | None,
        counter: StatementCounter | None,
        boot: Sequence[str] = BOOT,
    ) -> None:
        self.url, self.admin, self.counter, self.boot = url, admin, counter, boot

    async def counted(self, run: Callable[[], object]) -> Result:
        if self.counter is None:
            return await measured(self.admin, run)
        self.counter.reset()
        result: Result = await run()  # type: ignore[misc]
        result.statements = self.counter.delta().statements
        return result


async def leaf_run(
    side: Side,
    instances: Instances,
    numbers: range,
    args: argparse.Namespace,
    folder: Path,
    once: bool,
) -> Result:
    limits = Limits(args.seconds, len(numbers) if once else 1_000_000, args.connections)
    if wrk_available(args.wrk):
        signed = instances.wrk_file(numbers, folder, "once.txt" if once else "warm.txt")
        env = {"WRK_PATH": LEAF, "WRK_SIGNED": str(signed)}
        script = "once.lua" if once else "signed.lua"
        result = await side.counted(
            lambda: asyncio.to_thread(run_wrk, side.url, script, limits, env)
        )
        result.hits = result.hits if result.hits is not None else result.requests
        return result
    guests: Iterator[int] = iter(numbers) if once else itertools.cycle(numbers)
    paths = [LEAF] if once else [LEAF] * 100
    result = await side.counted(
        lambda: drive_sequences(side.url, guests, paths, limits, instances.headers)
    )
    result.hits = result.hits if result.hits is not None else result.requests
    return result


async def boot_run(
    side: Side, instances: Instances, pattern: str, numbers: range, args: argparse.Namespace
) -> Result:
    async def run() -> Result:
        done = await storm.DRIVERS[pattern](
            side.url, iter(numbers), side.boot, instances.headers, args.connections, args.seconds
        )
        return Result(
            requests=done.boots,
            seconds=done.seconds,
            p50_ms=done.percentile_ms(0.5),
            p99_ms=done.percentile_ms(0.99),
            errors=done.errors,
            instances=done.boots,
            driver="wire",
        )

    return await side.counted(run)


async def scenarios(
    sides: dict[str, Side],
    floor: str | None,
    instances: Instances,
    args: argparse.Namespace,
    folder: Path,
    report: Report,
) -> None:
    """Each scenario on every side in turn; `sides` has "nova" and ours ("ours", and
    "Nova mode": ours reading Nova's databases)."""
    results: dict[str, dict[str, Result]] = {name: {} for name in sides}
    for name, side in sides.items():  # each warmed just before its run: inside Nova's cache
        await warm_up(side.url, instances, instances.warm)
        results[name]["warm leaf"] = await leaf_run(
            side, instances, instances.warm, args, folder, once=False
        )
    floor_side = Side(floor, None, None) if floor else None
    floors: dict[str, Result] = {}
    if floor_side:
        floors["warm leaf"] = await leaf_run(
            floor_side, instances, instances.warm, args, folder, False
        )
    for name, side in sides.items():
        cold = await leaf_run(side, instances, instances.cold, args, folder, once=True)
        results[name]["cold leaf"] = cold
        if cold_ran_out(cold, instances):
            report.notes.append(
                f"cold leaf, {name}: all {len(instances.cold):,} instances asked before the "
                f"end ({cold.requests:,} requests): its rate is a lower bound "
                "(raise --cold-instances)"
            )
        failed = await learn(side.url, instances, side.boot)
        if failed:
            report.notes.append(f"boot paths not answered 200 by {name}: {failed}")
    for pattern, numbers in zip(
        storm.PATTERNS, (instances.side_by_side, instances.overlapping), strict=True
    ):
        for name, side in sides.items():
            results[name][f"boot, {pattern}"] = await boot_run(
                side, instances, pattern, numbers, args
            )
        if floor_side:  # the driver's own ceiling, on the same guests and paths
            floors[f"boot, {pattern}"] = await boot_run(
                floor_side, instances, pattern, numbers, args
            )
    nova = results.pop("nova")
    for name, ours in results.items():
        suffix = "" if name == "ours" else f" ({name})"
        for scenario, result in ours.items():
            unit = "boot" if scenario.startswith("boot") else "req"
            row = Row(scenario + suffix, unit, result, nova[scenario], floors.get(scenario))
            report.rows.append(row)


def nova_mode_conf(cloud: NovaCloud, folder: Path) -> tuple[Path, str]:
    """A nova.conf for ours in Nova mode, connecting as a SELECT-only user of its own (so
    MariaDB counts its statements apart from Nova's); the user's name."""
    template_cell_mappings(cloud)
    user, _, urls = grant_read_only_user(cloud)
    return read_only_nova_conf(cloud, urls, folder), user


def cold_ran_out(result: Result, instances: Instances) -> bool:
    """wrk (once.lua) stops asking when its list is used up, but runs to its duration."""
    return result.driver == "wrk" and result.requests >= len(instances.cold)


def run(args: argparse.Namespace) -> Report:
    started = time.monotonic()
    report = Report()
    with (
        tempfile.TemporaryDirectory(prefix="metadata-nova-bench-") as workdir,
        create_nova_cloud("mysql") as cloud,
        contextlib.ExitStack() as stack_url,
    ):
        folder = Path(workdir)
        made_in = time.monotonic() - started
        model = cloud.instance(MODEL)
        uuids = clone_uuids(model.uuid, Instances.needed(args))
        clone_instance(cloud, model.uuid, uuids)
        cloned_in = time.monotonic() - started - made_in
        url = stack_url.enter_context(scratch_database(args.ours_database, workdir, "ours"))
        import_ours(model, uuids, url, folder)
        imported_in = time.monotonic() - started - made_in - cloned_in
        instances = Instances.split(uuids, model.project_id, cloud.shared_secret, args)
        report.notes.append(
            f"{len(uuids):,} clones of {MODEL} (warm {len(instances.warm)}, cold "
            f"{len(instances.cold)}, side by side {len(instances.side_by_side)}, overlapping "
            f"{len(instances.overlapping)}); cloud {made_in:.0f}s, clone {cloned_in:.1f}s, "
            f"our import {imported_in:.1f}s; a boot: {len(BOOT)} requests (DATED_BOOT); "
            f"{args.connections} connections, signed headers, "
            f"each scenario up to {args.seconds:g}s; {driver(args)}"
        )
        nova_mode = nova_mode_conf(cloud, folder) if args.nova_mode else None
        assert cloud.nova_user
        counter = StatementCounter(cloud.nova_user)
        extra = {"METADATA_PROXY_SHARED_SECRET": cloud.shared_secret}
        with contextlib.ExitStack() as stack:
            # Nova's app imports Nova for seconds: it starts while ours do.
            starting = stack.enter_context(ThreadPoolExecutor(1)).submit(start_nova_metadata, cloud)
            server = stack.enter_context(run_server(url, "memory://", 1, workdir, extra))
            floor = stack.enter_context(run_floor()) if args.floor else None
            sides = {
                "ours": Side(server.guest, server.admin, None),
            }
            if nova_mode:
                config, reader = nova_mode
                overlay = f"sqlite+aiosqlite:///{workdir}/overlay.db"
                env = {**extra, "METADATA_NOVA_CONFIG": str(config)}
                mine = stack.enter_context(run_server(overlay, "memory://", 1, workdir, env))
                sides["Nova mode"] = Side(
                    mine.guest, None, StatementCounter(reader), NOVA_MODE_BOOT
                )
            nova_app = starting.result()
            sides["nova"] = Side(nova_app.base_url, None, counter)
            with asyncio.Runner(loop_factory=wire.run_event_loop()) as runner:
                runner.run(scenarios(sides, floor, instances, args, folder, report))
        nova_app.stop()
        describe(cloud, report, nova_mode, args)
    report.notes.append(f"whole run {time.monotonic() - started:.0f}s; {load_average()}")
    return report


def driver(args: argparse.Namespace) -> str:
    leaves = "wrk" if wrk_available(args.wrk) else "the asyncio client"
    return (
        f"{leaves} for the leaves, loadtests/wire.py for the boots (on the floor: the "
        "driver's own ceiling)"
    )


def describe(
    cloud: NovaCloud,
    report: Report,
    nova_mode: tuple[Path, str] | None,
    args: argparse.Namespace,
) -> None:
    report.notes.append(
        f"ours: metadata serve, store mode, {DATABASE_NAMES[args.ours_database]}, memory://, "
        "1 process; nova: Nova 34.0.0 "
        "metadata app, gunicorn 1 sync worker, MariaDB, [api] metadata_cache_expiration 15; "
        "SQL = statements a request (leaves) or a boot (boots): ours from /v1/stats/paths, "
        f"Nova's from MariaDB's USER_STATISTICS of {cloud.nova_user}"
    )
    if nova_mode:
        report.notes.append(
            "Nova mode: metadata serve --nova-config (a copy of the cloud's nova.conf with a "
            f"SELECT-only user, {nova_mode[1]}, whose USER_STATISTICS count its statements), "
            f"memory://, 1 process; its boot: {len(NOVA_MODE_BOOT)} requests (no "
            "security-groups without Neutron)"
        )


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.nova_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cold-instances",
        type=int,
        default=60_000,  # more than the cold leaf reaches in --seconds here
        help="instances the cold leaf walks (once each)",
    )
    parser.add_argument(
        "--boot-instances", type=int, default=2_000, help="new instances for each boot pattern"
    )
    parser.add_argument("--warm", type=int, default=20, help="instances the warm leaf rotates")
    parser.add_argument("--seconds", type=float, default=6.0, help="per scenario and side")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-floor", dest="floor", action="store_false")
    parser.add_argument(
        "--ours-database",
        choices=KINDS,
        default="sqlite",
        help="store mode's database: SQLite in the run's folder, or a fresh PostgreSQL "
        "database on 127.0.0.1:5432 (dropped after)",
    )
    parser.add_argument(
        "--no-nova-mode",
        dest="nova_mode",
        action="store_false",
        help="leave out ours in Nova mode (metadata serve --nova-config) on Nova's databases",
    )
    parser.add_argument(
        "--no-wrk",
        dest="wrk",
        action="store_false",
        help="the asyncio client even when wrk is installed",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a tiny bounded run (tests): no figures to keep"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.cold_instances, args.boot_instances, args.warm = 100, 40, 4
        args.seconds, args.connections = 0.5, 4  # wrk runs 1 s at least
    if args.seconds > 20:
        parser.error("--seconds: at most 20 per scenario")
    if not mysql_reachable():
        print("MariaDB is not answering: the Nova peer needs it", file=sys.stderr)
        return 2
    report = run(args)
    for line in report.lines():
        print(line)
    return 1 if any(row.ours.errors or row.nova.errors for row in report.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
