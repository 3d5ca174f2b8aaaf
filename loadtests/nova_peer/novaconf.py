"""The nova.conf of a harness cloud, written as an operator would write it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# The static vendor data every cloud serves (vendor_data.json, vendor_data2.json "static").
VENDOR_DATA = {"cloud": "nova-peer", "ntp": ["ntp1.cloud.test", "ntp2.cloud.test"], "tier": 2}


@dataclass(frozen=True, slots=True)
class NovaConfOptions:
    api_database: str
    cell_database: str  # [database] connection: the cell nova-manage and the app default to
    shared_secret: str
    dhcp_domain: str
    vendor_data_file: Path
    state_dir: Path
    host: str
    # None: notifications off (the noop driver); else Nova's versioned notifications
    # go there through oslo.messaging's messagingv2 driver
    notification_url: str | None = None


def render_nova_conf(options: NovaConfOptions) -> str:
    if options.notification_url:
        notifications = (
            "[notifications]\n"
            "notification_format = versioned\n"
            "notify_on_state_change = vm_state\n\n"
            "[oslo_messaging_notifications]\n"
            "driver = messagingv2\n"
            f"transport_url = {options.notification_url}\n"
        )
    else:
        notifications = "[oslo_messaging_notifications]\ndriver = noop\n"
    return f"""[DEFAULT]
host = {options.host}
state_path = {options.state_dir}
# RPC is never used by the metadata API or nova-manage here
transport_url = fake:/
debug = False

[api]
dhcp_domain = {options.dhcp_domain}
# look the instance's cell up in the API database, as a multi-cell deployment does
local_metadata_per_cell = False
metadata_cache_expiration = 15
vendordata_providers = StaticJSON
vendordata_jsonfile_path = {options.vendor_data_file}

[neutron]
service_metadata_proxy = True
metadata_proxy_shared_secret = {options.shared_secret}

[database]
connection = {options.cell_database}

[api_database]
connection = {options.api_database}

[oslo_concurrency]
lock_path = {options.state_dir / "locks"}

{notifications}"""


def write_nova_conf(folder: Path, options: NovaConfOptions) -> Path:
    (options.state_dir / "locks").mkdir(parents=True, exist_ok=True)
    options.vendor_data_file.write_text(json.dumps(VENDOR_DATA, indent=1))
    path = folder / "nova.conf"
    path.write_text(render_nova_conf(options))
    return path


def write_override(folder: Path, name: str, section: str, **values: object) -> Path:
    """A small extra config file (later files win, as Nova's --config-file does)."""
    path = folder / name
    lines = [f"[{section}]", *(f"{key} = {value}" for key, value in values.items())]
    path.write_text("\n".join(lines) + "\n")
    return path
