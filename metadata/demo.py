"""`metadata serve --demo`: one example instance, owned by 127.0.0.1, seeded into the
embedded database before the listeners start, so that a newcomer's first
`curl http://127.0.0.1:8775/latest/meta-data/instance-id` on the same machine is answered.

Seeding is idempotent: an instance already stored under the demo uuid is left as it is
(a second start neither duplicates it nor undoes what the operator changed since). The
demo refuses a database that is not SQLite unless forced: seeding an operator's shared
PostgreSQL or MariaDB with an instance that claims 127.0.0.1 is never what a typo wanted.
`examples/instance.json` holds the same document (tests/test_demo.py keeps them equal).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from metadata.config import Settings, mask_url_password
from metadata.document import parse_document
from metadata.errors import InstanceNotFound, InvalidSettings
from metadata.store.engine import Database
from metadata.store.store import Store

log = logging.getLogger(__name__)

DEMO_UUID = "0e5b4f4e-6d1c-4f6a-9a57-3c3f1c2b9d10"
DEMO_ADDRESS = "127.0.0.1"
DEMO_USER_DATA = b"""#cloud-config
# The demo instance's user data: served at /latest/user-data and
# /openstack/latest/user_data. Replace it with examples/user-data.yaml (see README.md).
write_files:
  - path: /etc/motd
    content: "Hello from the metadata service demo\\n"
"""
DEMO_DOCUMENT: dict[str, Any] = {
    "uuid": DEMO_UUID,
    "name": "demo-1",
    "hostname": "demo-1",
    "project_id": "demo-project",
    "user_id": "demo-user",
    "availability_zone": "az1",
    "launch_index": 0,
    "image_id": "7d1a3c50-5f0e-4b8e-9d6a-2b4f1e0c9a11",
    "flavor": {"name": "m1.small", "vcpus": 1, "ram_mb": 2048, "disk_gb": 20},
    "metadata": {"role": "demo"},
    "keys": [
        {
            "name": "demo-key",
            "type": "ssh",
            "data": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoKeyNotForUseAnywhere00000000000 demo",
        }
    ],
    "ports": [
        {
            "id": "demo-port-1",
            "mac": "fa:16:3e:00:00:01",
            "network_id": "demo-net",
            "mtu": 1500,
            "fixed_ips": [{"address": DEMO_ADDRESS, "cidr": "127.0.0.0/8"}],
            "floating_ips": ["203.0.113.10"],
        }
    ],
    "user_data": base64.b64encode(DEMO_USER_DATA).decode(),
    "vendor_data": {"demo": True},
}
# The backends that count as the embedded database: a local file (or memory) of this host.
EMBEDDED_PREFIX = "sqlite+aiosqlite://"


def check_demo_database(settings: Settings, force: bool) -> None:
    """Refuse to seed a database that is not the embedded SQLite one, unless forced."""
    if force or settings.database_url.startswith(EMBEDDED_PREFIX):
        return
    shown = mask_url_password(settings.database_url)
    raise InvalidSettings(
        [
            f"--demo seeds an example instance owned by {DEMO_ADDRESS}, and {shown} "
            "is not the embedded SQLite database; use --force-demo to seed it there"
        ]
    )


async def seed_demo_instance(settings: Settings) -> bool:
    """Store the demo instance unless it is there already; whether it was stored now."""
    db = Database(settings.database_url, timeout=settings.database_timeout)
    try:
        store = Store(db, settings.user_data_history)
        await store.migrate()
        try:
            await store.get_document(DEMO_UUID)
        except InstanceNotFound:
            pass
        else:
            log.info("demo instance %s already present: left as it is", DEMO_UUID)
            return False
        owners = [uuid for uuid, _ in await store.find_instances_by_address(DEMO_ADDRESS)]
        if owners:
            # A second owner would make the address ambiguous: every request from it refused.
            log.warning(
                "demo instance not seeded: %s already belongs to instance %s",
                DEMO_ADDRESS,
                owners[0],
            )
            return False
        document = parse_document(DEMO_DOCUMENT, user_data_max_bytes=settings.user_data_max_bytes)
        await store.put_document(document, "demo")
    finally:
        await db.dispose()
    log.info(
        "demo instance %s (%s) owned by %s: try curl http://%s/latest/meta-data/instance-id",
        DEMO_UUID,
        DEMO_DOCUMENT["name"],
        DEMO_ADDRESS,
        settings.listen[0],
    )
    return True


def prepare_demo(settings: Settings, force: bool) -> None:
    """What `metadata serve --demo` does before it serves (InvalidSettings when refused)."""
    check_demo_database(settings, force)
    asyncio.run(seed_demo_instance(settings))
