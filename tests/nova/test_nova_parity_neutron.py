"""Parity with Nova's own metadata app when Neutron is configured: our Nova mode asks a
loopback Neutron serving exactly the groups the Nova peer's app serves (the cloud's
security_groups.json, which stands in for Neutron there), and every path, the
`security-groups` leaves and listing lines included, answers as Nova does. The deliberate
`security-groups` difference only applies without Neutron."""

from __future__ import annotations

import dataclasses
import json
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
from metadata.services import Services
from tests.conftest import AIOHTTP_CLIENT
from tests.nova.fake_neutron import FakeNeutron, fake_neutron
from tests.nova.test_nova_parity import PER_INSTANCE, SEEDED, nova_mode_settings

WITH_NEUTRON = {
    pattern: reason
    for pattern, reason in DELIBERATE_DIFFERENCES.items()
    if "security-groups" not in pattern
}


@pytest.fixture
async def neutron(nova_cloud_mysql: NovaCloud) -> AsyncIterator[FakeNeutron]:
    groups = json.loads(nova_cloud_mysql.security_groups_file.read_text(encoding="utf-8"))
    async with fake_neutron() as fake:
        for uuid, names in groups.items():
            fake.serve_names(uuid, names)
        yield fake


@pytest.fixture
async def ours(
    nova_cloud_mysql: NovaCloud,
    neutron: FakeNeutron,
    tmp_path: Path,
    aiohttp_client: AIOHTTP_CLIENT,
) -> AsyncIterator[TestClient[Any, Any]]:
    extra = tmp_path / "neutron.conf"
    extra.write_text(neutron.conf(), encoding="utf-8")
    settings = nova_mode_settings(nova_cloud_mysql.config_path, tmp_path)
    settings = dataclasses.replace(settings, nova_config=(*settings.nova_config, str(extra)))
    async with Services.open(settings) as services:
        yield await aiohttp_client(build_guest_app(services))


@pytest.mark.parametrize("name", SEEDED)
async def test_security_groups_answer_as_novas_own_app_with_neutron(
    nova_cloud_mysql: NovaCloud,
    nova_metadata_app: NovaMetadataApp,
    ours: TestClient[Any, Any],
    neutron: FakeNeutron,
    name: str,
) -> None:
    instance = nova_cloud_mysql.instance(name)
    identity = Identity(
        instance.uuid, instance.project_id, nova_cloud_mysql.shared_secret, instance.address
    )
    mine, theirs = await crawl_both(str(ours.make_url("")), nova_metadata_app.base_url, identity)
    differences = compare(mine, theirs, {**WITH_NEUTRON, **PER_INSTANCE.get(name, {})})
    for d in unexplained(differences):
        print(f"  {d.path} {d.what}: ours={d.ours!r} nova={d.theirs!r}")
    assert unexplained(differences) == []
    # The leaf was crawled on every version Nova lists, and answered alike.
    crawled = [p for p in theirs.answers if p.endswith("/meta-data/security-groups")]
    assert crawled
    for path in crawled:
        assert mine.answers[path] == theirs.answers[path], path
    assert neutron.count("GET", "/network/v2.0/ports") >= 1
