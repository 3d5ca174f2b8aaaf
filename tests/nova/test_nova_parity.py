"""Parity with Nova 34.0.0's own metadata API: for every seeded instance of a real Nova
cloud (schema by nova-manage, instances by Nova's objects, on MariaDB), every path of both
trees answers what Nova's app answers on the same databases, except the deliberate
differences of `loadtests.nova_peer.parity.DELIBERATE_DIFFERENCES` (each with its reason,
listed in the README)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from loadtests.nova_peer import NovaCloud, NovaMetadataApp
from loadtests.nova_peer.parity import (
    DELIBERATE_DIFFERENCES,
    Identity,
    compare,
    crawl_both,
    unexplained,
)
from metadata.app import build_guest_app
from metadata.config import Settings
from metadata.services import Services
from tests.conftest import AIOHTTP_CLIENT

SEEDED = ["web-1", "bare-2", "multi-3", "cell2-4", "kernel-5", "volume-6"]
# Differences of one instance only. cell2-4's image has an s3_images row in cell1 (id 3) and
# one in cell2 (id 1): Nova memoizes glance_id_to_id per process by image alone, so its
# ami-id is the id of whichever cell its process looked the image up in first (order
# dependent); we answer the instance's own cell's row, as Nova does in a fresh process.
PER_INSTANCE: dict[str, dict[str, str]] = {
    "cell2-4": {"/*/meta-data/ami-id": "Nova's EC2 image id memo ignores the cell"},
}


def nova_mode_settings(config_path: Path, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/metadata.db",
        admin_tokens={"admin": "test-admin-token-0123456789"},
        admin_token_file=str(tmp_path / "admin-token"),
        rate_limit=None,
        nova_config=(str(config_path),),
        **extra,
    )


@pytest.fixture
async def ours(
    nova_cloud_mysql: NovaCloud, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> AsyncIterator[tuple[Services, TestClient[Any, Any]]]:
    async with Services.open(nova_mode_settings(nova_cloud_mysql.config_path, tmp_path)) as s:
        yield s, await aiohttp_client(build_guest_app(s))


@pytest.mark.parametrize("name", SEEDED)
async def test_every_path_answers_as_novas_own_app(
    nova_cloud_mysql: NovaCloud,
    nova_metadata_app: NovaMetadataApp,
    ours: tuple[Services, TestClient[Any, Any]],
    name: str,
) -> None:
    _, guest = ours
    instance = nova_cloud_mysql.instance(name)
    identity = Identity(
        instance.uuid, instance.project_id, nova_cloud_mysql.shared_secret, instance.address
    )
    mine, theirs = await crawl_both(str(guest.make_url("")), nova_metadata_app.base_url, identity)
    differences = compare(mine, theirs, {**DELIBERATE_DIFFERENCES, **PER_INSTANCE.get(name, {})})
    deliberate = [d for d in differences if d.is_deliberate]
    print(
        f"\n{name}: {len(set(mine.answers) | set(theirs.answers))} paths, "
        f"{len(deliberate)} deliberately different"
    )
    for d in unexplained(differences):
        print(f"  {d.path} {d.what}: ours={d.ours!r} nova={d.theirs!r}")
    assert unexplained(differences) == []
