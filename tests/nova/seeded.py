"""A small Nova deployment on SQLite for tests that need no Nova install: Nova's tables as
the service declares them (`metadata.nova.schema`), rows shaped as Nova 34.0.0 writes them
(reference seed: instance_extra JSON primitives, info cache network model). The parity tests
against Nova's own schema and app live with the Nova peer fixtures."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from metadata.nova import schema as n

SECRET = "nova-test-secret"
CELL1_UUID = "8a3c6f3e-0000-4000-8000-000000000001"


@dataclass(frozen=True)
class SeededNova:
    conf_path: str
    api_url: str
    cell_url: str
    uuids: tuple[str, ...]


def instance_uuid(number: int) -> str:
    return f"3176dd06-b370-4351-83b2-{number:012x}"


def _flavor() -> str:
    return json.dumps(
        {
            "cur": {
                "nova_object.name": "Flavor",
                "nova_object.data": {
                    "id": 1,
                    "name": "m1.peer",
                    "memory_mb": 2048,
                    "vcpus": 1,
                    "root_gb": 20,
                },
            },
            "old": None,
            "new": None,
        }
    )


def _keypairs(number: int) -> str:
    return json.dumps(
        {
            "nova_object.name": "KeyPairList",
            "nova_object.data": {
                "objects": [
                    {
                        "nova_object.name": "KeyPair",
                        "nova_object.data": {
                            "name": f"key-{number}",
                            "type": "ssh",
                            "public_key": f"ssh-ed25519 AAAA{number} peer@example",
                        },
                    }
                ]
            },
            "nova_object.changes": ["objects"],
        }
    )


def _network_info(number: int) -> str:
    return json.dumps(
        [
            {
                "id": f"e8e3efdc-3841-4020-8a5c-{number:012x}",
                "address": f"fa:16:3e:00:00:{number:02x}",
                "network": {
                    "id": "net-private-0001",
                    "bridge": "br-int",
                    "label": "private",
                    "subnets": [
                        {
                            "cidr": "10.0.0.0/16",
                            "version": 4,
                            "dns": [{"address": "8.8.8.8", "type": "dns"}],
                            "gateway": {"address": "10.0.0.1", "type": "gateway"},
                            "ips": [
                                {
                                    "address": f"10.0.0.{10 + number}",
                                    "type": "fixed",
                                    "version": 4,
                                    "floating_ips": [
                                        {"address": f"172.24.0.{10 + number}", "type": "floating"}
                                    ],
                                }
                            ],
                            "routes": [],
                            "meta": {"dhcp_server": "10.0.0.2"},
                        }
                    ],
                    "meta": {"mtu": 1450, "tunneled": True},
                },
                "type": "ovs",
                "details": {"port_filter": True},
                "devname": f"tap3176dd06-{number:02x}",
                "active": True,
                "vnic_type": "normal",
                "profile": None,
                "meta": {},
            }
        ]
    )


async def seed_nova(
    tmp_path: Path, count: int = 3, transport_url: str = "rabbit://guest:guest@127.0.0.1:1/"
) -> SeededNova:
    api_url = f"sqlite+aiosqlite:///{tmp_path}/nova_api.db"
    cell_url = f"sqlite+aiosqlite:///{tmp_path}/nova_cell1.db"
    uuids = tuple(instance_uuid(i) for i in range(count))
    api = create_async_engine(api_url)
    async with api.begin() as conn:
        await conn.run_sync(n.api.create_all)
        # The cell's URL is a template, expanded against [database] connection as Nova does.
        await conn.execute(
            insert(n.cell_mappings).values(
                id=2,
                uuid=CELL1_UUID,
                name="cell1",
                transport_url="none:///",
                database_connection="{scheme}:///" + str(tmp_path) + "/nova_cell1.db",
                disabled=False,
            )
        )
        await conn.execute(
            insert(n.instance_mappings),
            [
                {
                    "instance_uuid": u,
                    "cell_id": 2,
                    "project_id": f"project-{i}",
                    "queued_for_delete": False,
                }
                for i, u in enumerate(uuids)
            ],
        )
    await api.dispose()
    cell = create_async_engine(cell_url)
    async with cell.begin() as conn:
        await conn.run_sync(n.cell.create_all)
        for i, uuid in enumerate(uuids):
            await conn.execute(
                insert(n.instances).values(
                    id=i + 1,
                    uuid=uuid,
                    deleted=0,
                    project_id=f"project-{i}",
                    user_id=f"user-{i}",
                    hostname=f"vm-{i:05d}",
                    display_name=f"vm-{i:05d}",
                    image_ref="a1b2c3d4-0000-4000-8000-000000000001",
                    kernel_id="",
                    ramdisk_id="",
                    key_name=f"key-{i}",
                    key_data=f"ssh-ed25519 AAAA{i} peer@example",
                    reservation_id=f"r-{i:08d}",
                    availability_zone="nova",
                    root_device_name="/dev/vda",
                    default_ephemeral_device="",
                    default_swap_device="",
                    launch_index=0,
                    user_data=base64.b64encode(
                        f"#cloud-config\nhostname: vm-{i}\n".encode()
                    ).decode()
                    if i != 1
                    else None,
                )
            )
            await conn.execute(
                insert(n.instance_metadata),
                [
                    {"instance_uuid": uuid, "key": "role", "value": "web", "deleted": 0},
                    {"instance_uuid": uuid, "key": "index", "value": str(i), "deleted": 0},
                    {"instance_uuid": uuid, "key": "gone", "value": "x", "deleted": 99},
                ],
            )
            await conn.execute(
                insert(n.instance_extra).values(
                    instance_uuid=uuid, deleted=0, flavor=_flavor(), keypairs=_keypairs(i)
                )
            )
            await conn.execute(
                insert(n.instance_info_caches).values(
                    instance_uuid=uuid, deleted=0, network_info=_network_info(i)
                )
            )
            await conn.execute(
                insert(n.block_device_mapping).values(
                    instance_uuid=uuid,
                    source_type="image",
                    destination_type="local",
                    device_name="/dev/vda",
                    boot_index=0,
                    deleted=0,
                )
            )
            await conn.execute(insert(n.instance_id_mappings).values(id=i + 1, uuid=uuid))
        await conn.execute(
            insert(n.s3_images).values(id=1, uuid="a1b2c3d4-0000-4000-8000-000000000001")
        )
    await cell.dispose()
    conf = tmp_path / "nova.conf"
    conf.write_text(
        f"[DEFAULT]\ntransport_url = {transport_url}\n"
        f"[api_database]\nconnection = sqlite:///{tmp_path}/nova_api.db\n"
        f"[database]\nconnection = sqlite:///{tmp_path}/nova_cell1.db\n"
        f"[neutron]\nmetadata_proxy_shared_secret = {SECRET}\n",
        encoding="utf-8",
    )
    return SeededNova(str(conf), api_url, cell_url, uuids)
