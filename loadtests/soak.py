"""A bounded soak: the realistic mix for `--seconds` (default 10 minutes) with an operator
changing user data every second, the server's RSS sampled every 10 s; exits non-zero on
any error. Not part of the test suite.

    python -m loadtests.soak --seconds 600 --instances 10000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
import urllib.request

from loadtests.bench import (
    ADMIN_TOKEN,
    BOOT,
    Limits,
    Result,
    mix,
    rss_mb,
    run_server,
)
from loadtests.seed import instance_uuid, seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.soak", description=__doc__)
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--cache-url", default="memory://")
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--sample-every", type=float, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="metadata-soak-") as workdir:
        url = args.database_url or f"sqlite+aiosqlite:///{workdir}/soak.db"
        asyncio.run(seed(url, args.instances, quiet=True))
        with run_server(url, args.cache_url, 1, workdir) as server:
            pid = server.process.pid
            limits = Limits(args.seconds, 10**9, args.connections)
            outcome: list[Result] = []
            load = threading.Thread(
                target=lambda: outcome.append(
                    asyncio.run(mix(server.guest, server.admin, limits, args.instances, True))
                )
            )
            started = time.monotonic()
            load.start()
            samples: list[tuple[float, float]] = []
            writes = write_errors = 0
            next_sample = started
            while load.is_alive():
                now = time.monotonic()
                if now >= next_sample:
                    samples.append((now - started, rss_mb(pid)))
                    print(f"{now - started:6.0f}s  RSS {samples[-1][1]:7.1f} MiB", flush=True)
                    next_sample += args.sample_every
                n = writes % min(args.instances, 100)  # the agents' instances, kept changing
                request = urllib.request.Request(
                    f"{server.admin}/v1/instances/{instance_uuid(n)}/user-data",
                    data=f"#cloud-config\n# {writes}\n".encode(),
                    method="PUT",
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
                try:
                    urllib.request.urlopen(request, timeout=5).read()
                except OSError:
                    write_errors += 1
                writes += 1
                time.sleep(1)
            load.join()
            samples.append((time.monotonic() - started, rss_mb(pid)))
    result = outcome[0] if outcome else Result()
    rss = [mb for _, mb in samples]
    after_first_minute = [mb for t, mb in samples if t >= 60] or rss
    print(
        f"{result.requests:,} requests in {result.seconds:.0f}s ({result.rate:,.0f}/s, "
        f"{result.driver}), p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
        f"{result.errors} errors; {writes} user-data writes, {write_errors} failed; "
        f"RSS min {min(rss):.1f} / max {max(rss):.1f} MiB, after the first minute "
        f"{min(after_first_minute):.1f}-{max(after_first_minute):.1f} MiB; "
        f"{len(BOOT)} boot paths over {args.instances:,} instances"
    )
    return 1 if result.errors or write_errors or not outcome else 0


if __name__ == "__main__":
    sys.exit(main())
