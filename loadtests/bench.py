"""The benchmark: start the server, seed, drive it, and print one table against the floor.

    python -m loadtests.bench                        # SQLite + memory://, 10,000 instances
    python -m loadtests.bench --database-url postgresql+asyncpg://... --instances 1000000 \\
        --no-seed                                    # an already seeded database
    python -m loadtests.bench --workers 2 --cache-url redis://127.0.0.1:6379/0

Scenarios, each run for `--seconds` against our server and then against a bare aiohttp app
answering a constant body (loadtests/floor.py) on the same event loop, in the same run:
(a) one warm leaf of one instance; (b) cloud-init's OpenStack boot sequence, each guest a
fresh instance walking BOOT in order on its own connection; (c) a mix of agents re-reading
warm leaves and boot paths of any instance; (d) boot storms (loadtests/storm.py): new
instances booting side by side and with overlapping requests, in boots per second.
wrk (with loadtests/wrk/*.lua) drives (a) and (c) when it is installed, else a bounded
asyncio client; (b) always uses the asyncio client, since wrk cannot keep one guest's
sequence on one connection; (d) uses loadtests/wire.py, a raw Protocol client, and runs
against the floor too: that row is the driver's own ceiling. SQL statements and cache hits
come from the server's own counters (admin GET /v1/stats/paths), before and after.
Every run is bounded by time and by count, and traffic goes to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from loadtests import storm, wire
from loadtests.cloud_init import OPENSTACK_BOOT as BOOT
from loadtests.seed import instance_address, instance_uuid, project_id, seed
from metadata.guest.identify import sign

HERE = Path(__file__).resolve().parent
ADMIN_TOKEN = "bench-admin-token-0123456789"
LEAF = "/latest/meta-data/instance-id"
LEARNING_BOOTS = 20  # boots that teach the prefetch planner the sequence before (b)
PROXY_SECRET = "bench-proxy-secret"


@dataclass
class Result:
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    statements: int | None = None
    cache_hits: int | None = None
    hits: int | None = None
    instances: int | None = None
    driver: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Limits:
    seconds: float
    max_requests: int
    connections: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the workers), in MiB."""
    total = 0
    for p in [pid, *children(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(c) for c in text.split()]
    return []


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    guest: str
    admin: str
    started_in: float


@contextlib.contextmanager
def run_server(
    database_url: str,
    cache_url: str,
    workers: int,
    workdir: str,
    extra_env: dict[str, str] | None = None,
    profile: str | None = None,
) -> Iterator[Server]:
    """`metadata serve` on free loopback ports; `profile`: under cProfile, its statistics
    written to that file when the server stops."""
    guest_port, admin_port = free_port(), free_port()
    env = {
        **os.environ,
        "METADATA_DATABASE_URL": database_url,
        "METADATA_CACHE_URL": cache_url,
        "METADATA_LISTEN": f"127.0.0.1:{guest_port}",
        "METADATA_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
        "METADATA_ADMIN_TOKEN": ADMIN_TOKEN,
        "METADATA_TRUSTED_PROXIES": "127.0.0.0/8",
        "METADATA_RATE_LIMIT": "off",
        "METADATA_PROXY_SHARED_SECRET": PROXY_SECRET,
        "METADATA_LOG_LEVEL": "WARNING",
        "METADATA_WORKERS": str(workers),
        **(extra_env or {}),
    }
    started = time.monotonic()
    profiler = [] if profile is None else ["-m", "cProfile", "-o", profile]
    process = subprocess.Popen(
        [sys.executable, *profiler, "-m", "metadata", "serve"], env=env, cwd=workdir
    )
    server = Server(
        process, f"http://127.0.0.1:{guest_port}", f"http://127.0.0.1:{admin_port}", 0.0
    )
    try:
        wait_ready(server, started, timeout=120)
        server.started_in = time.monotonic() - started
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(server: Server, started: float, timeout: float) -> None:
    import urllib.request

    while time.monotonic() - started < timeout:
        if server.process.poll() is not None:
            raise SystemExit(f"the server exited with {server.process.returncode}")
        with contextlib.suppress(OSError):
            # The guest port too: with several workers each binds its own listener.
            urllib.request.urlopen(server.admin + "/healthz", timeout=1).read()
            urllib.request.urlopen(server.guest + "/", timeout=1).read()
            return
        time.sleep(0.05)
    raise SystemExit(f"the server was not ready within {timeout}s")


@contextlib.contextmanager
def run_floor() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "loadtests.floor", str(port)], cwd=HERE.parent
    )
    url = f"http://127.0.0.1:{port}"
    try:
        server = Server(process, url, url, 0.0)
        import urllib.request

        started = time.monotonic()
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + "/", timeout=1).read()
                break
            if time.monotonic() - started > 30 or process.poll() is not None:
                raise SystemExit("the floor server did not start")
            time.sleep(0.05)
        del server
        yield url
    finally:
        process.terminate()
        process.wait(10)


async def path_stats(admin: str) -> tuple[int, int, int, int]:
    """(requests, cache hits, SQL statements, cache misses) over every path, from the
    server's counters."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            admin + "/v1/stats/paths", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as r,
    ):
        rows = (await r.json())["paths"]
    return (
        sum(row["hits"] for row in rows),
        sum(row["cache_hits"] for row in rows),
        sum(row["db_statements"] for row in rows),
        sum(row["cache_misses"] for row in rows),
    )


def percentile_ms(latencies: list[float], q: float) -> float:
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def drive_sequences(
    url: str,
    guests: Iterator[int],
    paths: Sequence[str],
    limits: Limits,
    headers_of: storm.Headers | None = None,
) -> Result:
    """`limits.connections` guests at a time, each a fresh instance walking `paths` in order
    on its own keep-alive connection; stops at the time or request bound."""
    latencies: list[float] = []
    errors = 0
    booted = 0
    deadline = time.monotonic() + limits.seconds

    async def guest_loop() -> None:
        nonlocal errors, booted
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            while time.monotonic() < deadline and len(latencies) < limits.max_requests:
                n = next(guests, None)
                if n is None:
                    return
                headers = headers_of(n) if headers_of else {"X-Forwarded-For": instance_address(n)}
                for path in paths:
                    started = time.perf_counter()
                    try:
                        async with session.get(url + path, headers=headers) as response:
                            await response.read()
                            errors += response.status != 200
                    except aiohttp.ClientError:
                        errors += 1
                    latencies.append(time.perf_counter() - started)
                booted += 1

    started = time.monotonic()
    await asyncio.gather(*(guest_loop() for _ in range(limits.connections)))
    seconds = time.monotonic() - started
    return Result(
        len(latencies),
        seconds,
        percentile_ms(latencies, 0.5),
        percentile_ms(latencies, 0.99),
        errors,
        instances=booted,
        driver="asyncio",
    )


def wrk_available(use_wrk: bool) -> bool:
    return use_wrk and shutil.which("wrk") is not None


def run_wrk(url: str, script: str, limits: Limits, env: dict[str, str]) -> Result:
    command = [
        "wrk",
        "-t1",
        f"-c{limits.connections}",
        f"-d{max(1, round(limits.seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "wrk" / script),
        url,
    ]
    output = subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "WRK_REPORT": str(HERE / "wrk" / "report.lua"), **env},
        timeout=limits.seconds + 30,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("{"))
    figures = orjson.loads(line)
    return Result(
        figures["requests"],
        figures["seconds"],
        figures["p50_us"] / 1000,
        figures["p99_us"] / 1000,
        figures["errors"],
        driver="wrk",
    )


def spread(count: int, start: int, total: int) -> Iterator[int]:
    """`count` distinct instance numbers from start..total-1, spread over the whole range
    (a stride coprime with the range), so a big table is read all over its index."""
    span = total - start
    stride = next(s for s in itertools.count(max(1, span // 7919) | 1) if span % s or s == 1)
    if span % stride == 0:
        stride = 1
    return (start + (i * stride) % span for i in range(min(count, span)))


async def measured(admin: str | None, run: Any) -> Result:
    before = await path_stats(admin) if admin else None
    result: Result = await run()
    if admin and before:
        after = await path_stats(admin)
        result.hits, result.cache_hits, result.statements, _ = (
            a - b for a, b in zip(after, before, strict=True)
        )
    return result


SIGNED_LEAF_INSTANCES = 2_000  # the warm leaf with signed headers rotates over these


async def leaf(
    url: str,
    admin: str | None,
    limits: Limits,
    use_wrk: bool,
    identity: str = "address",
    instances: int = 1,
) -> Result:
    """The warm leaf: one instance by source address, or signed headers rotating over up to
    SIGNED_LEAF_INSTANCES instances (each warmed first)."""
    if identity == "signed":
        rotated = range(min(SIGNED_LEAF_INSTANCES, instances))
        headers = identity_headers("signed")
        async with aiohttp.ClientSession() as session:
            for n in rotated:
                await (await session.get(url + LEAF, headers=headers(n))).read()
        if wrk_available(use_wrk):
            lines = (
                " ".join(
                    headers(n)[h]
                    for h in ("X-Instance-ID", "X-Tenant-ID", "X-Instance-ID-Signature")
                )
                for n in rotated
            )
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
                f.write("\n".join(lines) + "\n")
            env = {"WRK_PATH": LEAF, "WRK_SIGNED": f.name}
            try:
                return await measured(
                    admin, lambda: asyncio.to_thread(run_wrk, url, "signed.lua", limits, env)
                )
            finally:
                os.unlink(f.name)
        return await measured(
            admin,
            lambda: drive_sequences(url, itertools.cycle(rotated), [LEAF] * 100, limits, headers),
        )
    address = instance_address(0)
    async with aiohttp.ClientSession() as session:  # warm it
        await (await session.get(url + LEAF, headers={"X-Forwarded-For": address})).read()
    if wrk_available(use_wrk):
        env = {"WRK_PATH": LEAF, "WRK_ADDRESS": address}
        return await measured(
            admin, lambda: asyncio.to_thread(run_wrk, url, "leaf.lua", limits, env)
        )
    return await measured(
        admin, lambda: drive_sequences(url, itertools.repeat(0), [LEAF] * 100, limits)
    )


async def boots(url: str, admin: str | None, limits: Limits, first: int, total: int) -> Result:
    guests = spread(limits.max_requests // len(BOOT) + limits.connections, first, total)
    return await measured(admin, lambda: drive_sequences(url, guests, BOOT, limits))


async def mix(url: str, admin: str | None, limits: Limits, instances: int, use_wrk: bool) -> Result:
    hot = min(100, instances)
    if wrk_available(use_wrk):
        env = {"WRK_INSTANCES": str(instances), "WRK_HOT": str(hot), "WRK_BOOT": ",".join(BOOT)}
        return await measured(
            admin, lambda: asyncio.to_thread(run_wrk, url, "mix.lua", limits, env)
        )
    import random

    rng = random.Random(1)
    guests = (
        rng.randrange(hot) if rng.random() < 0.8 else rng.randrange(instances)
        for _ in range(limits.max_requests)
    )
    return await measured(admin, lambda: drive_sequences(url, guests, BOOT[1:7], limits))


async def learn_boot(url: str, first: int) -> None:
    """A few boots, one after another, so that the planner has seen the sequence."""
    await drive_sequences(
        url,
        iter(range(first, first + LEARNING_BOOTS)),
        BOOT,
        Limits(60, LEARNING_BOOTS * len(BOOT), 1),
    )


def identity_headers(identity: str) -> storm.Headers:
    """Guest n's identity as the service is told it: signed headers, or the source address
    forwarded by a trusted proxy."""
    if identity == "address":
        return lambda n: {"X-Forwarded-For": instance_address(n)}

    def signed(n: int) -> dict[str, str]:
        uuid = instance_uuid(n)
        return {
            "X-Instance-ID": uuid,
            "X-Tenant-ID": project_id(n),
            "X-Instance-ID-Signature": sign(PROXY_SECRET, uuid),
        }

    return signed


async def storm_run(
    pattern: str, url: str, admin: str | None, guests: Iterator[int], args: argparse.Namespace
) -> storm.StormResult:
    before = await path_stats(admin) if admin else None
    result = await storm.DRIVERS[pattern](
        url, guests, BOOT, identity_headers(args.identity), args.boot_connections, args.seconds
    )
    if admin and before:
        after = await path_stats(admin)
        result.statements = after[2] - before[2]
        result.misses = after[3] - before[3]
    return result


async def storms(
    args: argparse.Namespace, server: Server, floor: str | None, report: Report
) -> None:
    """Both patterns, each on its own share of the fresh instances (a boot storm is of
    new instances: nothing of them is cached), then the same on the floor: the driver's
    own ceiling, in the same run."""
    first = LEARNING_BOOTS + 1
    share = (args.instances - first) // len(storm.PATTERNS)
    for i, pattern in enumerate(storm.PATTERNS):
        start = first + i * share
        guests = spread(share, start, start + share)
        result = await storm_run(pattern, server.guest, server.admin, guests, args)
        ceiling = (
            await storm_run(pattern, floor, None, spread(share, start, start + share), args)
            if floor
            else None
        )
        report.storms.append((result, ceiling))


@dataclass
class Report:
    rows: list[tuple[str, Result, Result | None]] = field(default_factory=list)
    # (ours, the same storm on the floor)
    storms: list[tuple[storm.StormResult, storm.StormResult | None]] = field(default_factory=list)
    storm_title: str = ""
    notes: list[str] = field(default_factory=list)

    def print_storms(self) -> None:
        head = (
            f"{'(d) boot storm':<16}{'boots':>7}{'boots/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'SQL/boot':>10}{'miss/boot':>11}{'errors':>8}{'floor boots/s':>15}"
            f"{'ours/floor':>12}"
        )
        print(self.storm_title)
        print(head)
        print("-" * len(head))
        for ours, floor in self.storms:
            floor_rate = f"{floor.boots_per_second:,.1f}" if floor else "-"
            ratio = (
                f"{ours.boots_per_second / floor.boots_per_second:.2f}"
                if floor and floor.boots_per_second
                else "-"
            )
            print(
                f"{ours.pattern:<16}{ours.boots:>7}{ours.boots_per_second:>9,.1f}"
                f"{ours.percentile_ms(0.5):>9.1f}{ours.percentile_ms(0.99):>9.1f}"
                f"{ours.per_boot(ours.statements):>10}{ours.per_boot(ours.misses):>11}"
                f"{ours.errors + (floor.errors if floor else 0):>8}{floor_rate:>15}{ratio:>12}"
            )

    def print(self) -> None:
        if self.rows:
            self.print_rows()
        if self.storms:
            self.print_storms()
        for note in self.notes:
            print(note)

    def print_rows(self) -> None:
        head = (
            f"{'scenario':<24}{'driver':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'SQL/req':>9}{'SQL/inst':>9}{'hit %':>7}{'errors':>8}"
            f"{'floor req/s':>13}{'ours/floor':>11}"
        )
        print(head)
        print("-" * len(head))
        for name, ours, floor in self.rows:
            per_req = (
                f"{ours.statements / ours.hits:.3f}"
                if ours.statements is not None and ours.hits
                else "-"
            )
            per_inst = (
                f"{ours.statements / ours.instances:.2f}"
                if ours.statements is not None and ours.instances
                else "-"
            )
            hit = (
                f"{100 * ours.cache_hits / ours.hits:.1f}"
                if ours.cache_hits is not None and ours.hits
                else "-"
            )
            floor_rate = f"{floor.rate:,.0f}" if floor else "-"
            ratio = f"{ours.rate / floor.rate:.2f}" if floor and floor.rate else "-"
            print(
                f"{name:<24}{ours.driver:>8}{ours.rate:>10,.0f}{ours.p50_ms:>9.2f}"
                f"{ours.p99_ms:>9.2f}{per_req:>9}{per_inst:>9}{hit:>7}{ours.errors:>8}"
                f"{floor_rate:>13}{ratio:>11}"
            )


async def run_scenarios(
    args: argparse.Namespace, server: Server, floor: str | None, report: Report
) -> None:
    limits = Limits(args.seconds, args.max_requests, args.connections)
    if "leaf" in args.scenarios:
        # Rounds alternate ours and the floor, so that a noisy neighbour hits both alike;
        # the row is the round with the median ratio.
        rounds = []
        for _ in range(args.rounds):
            ours = await leaf(
                server.guest, server.admin, limits, args.wrk, args.leaf_identity, args.instances
            )
            base = (
                await leaf(floor, None, limits, args.wrk, args.leaf_identity, args.instances)
                if floor
                else None
            )
            rounds.append((ours, base))
        if floor:
            rounds.sort(key=lambda pair: pair[0].rate / pair[1].rate if pair[1] else 0.0)
            ratios = ", ".join(f"{o.rate / b.rate:.2f}" for o, b in rounds if b and b.rate)
            report.notes.append(f"(a) ours/floor in each round, sorted: {ratios}")
        ours, base = rounds[len(rounds) // 2]
        report.rows.append((f"(a) warm leaf, {args.leaf_identity}", ours, base))
    if "boot" in args.scenarios:
        # Instances 1..LEARNING_BOOTS teach the planner; the measured boots are others.
        await learn_boot(server.guest, 1)
        boot_limits = Limits(args.seconds, args.max_requests, args.boot_connections)
        first = LEARNING_BOOTS + 1
        ours = await boots(server.guest, server.admin, boot_limits, first, args.instances)
        base = await boots(floor, None, boot_limits, first, args.instances) if floor else None
        report.rows.append(("(b) cold boot sequence", ours, base))
    if "mix" in args.scenarios:
        ours = await mix(server.guest, server.admin, limits, args.instances, args.wrk)
        base = await mix(floor, None, limits, args.instances, args.wrk) if floor else None
        report.rows.append(("(c) mix 80% warm agents", ours, base))
    if "storm" in args.scenarios:
        if "boot" not in args.scenarios:
            await learn_boot(server.guest, 1)
        report.storm_title = (
            f"boot storms: {args.boot_connections} connections, {args.identity} identity, "
            f"{len(BOOT)} requests a boot, each pattern up to {args.seconds:g}s; driver "
            "loadtests/wire.py, whose ceiling is its storm on the floor"
        )
        await storms(args, server, floor, report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--cache-url", default="memory://")
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument(
        "--no-seed",
        dest="seed",
        action="store_false",
        help="the database already holds --instances seeded instances",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="per scenario and server")
    parser.add_argument(
        "--max-requests",
        type=int,
        default=1_000_000,
        help="per scenario (bounds the asyncio client; wrk is bounded by time)",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--boot-connections", type=int, default=16, help="guests booting at once in (b)"
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scenarios", default="leaf,boot,mix,storm")
    parser.add_argument(
        "--identity",
        choices=("signed", "address"),
        default="signed",
        help="how boot-storm guests identify themselves",
    )
    parser.add_argument(
        "--leaf-identity",
        choices=("address", "signed"),
        default="address",
        help="(a) by one source address, or signed headers rotating over 2,000 instances",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny bounded run of every scenario (tests, CI): no figures to keep",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of (a)")
    parser.add_argument("--no-floor", dest="floor", action="store_false")
    parser.add_argument(
        "--no-wrk",
        dest="wrk",
        action="store_false",
        help="use the asyncio client even when wrk is installed",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.instances, args.seconds, args.max_requests = 60, 0.5, 60
        args.connections, args.boot_connections, args.rounds, args.wrk = 2, 2, 1, False
    report = Report()
    with tempfile.TemporaryDirectory(prefix="metadata-bench-") as workdir:
        url = args.database_url or f"sqlite+aiosqlite:///{workdir}/bench.db"
        if args.seed:
            seconds = asyncio.run(seed(url, args.instances, quiet=True))
            report.notes.append(f"seeded {args.instances:,} instances in {seconds:.1f}s")
        with run_server(url, args.cache_url, args.workers, workdir) as server:
            rss_start = rss_mb(server.process.pid)
            with (
                run_floor() if args.floor else contextlib.nullcontext() as floor,
                asyncio.Runner(loop_factory=wire.run_event_loop()) as runner,
            ):
                runner.run(run_scenarios(args, server, floor, report))
            report.notes.append(
                f"{args.instances:,} instances, {args.workers} worker(s), cache "
                f"{args.cache_url}, database {url.split(':')[0]}; server ready in "
                f"{server.started_in:.2f}s; RSS {rss_start:.0f} MiB after start, "
                f"{rss_mb(server.process.pid):.0f} MiB after the run"
            )
    report.print()
    failed = any(ours.errors for _, ours, _ in report.rows) or any(
        ours.errors or (floor and floor.errors) for ours, floor in report.storms
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
