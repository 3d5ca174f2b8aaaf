"""Per-path statistics: exact counts, bounded keys, Prometheus exposition, the CLI table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from metadata.services import Services
from metadata.stats import PathStats, Statistics
from tests.documents import guest_headers, sample_document
from tests.servers import ADMIN_TOKEN, start_server


def rows_by_path(payload: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["path"], row["version"]): row for row in payload["paths"]}


async def test_n_requests_give_n_hits_and_one_miss(
    guest: Any, admin: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(1))
    for _ in range(17):
        assert (
            await guest.get("/latest/meta-data/hostname", headers=guest_headers(1))
        ).status == 200
    for _ in range(5):
        response = await guest.get("/openstack/2018-08-27/meta_data.json", headers=guest_headers(1))
        assert response.status == 200
    rows = rows_by_path(await (await admin.get("/v1/stats/paths")).json())
    hostname = rows[("/{version}/meta-data/hostname", "latest")]
    assert (hostname["hits"], hostname["cache_misses"], hostname["cache_hits"]) == (17, 1, 16)
    # identity and the core slice in one statement, once
    assert hostname["db_statements"] == 1
    assert hostname["bytes"] == 17 * len("web-1")
    meta = rows[("/openstack/{version}/meta_data.json", "2018-08-27")]
    assert (meta["hits"], meta["cache_misses"], meta["db_statements"]) == (5, 1, 1)
    assert hostname["p50_ms"] is not None and hostname["p50_ms"] <= hostname["p99_ms"]


async def test_the_hottest_path_comes_first(guest: Any, admin: Any, put_instance: Any) -> None:
    await put_instance(sample_document(2))
    for path, times in (("/latest/meta-data/ami-id", 2), ("/latest/meta-data/instance-id", 6)):
        for _ in range(times):
            await guest.get(path, headers=guest_headers(2))
    paths = [row["path"] for row in (await (await admin.get("/v1/stats/paths")).json())["paths"]]
    assert paths[:2] == ["/{version}/meta-data/instance-id", "/{version}/meta-data/ami-id"]


async def test_random_paths_share_one_row(guest: Any, admin: Any, put_instance: Any) -> None:
    await put_instance(sample_document(3))
    for n in range(50):
        assert (await guest.get(f"/probe-{n}/x", headers=guest_headers(3))).status == 404
    rows = rows_by_path(await (await admin.get("/v1/stats/paths")).json())
    assert rows[("(unmatched)", "")]["hits"] == 50
    assert rows[("(unmatched)", "")]["errors"] == 50
    assert len(rows) == 1


async def test_recording_a_hit_sends_no_statement(
    services: Services, guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(4))
    await guest.get("/latest/meta-data/hostname", headers=guest_headers(4))
    before = services.db.counter.total
    for _ in range(10):
        await guest.get("/latest/meta-data/hostname", headers=guest_headers(4))
    assert services.db.counter.total == before


async def test_metrics_parse_and_agree_with_the_json(
    guest: Any, admin: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(5))
    for _ in range(3):
        await guest.get("/latest/meta-data/hostname", headers=guest_headers(5))
    response = await admin.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    labels = {"path": "/{version}/meta-data/hostname", "version": "latest"}
    requests = [s for s in families["metadata_guest_requests"].samples if s.labels == labels]
    assert [s.value for s in requests if s.name.endswith("_total")] == [3.0]
    histogram = families["metadata_guest_request_duration_seconds"]
    counts = [
        s.value for s in histogram.samples if s.name.endswith("_count") and s.labels == labels
    ]
    assert counts == [3.0]
    assert (await admin.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"cache_max_entries": 25}


async def test_caches_stay_bounded_under_many_instances(
    services: Services, guest: Any, put_instance: Any
) -> None:
    for n in range(100, 160):
        await put_instance(sample_document(n))
        for path in ("/latest/meta-data/instance-id", "/openstack/latest/meta_data.json"):
            assert (await guest.get(path, headers=guest_headers(n))).status == 200
    assert len(services.hot) == 25
    assert len(services.cache.local) == 25
    # evicted instances are still answered, from the database
    response = await guest.get("/latest/meta-data/hostname", headers=guest_headers(100))
    assert await response.text() == "web-100"


def test_percentiles_come_from_the_buckets() -> None:
    stats = Statistics()
    for seconds in [0.0004] * 90 + [0.004] * 9 + [0.04]:
        stats.record(("/p", "v"), cache_hit=True, statements=0, nbytes=1, seconds=seconds)
    row = stats.snapshot()[0]
    assert (row["p50_ms"], row["p95_ms"], row["p99_ms"]) == (0.5, 5, 5)
    empty = PathStats()
    assert empty.percentile_ms(0.5) is None


def test_the_stats_command_prints_the_table(tmp_path: Path) -> None:
    import subprocess
    import sys

    server = start_server(
        tmp_path, {"METADATA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/m.db"}
    )
    try:
        doc = sample_document(6)
        assert server.admin("PUT", f"/v1/instances/{doc['uuid']}", doc)[0] == 201
        for _ in range(4):
            assert server.guest("/latest/meta-data/instance-id", guest_headers(6))[0] == 200
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "metadata",
                "stats",
                "--admin-url",
                f"http://127.0.0.1:{server.admin_port}",
                "--token",
                ADMIN_TOKEN,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    header, first = result.stdout.splitlines()[:2]
    assert header.split()[:4] == ["path", "version", "hits", "hit%"]
    assert first.split()[:4] == ["/{version}/meta-data/instance-id", "latest", "4", "75.0%"]
