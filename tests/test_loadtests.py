"""The load-test kit works: the locustfile imports and names real clients, the seed's
instances answer as themselves, and the benchmark harness runs end to end in a tiny bounded
mode. Nothing here times anything: the figures belong to `python -m loadtests.bench`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from loadtests import bench, profile_warm, seed, storm
from metadata.document import parse_document

# locust monkey-patches the standard library with gevent when imported, which must happen
# before ssl is loaded: so the locustfile is imported in a fresh interpreter.
LOCUSTFILE_CHECK = """
from loadtests import locustfile, seed
from metadata.guest.identify import sign
users = {"CloudInitOpenStack", "CloudInitEC2", "IMDSv2Client", "UserDataWaiter", "Operator"}
assert users <= set(vars(locustfile)), users - set(vars(locustfile))
locustfile.IDENTITY, locustfile.SECRET = "signed", "s3cret"
headers = locustfile.identity_headers(7)
assert headers["X-Instance-ID"] == seed.instance_uuid(7)
assert headers["X-Instance-ID-Signature"] == sign("s3cret", seed.instance_uuid(7))
assert locustfile.identity_headers(7)["X-Tenant-ID"] == seed.project_id(7)
"""


def test_the_locustfile_has_a_user_per_real_client() -> None:
    if importlib.util.find_spec("locust") is None:
        pytest.skip("locust is not installed")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", LOCUSTFILE_CHECK],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_seeded_instances_are_valid_and_have_distinct_addresses() -> None:
    numbers = [0, 1, 249, 250, 251, 65_535, 999_999]
    for n in numbers:
        parse_document(seed.document(n))
    assert len({seed.instance_address(n) for n in range(100_000)}) == 100_000
    assert all(not a.endswith((".0", ".255")) for a in map(seed.instance_address, numbers))


def test_spread_picks_distinct_instances_over_the_range() -> None:
    picked = list(bench.spread(50, 21, 1000))
    assert len(set(picked)) == 50 and all(21 <= n < 1000 for n in picked)


def test_the_bench_runs_in_a_tiny_bounded_mode(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = bench.main(
        [
            "--instances",
            "40",
            "--seconds",
            "0.5",
            "--max-requests",
            "60",
            "--connections",
            "2",
            "--boot-connections",
            "2",
            "--no-wrk",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    for row in ("(a) warm leaf", "(b) cold boot sequence", "(c) mix"):
        assert row in out
    for pattern in storm.PATTERNS:
        storm_row = next(line for line in out.splitlines() if line.startswith(pattern))
        boots, _rate, _p50, _p99, per_boot, misses = storm_row.split()[1:7]
        assert int(boots) > 0 and per_boot != "-" and misses != "-", storm_row
    boot_row: Any = next(line for line in out.splitlines() if line.startswith("(b)"))
    assert " - " not in boot_row.split("asyncio")[1][:40]  # statements were counted


def test_the_warm_profile_shows_the_express_lane_answering(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = profile_warm.main(
        ["--seconds", "0.5", "--instances", "20", "--connections", "2", "--no-wrk"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    lane = next(line for line in out.splitlines() if line.startswith("the lane, all of it"))
    assert float(lane.split()[-2]) > 0, out  # warm reads went the express lane


async def test_overlapping_boots_put_consecutive_requests_on_different_connections(
    aiohttp_server: Any,
) -> None:
    seen: list[tuple[str, int]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.path, id(request.transport)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    server = await aiohttp_server(app)
    paths = ["/a", "/b", "/c", "/d"]
    url = str(server.make_url("")).rstrip("/")
    result = await storm.overlapping(url, iter(range(3)), paths, lambda n: {}, 4, 10)
    assert (result.boots, result.errors) == (3, 0)
    assert len(seen) == 12
    first_boot = [conn for path, conn in seen[:4]]
    assert len(set(first_boot)) > 1  # the boot's requests went out on several connections


async def test_side_by_side_boots_walk_each_boot_on_one_connection(aiohttp_server: Any) -> None:
    seen: list[tuple[str, str, int]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.headers["X-Guest"], request.path, id(request.transport)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    result = await storm.side_by_side(
        url, iter(range(4)), ["/a", "/b", "/c"], lambda n: {"X-Guest": str(n)}, 2, 10
    )
    assert (result.boots, result.errors) == (4, 0)
    for guest in map(str, range(4)):
        mine = [(path, conn) for g, path, conn in seen if g == guest]
        assert [path for path, _ in mine] == ["/a", "/b", "/c"]
        assert len({conn for _, conn in mine}) == 1


NOVA_BENCH_SCENARIOS = ("warm leaf", "cold leaf", "boot, side-by-side", "boot, overlapping")
NOVA_BENCH_ROWS = NOVA_BENCH_SCENARIOS + tuple(f"{s} (Nova mode)" for s in NOVA_BENCH_SCENARIOS)


def test_the_nova_bench_runs_every_scenario_on_every_side(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nova's own app, ours, and ours in Nova mode on Nova's databases, on the same cloned
    instances: every row is there, every side answered every request (a clone Nova could
    not serve would be an error), and every statement counter counted."""
    from loadtests import nova_bench
    from loadtests.nova_peer.databases import MYSQL_HOST, MYSQL_PORT, mysql_reachable
    from loadtests.nova_peer.venv import cache_folder, is_complete, pypi_reachable
    from tests.backends import unavailable

    if not mysql_reachable():
        unavailable(f"MariaDB/MySQL is not answering on {MYSQL_HOST}:{MYSQL_PORT}")
    if not is_complete(cache_folder()) and not pypi_reachable():
        unavailable(f"no Nova venv in {cache_folder()} and PyPI is unreachable to build one")
    code = nova_bench.main(["--quick"])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in NOVA_BENCH_ROWS:
        row = next(line for line in out.splitlines() if line.startswith(name + "  "))
        figures = row[len(name) :].split()
        ours_sql, nova_sql, errors = figures[4], figures[8], figures[-1]
        assert ours_sql != "-" and nova_sql != "-" and errors == "0", row
    assert "not answered 200" not in out


async def test_a_boot_with_any_answer_not_200_is_an_error(aiohttp_server: Any) -> None:
    async def answer(request: web.Request) -> web.Response:
        failing = request.path == "/b" and request.headers["X-Guest"] == "1"
        return web.Response(text="no", status=404) if failing else web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    for driver in storm.DRIVERS.values():
        result = await driver(
            url, iter(range(3)), ["/a", "/b"], lambda n: {"X-Guest": str(n)}, 2, 10
        )
        assert (result.boots, result.errors) == (2, 1)


async def test_storms_connect_again_when_the_server_closes_after_each_answer(
    aiohttp_server: Any,
) -> None:
    """As gunicorn's sync worker (Nova's app) does: every answer ends its connection."""
    connections: set[object] = set()

    async def answer(request: web.Request) -> web.Response:
        assert request.transport is not None
        connections.add(request.transport.get_extra_info("peername"))  # the client's port
        return web.Response(text="ok", headers={"Connection": "close"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    for driver in storm.DRIVERS.values():
        connections.clear()
        result = await driver(url, iter(range(4)), ["/a", "/b", "/c"], lambda n: {}, 2, 10)
        assert (result.boots, result.errors) == (4, 0)
        assert len(connections) == 12  # a connection an answer
