"""Nova's own code paths invalidate: on a real Nova cloud whose services send versioned
notifications to the machine's RabbitMQ, a metadata change saved by Nova's objects (what
`PUT /servers/{id}/metadata` does) is served at the next guest read, without waiting for
the staleness bound."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtests.nova_peer import NovaCloud
from loadtests.nova_peer.novarun import run_in_nova
from loadtests.nova_peer.parity import Identity
from metadata.services import Services
from tests import notifications_broker as broker
from tests.conftest import AIOHTTP_CLIENT
from tests.guest_http import GuestTestServer
from tests.nova.test_nova_parity import nova_mode_settings

WAIT = 30.0  # a bound for a test gone wrong, never a timing assertion
# Runs in Nova's venv: Nova's own objects, Nova's own notifier.
SAVE_METADATA = """
import json, sys
from nova import config, context, objects
config.parse_args([sys.argv[0], "--config-file", sys.argv[1]])
objects.register_all()
ctx = context.get_admin_context()
mapping = objects.InstanceMapping.get_by_instance_uuid(ctx, sys.argv[2])
with context.target_cell(ctx, mapping.cell_mapping) as cctx:
    instance = objects.Instance.get_by_uuid(cctx, sys.argv[2], expected_attrs=["metadata"])
    instance.metadata = dict(instance.metadata, role="changed-by-nova")
    instance.save()
print(json.dumps(dict(instance.metadata)))
"""


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    broker.require_rabbitmq()
    name = broker.new_vhost_name()
    broker.create_vhost(name)
    yield name
    broker.delete_vhost(name)


async def test_a_change_saved_by_novas_objects_is_served_at_the_next_read(
    vhost: str,
    new_nova_cloud: Callable[..., NovaCloud],
    tmp_path: Path,
    aiohttp_client: AIOHTTP_CLIENT,
) -> None:
    cloud = new_nova_cloud("mysql", notification_url=broker.transport_url(vhost))
    settings = nova_mode_settings(cloud.config_path, tmp_path, nova_max_staleness=3600)
    async with Services.open(settings) as services:
        assert services.nova is not None and services.nova.consumer is not None
        assert services.nova.consumer.is_connected
        guest = await aiohttp_client(GuestTestServer(services))
        instance = cloud.instance("web-1")
        headers = Identity(instance.uuid, instance.project_id, cloud.shared_secret).headers()

        async def meta() -> dict[str, Any]:
            response = await guest.get("/openstack/latest/meta_data.json", headers=headers)
            assert response.status == 200
            document: dict[str, Any] = json.loads(await response.read())
            return dict(document.get("meta", {}))

        assert (await meta()).get("role") != "changed-by-nova"
        saved = await asyncio.to_thread(
            run_in_nova,
            SAVE_METADATA,
            [str(cloud.config_path), instance.uuid],
            venv=cloud.venv,
            config_dir=cloud.folder,
        )
        published = time.perf_counter()
        assert json.loads(saved)["role"] == "changed-by-nova"
        # Polled: the news comes from another process through the broker.
        async with asyncio.timeout(WAIT):
            while True:
                if (await meta()).get("role") == "changed-by-nova":
                    break
                await asyncio.sleep(0.02)
        delay_ms = (time.perf_counter() - published) * 1000
        print(f"\nNova's save -> served: {delay_ms:.0f} ms after the saving process ended")
        assert services.nova.counters.applied >= 1
