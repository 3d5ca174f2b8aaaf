"""Replicas that start together on a fresh database: every one of them migrates or finds
the schema migrated, none fails on "already exists"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROCESSES = 4


def upgrade_at_once(database_url: str) -> list[subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_")}
    starts = [
        subprocess.Popen(
            [sys.executable, "-m", "metadata", "db", "upgrade", "--database-url", database_url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    results = []
    for process in starts:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_concurrent_upgrades_of_a_fresh_database_all_succeed(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    else:
        import asyncio

        from tests.conftest import _empty_database

        url = request.getfixturevalue(f"{backend}_database")
        asyncio.run(_empty_database(url))
    results = upgrade_at_once(url)
    assert [r.returncode for r in results] == [0] * PROCESSES, [r.stderr[-800:] for r in results]
    from metadata.store.migrate import head_revision

    assert all(f"schema at revision {head_revision()}" in r.stdout for r in results)
