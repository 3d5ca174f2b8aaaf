"""The OpenStack tree (`/openstack/<version>/…`): one row per file, rendered as Nova does."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from metadata.guest.tree import Answer, Leaf, Tree, View
from metadata.records import FixedIP, Port, Slice

FOLSOM, GRIZZLY, HAVANA, LIBERTY = "2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15"
NEWTON_ONE, NEWTON_TWO, OCATA = "2016-06-30", "2016-10-06", "2017-02-22"
ROCKY, VICTORIA, EPOXY = "2018-08-27", "2020-10-14", "2025-04-04"
VERSIONS = (FOLSOM, GRIZZLY, HAVANA, LIBERTY, NEWTON_ONE, NEWTON_TWO, OCATA, ROCKY, VICTORIA, EPOXY)
JSON = "application/json"
SEED_KEY = b',"random_seed":"'


def json_answer(value: Any) -> Answer:
    return Answer(orjson.dumps(value), JSON)


def served_versions(today: str | None = None) -> list[str]:
    """Versions dated in the future are hidden, as Nova hides them."""
    today = today or datetime.now(UTC).strftime("%Y-%m-%d")
    return [v for v in VERSIONS if v <= today]


def served_version(name: str) -> str | None:
    served = served_versions()
    if name == "latest":
        return served[-1]
    return name if name in served else None


def version_listing() -> bytes:
    return "\n".join([*served_versions(), "latest"]).encode()


def _nic_is_shown(device: Mapping[str, Any], version: str) -> bool:
    """Nova's `_get_device_metadata` skips a NIC with neither tags, nor a VLAN (shown from
    OCATA) nor vf_trusted (always there from ROCKY)."""
    if "tags" in device or version >= ROCKY:
        return True
    return version >= OCATA and "vlan" in device


def _devices(view: View) -> list[dict[str, Any]]:
    version = view.version
    shown = []
    for device in view.core.devices:
        if device.get("type") == "share" and version < EPOXY:
            continue
        if device.get("type") == "nic" and not _nic_is_shown(device, version):
            continue
        entry = dict(device)
        if version < OCATA:
            entry.pop("vlan", None)
        if version < ROCKY:
            entry.pop("vf_trusted", None)
        if version < EPOXY:
            entry.pop("share_id", None)
            entry.pop("tag", None)
        shown.append(entry)
    return shown


def meta_data_json(view: View) -> Answer:
    core, version = view.core, view.version
    doc: dict[str, Any] = {"uuid": core.uuid}
    if view.metadata.items:
        doc["meta"] = dict(view.metadata.items)
    if view.keys.keys:
        doc["public_keys"] = {k.name: k.data for k in view.keys.keys}
        doc["keys"] = [{"name": k.name, "type": k.type, "data": k.data} for k in view.keys.keys]
    doc["hostname"] = core.hostname
    doc["name"] = core.name
    doc["launch_index"] = core.launch_index
    doc["availability_zone"] = core.availability_zone
    if version >= LIBERTY:
        doc["project_id"] = core.project_id
    if version >= NEWTON_ONE:
        doc["devices"] = _devices(view)
    if version >= VICTORIA:
        doc["dedicated_cpus"] = list(core.dedicated_cpus)
    body = orjson.dumps(doc)
    if version < GRIZZLY:
        return Answer(body, JSON)
    # random_seed is fresh per request: keep a hole for it just before the closing quote.
    body = body[:-1] + SEED_KEY + b'"}'
    return Answer(body, JSON, seed_at=len(body) - 2)


def _netmask(ip: FixedIP) -> str:
    return str(ipaddress.ip_network(ip.cidr, strict=False).netmask)


def _network_entry(port: Port, link_id: str, ip: FixedIP, number: int) -> dict[str, Any]:
    net_id = f"network{number}"
    if ip.mode == "dhcp":
        return {
            "id": net_id,
            "type": f"ipv{ip.version}_dhcp",
            "link": link_id,
            "network_id": port.network_id,
        }
    kind = "ipv4" if ip.version == 4 else "ipv6"
    if ip.version == 6 and ip.mode != "static":
        kind = "ipv6_" + ip.mode
    routes = []
    if ip.gateway:
        anywhere = "0.0.0.0" if ip.version == 4 else "::"
        routes.append({"network": anywhere, "netmask": anywhere, "gateway": ip.gateway})
    for route in ip.routes:
        net = ipaddress.ip_network(route.cidr, strict=False)
        routes.append(
            {
                "network": str(net.network_address),
                "netmask": str(net.netmask),
                "gateway": route.gateway,
            }
        )
    entry: dict[str, Any] = {
        "id": net_id,
        "type": kind,
        "link": link_id,
        "ip_address": ip.address,
        "netmask": _netmask(ip),
        "routes": routes,
        "network_id": port.network_id,
        "services": [{"type": "dns", "address": d} for d in ip.dns],
    }
    return entry


def network_data(view: View) -> Answer:
    ports = view.network.ports
    if not ports:
        return json_answer({})
    links: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    services: list[dict[str, str]] = []
    seen_dns: set[str] = set()
    for port in ports:
        if not port.fixed_ips:
            continue
        link_id = port.link_name or "tap" + port.id[:11]
        # Nova (netutils._get_eth_link) names an `ethernet` VIF a physical link.
        kind = "phy" if port.type == "ethernet" else port.type
        links.append(
            {
                "id": link_id,
                "vif_id": port.id,
                "type": kind,
                "mtu": port.mtu,
                "ethernet_mac_address": port.mac,
            }
        )
        # Nova serves the first IPv4 and the first IPv6 subnet of each port, and only
        # their DNS servers: a second subnet's are left out (get_network_metadata).
        for version in (4, 6):
            first = next((ip for ip in port.fixed_ips if ip.version == version), None)
            if first is None:
                continue
            networks.append(_network_entry(port, link_id, first, len(networks)))
            for dns in first.dns:
                if dns not in seen_dns:
                    seen_dns.add(dns)
                    services.append({"type": "dns", "address": dns})
    return json_answer({"links": links, "networks": networks, "services": services})


def vendor_data(static: Mapping[str, Any], view: View) -> dict[str, Any]:
    """The global static vendor data (settings) with the instance's keys on top."""
    return {**static, **view.vendor_data.data}


def vendor_data2(static: Mapping[str, Any], view: View) -> Answer:
    """`static` first, then each dynamic service that answered, under its name."""
    return json_answer({"static": vendor_data(static, view), **view.dynamic_vendor_data.answers})


def build_tree(static_vendor_data: Mapping[str, Any]) -> Tree:
    core_meta_keys = frozenset({Slice.CORE, Slice.METADATA, Slice.KEYS})
    user_data = frozenset({Slice.USER_DATA})
    vendor = frozenset({Slice.VENDOR_DATA})
    leaves = (
        Leaf("meta_data.json", meta_data_json, core_meta_keys, FOLSOM, boot_critical=True),
        Leaf(
            "user_data",
            lambda v: Answer(v.user_data.data or b""),
            user_data,
            FOLSOM,
            present=lambda v: v.user_data.data is not None,
            present_needs=user_data,
            etag=True,
            waitable=True,
            boot_critical=True,
        ),
        Leaf(
            "password",
            lambda v: Answer(v.password.value.encode()),
            frozenset({Slice.PASSWORD}),
            GRIZZLY,
            methods=frozenset({"POST"}),
        ),
        Leaf(
            "vendor_data.json",
            lambda v: json_answer(vendor_data(static_vendor_data, v)),
            vendor,
            HAVANA,
        ),
        Leaf(
            "network_data.json",
            network_data,
            frozenset({Slice.NETWORK}),
            LIBERTY,
            boot_critical=True,
        ),
        Leaf(
            "vendor_data2.json",
            lambda v: vendor_data2(static_vendor_data, v),
            vendor | {Slice.DYNAMIC_VENDOR_DATA},
            NEWTON_TWO,
        ),
    )
    # cloud-init's OpenStack reader never sends a token: none by default in this tree.
    return Tree(leaves, (), "/openstack/{version}", token_by_default=False)
