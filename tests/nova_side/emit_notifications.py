"""Run with Nova 34.0.0's own interpreter (the side venv): Nova's own notifier code sends
versioned notifications about one instance to a transport URL.

Usage: python emit_notifications.py TRANSPORT_URL INSTANCE_UUID EVENT [EVENT...]
EVENT is one of: update, rebuild, shelve, interface_attach, delete. Each emits what Nova's
compute manager or API emits for it (`nova/compute/utils.py`, `nova/notifications/base.py`),
through `nova.rpc`'s versioned notifier and oslo.messaging's `messagingv2` driver.
Prints one line per event type emitted: the type and the wall-clock time Nova was asked to
emit it.
"""

import os
import sys
import tempfile
import time
from typing import Any

from nova import config, objects, rpc
from nova import context as nova_context
from nova.compute import utils as compute_utils
from nova.network import model as network_model
from nova.notifications import base as notifications_base
from nova.objects import fields
from oslo_utils import timeutils

NOVA_CONF = """[DEFAULT]
transport_url = {transport_url}
host = compute-1
[notifications]
notification_format = versioned
notify_on_state_change = vm_state
[oslo_messaging_notifications]
driver = messagingv2
"""


def configure(transport_url: str) -> None:
    """Nova's own start-up: nova.config.parse_args reads nova.conf and runs rpc.init."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as conf:
        conf.write(NOVA_CONF.format(transport_url=transport_url))
    objects.register_all()
    config.parse_args([sys.argv[0], "--config-file", conf.name], configure_db=False)
    os.unlink(conf.name)


def instance_for(instance_uuid: str, ctxt: Any) -> Any:
    """An instance held in memory with every field a payload reads, so nothing lazy-loads."""
    flavor = objects.Flavor(
        id=1,
        name="m1.peer",
        flavorid="peer-1",
        memory_mb=2048,
        vcpus=1,
        root_gb=20,
        ephemeral_gb=0,
        swap=0,
        rxtx_factor=1.0,
        vcpu_weight=0,
        disabled=False,
        is_public=True,
        extra_specs={},
        projects=[],
        description=None,
    )
    now = timeutils.utcnow()
    instance = objects.Instance(
        context=ctxt,
        id=1,
        uuid=instance_uuid,
        project_id="project-a",
        user_id="user-a",
        hostname="vm-1",
        display_name="vm-1",
        display_description="",
        host="compute-1",
        node="compute-1",
        os_type=None,
        architecture=None,
        availability_zone="nova",
        image_ref="a1b2c3d4-0000-4000-8000-000000000001",
        key_name="key-a",
        kernel_id="",
        ramdisk_id="",
        reservation_id="r-1",
        created_at=now,
        launched_at=now,
        terminated_at=None,
        deleted_at=None,
        updated_at=now,
        vm_state="active",
        power_state=1,
        task_state=None,
        progress=0,
        metadata={"role": "web"},
        system_metadata={},
        locked=False,
        locked_by=None,
        auto_disk_config=False,
        flavor=flavor,
        launch_index=0,
        deleted=False,
        cell_name=None,
        tags=objects.TagList(),
        info_cache=objects.InstanceInfoCache(
            instance_uuid=instance_uuid, network_info=network_model.NetworkInfo([])
        ),
        keypairs=objects.KeyPairList(objects=[]),
        trusted_certs=None,
        key_data=None,
        user_data=None,
        access_ip_v4=None,
        access_ip_v6=None,
        config_drive="",
        vcpus=1,
        memory_mb=2048,
        root_gb=20,
        ephemeral_gb=0,
        shutdown_terminate=False,
        disable_terminate=False,
        compute_id=1,
        instance_type_id=1,
    )
    instance.obj_reset_changes()
    return instance


def emit(event: str, ctxt: Any, instance: Any) -> list[str]:
    end = fields.NotificationPhase.END
    if event == "update":
        old = instance.obj_clone()
        instance.display_name = "vm-1-renamed"
        notifications_base.send_update(ctxt, old, instance)
        return ["instance.update"]
    if event == "rebuild":
        compute_utils.notify_about_instance_rebuild(ctxt, instance, "compute-1", phase=end)
        return ["instance.rebuild.end"]
    if event == "shelve":
        compute_utils.notify_about_instance_action(
            ctxt, instance, "compute-1", action=fields.NotificationAction.SHELVE, phase=end
        )
        return ["instance.shelve.end"]
    if event == "interface_attach":
        compute_utils.notify_about_instance_action(
            ctxt,
            instance,
            "compute-1",
            action=fields.NotificationAction.INTERFACE_ATTACH,
            phase=end,
        )
        return ["instance.interface_attach.end"]
    if event == "delete":
        with compute_utils.notify_about_instance_delete(
            rpc.get_notifier("compute"), ctxt, instance
        ):
            pass
        return ["instance.delete.start", "instance.delete.end"]
    raise SystemExit(f"unknown event {event!r}")


def main() -> None:
    transport_url, instance_uuid, events = sys.argv[1], sys.argv[2], sys.argv[3:]
    configure(transport_url)
    ctxt = nova_context.get_admin_context()
    instance = instance_for(instance_uuid, ctxt)
    for event in events:
        asked = time.time()
        for event_type in emit(event, ctxt, instance):
            print(f"{event_type}\t{asked}", flush=True)
    rpc.cleanup()


if __name__ == "__main__":
    main()
