"""The NoCloud tree (`/nocloud/…`) for guests booted with
`ds=nocloud;s=http://169.254.169.254/nocloud/`: cloud-init's seed files, rendered from the
same slices as the other trees.

cloud-init reads a seed URL with 10 retries a second apart and retries a 404 like any error
(`util.read_seeded`, `url_helper.readurl`), so a missing file would cost a guest ~10 s at
boot, and a missing `meta-data` or `user-data` fails the datasource. Every file therefore
answers 200, empty when the instance has nothing for it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import orjson

from metadata.guest.openstack import vendor_data
from metadata.guest.tree import Answer, Leaf, Tree, View
from metadata.records import FixedIP, Port, Slice

# The tree has no version segment; its rows are matched as this version.
VERSION = "nocloud"
YAML = "text/plain"


def _scalar(value: str | int | bool) -> str:
    # A JSON string is a YAML double-quoted scalar: no value can change the structure.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return orjson.dumps(value).decode()


def to_yaml(value: Mapping[str, Any], indent: int = 0) -> str:
    """Block-style YAML of nested mappings and lists of strings, integers and booleans."""
    out = []
    pad = " " * indent
    for key, item in value.items():
        if isinstance(item, Mapping):
            out.append(
                f"{pad}{key}:\n{to_yaml(item, indent + 2)}" if item else f"{pad}{key}: {{}}\n"
            )
        elif isinstance(item, list):
            out.append(f"{pad}{key}:\n" if item else f"{pad}{key}: []\n")
            for entry in item:
                if isinstance(entry, Mapping):
                    inner = to_yaml(entry, indent + 4)
                    out.append(f"{pad}  - {inner[indent + 4 :]}")
                else:
                    out.append(f"{pad}  - {_scalar(entry)}\n")
        else:
            out.append(f"{pad}{key}: {_scalar(item)}\n")
    return "".join(out)


def meta_data(view: View) -> Answer:
    core = view.core
    doc: dict[str, Any] = {"instance-id": core.uuid, "local-hostname": core.hostname}
    keys = [k.data for k in view.keys.keys if k.type == "ssh"]
    if keys:
        doc["public-keys"] = keys
    return Answer(to_yaml(doc).encode(), YAML)


def _prefixed(ip: FixedIP) -> str:
    return f"{ip.address}/{ipaddress.ip_network(ip.cidr, strict=False).prefixlen}"


def _ethernet(port: Port) -> dict[str, Any]:
    """One port as a netplan-style v2 ethernet, matched by MAC (the guest names it)."""
    entry: dict[str, Any] = {"match": {"macaddress": port.mac}}
    addresses: list[str] = []
    routes: list[dict[str, str]] = []
    dns: list[str] = []
    for ip in port.fixed_ips:
        if ip.mode == "static":
            addresses.append(_prefixed(ip))
            if ip.gateway:
                # `to: default` is parsed by cloud-init only from 25.3; Debian 12 has 22.4.
                anywhere = "0.0.0.0/0" if ip.version == 4 else "::/0"
                routes.append({"to": anywhere, "via": ip.gateway})
        elif ip.mode == "slaac":
            entry["accept-ra"] = True
        else:  # dhcp, dhcpv6-stateful, dhcpv6-stateless
            entry[f"dhcp{ip.version}"] = True
        routes.extend({"to": r.cidr, "via": r.gateway} for r in ip.routes)
        dns.extend(d for d in ip.dns if d not in dns)
    if addresses:
        entry["addresses"] = addresses
    if routes:
        entry["routes"] = routes
    if dns:
        entry["nameservers"] = {"addresses": dns}
    if port.mtu:
        entry["mtu"] = port.mtu
    return entry


def network_config(view: View) -> Answer:
    """Network config version 2 from the ports with fixed IPs; empty without any, which
    cloud-init reads as "no config" and falls back to DHCP on the first NIC."""
    ethernets = {
        f"eth{number}": _ethernet(port)
        for number, port in enumerate(view.network.ports)
        if port.fixed_ips
    }
    if not ethernets:
        return Answer(b"", YAML)
    return Answer(to_yaml({"version": 2, "ethernets": ethernets}).encode(), YAML)


def vendor_data_file(static: Mapping[str, Any], view: View) -> Answer:
    """The `cloud-init` string of vendor_data.json, as cloud-init's OpenStack datasource
    takes it from there; empty when there is none."""
    value = vendor_data(static, view).get("cloud-init")
    return Answer(value.encode() if isinstance(value, str) else b"")


def build_tree(static_vendor_data: Mapping[str, Any]) -> Tree:
    core = frozenset({Slice.CORE})
    leaves = (
        Leaf("meta-data", meta_data, core | {Slice.KEYS}, boot_critical=True),
        Leaf(
            "user-data",
            lambda v: Answer(v.user_data.data or b""),
            frozenset({Slice.USER_DATA}),
            boot_critical=True,
        ),
        Leaf(
            "vendor-data",
            lambda v: vendor_data_file(static_vendor_data, v),
            frozenset({Slice.VENDOR_DATA}),
        ),
        Leaf("network-config", network_config, frozenset({Slice.NETWORK}), boot_critical=True),
    )
    # Like the OpenStack reader, cloud-init's NoCloud seed reader never sends a token.
    return Tree(leaves, (), "/nocloud", token_by_default=False)
