"""Nova mode under a MariaDB user that may only SELECT: every seeded instance is served,
and nothing the service sends needs more than SELECT (a write would fail with 1142).

The cloud is private: its cell mappings are made templates (`{scheme}://{username}:…`,
as `nova-manage cell_v2 create_cell` accepts), so that each cell is reached with the
credentials of our nova.conf's `[database] connection`, the read-only user's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from loadtests.nova_peer import NovaCloud, StatementCounter, grant_read_only_user
from loadtests.nova_peer.grants import read_only_nova_conf, template_cell_mappings
from loadtests.nova_peer.parity import Identity
from metadata.app import build_guest_app
from metadata.services import Services
from tests.conftest import AIOHTTP_CLIENT
from tests.nova.test_nova_parity import nova_mode_settings

PATHS = (
    "/openstack/latest/meta_data.json",
    "/openstack/latest/network_data.json",
    "/latest/meta-data/instance-id",
    "/latest/meta-data/ami-id",
    "/openstack/latest",
)


async def test_nova_mode_serves_every_instance_with_select_only(
    new_nova_cloud: Callable[..., NovaCloud], tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    cloud = new_nova_cloud("mysql")
    template_cell_mappings(cloud)
    user, _, urls = grant_read_only_user(cloud)
    config = read_only_nova_conf(cloud, urls, tmp_path)
    async with Services.open(nova_mode_settings(config, tmp_path)) as services:
        assert services.nova is not None
        guest: TestClient[Any, Any] = await aiohttp_client(build_guest_app(services))
        for instance in cloud.instances:
            identity = Identity(instance.uuid, instance.project_id, cloud.shared_secret)
            for path in PATHS:
                response = await guest.get(path, headers=identity.headers())
                assert response.status == 200, (instance.name, path, await response.text())
        databases = services.nova.cells.databases
        # Every engine, cells included, is the read-only user's.
        assert {d.engine.url.username for d in databases} == {user}
        assert len(databases) == 5  # API, the local cell, and cells 0, 1 and 2 of the mappings
        assert services.nova.statements > 0


BOOT = (
    "/openstack",
    "/openstack/latest/meta_data.json",
    "/openstack/latest/user_data",
    "/openstack/latest/vendor_data.json",
    "/openstack/latest/vendor_data2.json",
    "/openstack/latest/network_data.json",
    "/latest/meta-data/instance-id",
)


async def test_statements_counted_by_mariadb_cold_leaf_cold_boot_and_warm(
    new_nova_cloud: Callable[..., NovaCloud], tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    """MariaDB's own per-user counters (our engines connect as a user of their own):
    at most 2 statements for a cold leaf, 4 for a cold cloud-init boot, none warm."""
    cloud = new_nova_cloud("mysql")
    template_cell_mappings(cloud)
    user, _, urls = grant_read_only_user(cloud)
    config = read_only_nova_conf(cloud, urls, tmp_path)
    counter = StatementCounter(user)
    figures: dict[str, list[int]] = {
        "cold leaf": [],
        "warm leaf": [],
        "cold boot": [],
        "cold boot, all at once": [],
    }
    async with Services.open(nova_mode_settings(config, tmp_path)) as services:
        guest: TestClient[Any, Any] = await aiohttp_client(build_guest_app(services))
        assert services.nova is not None and not await services.nova.readiness_problems()
        for instance in cloud.instances:
            headers = Identity(instance.uuid, instance.project_id, cloud.shared_secret).headers()
            for kind in ("cold leaf", "warm leaf"):
                counter.reset()
                response = await guest.get("/latest/meta-data/instance-id", headers=headers)
                assert response.status == 200
                figures[kind].append(counter.delta().statements)
    async with Services.open(nova_mode_settings(config, tmp_path)) as services:
        guest = await aiohttp_client(build_guest_app(services))
        assert services.nova is not None and not await services.nova.readiness_problems()
        for number, instance in enumerate(cloud.instances):
            headers = Identity(instance.uuid, instance.project_id, cloud.shared_secret).headers()
            counter.reset()
            for path in BOOT:
                response = await guest.get(path, headers=headers)
                assert response.status in (200, 404), path  # 404: an instance without user data
            # The first three boots teach the boot planner what a boot goes on to read.
            if number >= 3:
                figures["cold boot"].append(counter.delta().statements)
    async with Services.open(nova_mode_settings(config, tmp_path)) as services:
        guest = await aiohttp_client(build_guest_app(services))
        # connects to every database first, so no connection's set-up is counted below
        assert services.nova is not None and not await services.nova.readiness_problems()
        for number, instance in enumerate(cloud.instances):
            headers = Identity(instance.uuid, instance.project_id, cloud.shared_secret).headers()
            counter.reset()
            if number < 3:  # teach the planner, one request after the other
                statuses = [(await guest.get(path, headers=headers)).status for path in BOOT]
            else:  # a boot whose requests all arrive at once: single flight
                answers = await asyncio.gather(*(guest.get(p, headers=headers) for p in BOOT))
                statuses = [answer.status for answer in answers]
                figures["cold boot, all at once"].append(counter.delta().statements)
            assert set(statuses) <= {200, 404}
    print(f"\nstatements per request (MariaDB's counters): {figures}")
    assert max(figures["cold leaf"]) <= 2
    assert max(figures["warm leaf"]) == 0
    assert max(figures["cold boot"]) <= 4
    assert max(figures["cold boot, all at once"]) <= 4
