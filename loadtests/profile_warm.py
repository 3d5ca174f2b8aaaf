"""Where each microsecond of a warm request goes: `metadata serve` under cProfile, driven by
wrk as `loadtests.bench`'s warm leaf drives it, and the profile read back per request.

    python -m loadtests.profile_warm                    # signed headers over 2,000 instances
    python -m loadtests.profile_warm --identity address --seconds 8
    python -m loadtests.profile_warm --cache-url redis://127.0.0.1:6379/15

The profiler slows Python calls two to three times, so read the shares, not the totals.
Bounded: one warm-up run and one profiled run of `--seconds` each, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from loadtests.bench import SIGNED_LEAF_INSTANCES, Limits, leaf, run_server
from loadtests.seed import seed

# The functions worth a row, by (file suffix, function name): cumulative time per request.
WATCHED = (
    ("aiohttp/web_protocol.py", "data_received", "aiohttp: reading and parsing, all of it"),
    ("metadata/guest/protocol.py", "answer_express", "the lane, all of it"),
    ("metadata/guest/express.py", "answer", "  ExpressLane.answer"),
    ("metadata/guest/identify.py", "known_caller", "    who is asking (at once)"),
    ("metadata/guest/identify.py", "caller_soon", "    who is asking (Redis round trip asked)"),
    ("metadata/guest/express.py", "_answer_for", "    answer, token, rate limit, statistics"),
    ("metadata/guest/guard.py", "check_token_of", "      the token check"),
    ("metadata/stats.py", "record", "      the statistics row"),
    ("metadata/guest/wire.py", "response_bytes", "      the response bytes"),
    ("metadata/guest/protocol.py", "_sent", "  writing it (send syscall)"),
    ("metadata/guest/protocol.py", "done", "  a held read's answer (Redis)"),
    ("metadata/mget_batch.py", "_send", "  the tick's MGET (Redis)"),
    ("aiohttp/web_protocol.py", "start", "the full chain: aiohttp's request loop"),
)


def per_request(profile: Path, requests: int) -> list[tuple[str, float, float]]:
    """(what, cumulative µs, own µs) a request for each watched function found."""
    stats = pstats.Stats(str(profile))
    found: list[tuple[str, float, float]] = []
    table = stats.stats  # type: ignore[attr-defined]
    for suffix, name, label in WATCHED:
        for (filename, _, function), row in table.items():
            if function == name and filename.endswith(suffix):
                own, cumulative = row[2], row[3]
                found.append((label, cumulative / requests * 1e6, own / requests * 1e6))
                break
    return found


async def profiled(args: argparse.Namespace, workdir: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{workdir}/bench.db"
    await seed(database_url, args.instances, quiet=True)
    profile = workdir / "serve.prof"
    limits = Limits(args.seconds, 10_000_000, args.connections)
    with run_server(database_url, args.cache_url, 1, str(workdir), profile=str(profile)) as server:
        use_wrk = not args.no_wrk
        await leaf(server.guest, None, limits, use_wrk, args.identity, args.instances)  # warm up
        result = await leaf(server.guest, None, limits, use_wrk, args.identity, args.instances)
    rate = result.requests / result.seconds
    print(
        f"{result.requests:,} requests profiled in {result.seconds:.1f} s ({rate:,.0f} req/s "
        f"profiled), {args.identity} identity over {args.instances:,} instances, "
        f"{result.driver} -c{args.connections}"
    )
    print(f"{'where':<48} {'µs/req cumulative':>18} {'own':>6}")
    for label, cumulative, own in per_request(profile, result.requests):
        print(f"{label:<48} {cumulative:>18.1f} {own:>6.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.profile_warm", description=__doc__)
    parser.add_argument("--identity", choices=("signed", "address"), default="signed")
    parser.add_argument("--instances", type=int, default=SIGNED_LEAF_INSTANCES)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--cache-url", default="memory://", help="e.g. redis://127.0.0.1:6379/15")
    parser.add_argument("--no-wrk", action="store_true", help="drive it with the asyncio client")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="profile-warm-") as workdir:
        asyncio.run(profiled(args, Path(workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
