"""Nova's stored values -> this service's slice records, as Nova 34.0.0 renders them.

Nova stores objects as JSON text of nova_object primitives (`instance_extra.*`) and the
network as JSON text of its network model (`instance_info_caches.network_info`). The rules
follow `nova/api/metadata/base.py`, `nova/virt/netutils.py get_network_metadata` and
`nova/block_device.py instance_block_mapping`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from metadata.records import FixedIP, Flavor, Key, Keys, Network, Port, Route, UserData

log = logging.getLogger(__name__)

# nova/network/model.py LEGACY_EXPOSED_VIF_TYPES: any other type is a "phy" link.
LEGACY_EXPOSED_VIF_TYPES = frozenset(
    {"bridge", "dvs", "hw_veb", "hyperv", "ovs", "tap", "vhostuser", "vif"}
)
# nova/block_device.py: what a NULL root device name maps to.
DEFAULT_BLOCK_DEVICE_MAPPING = (
    ("ami", "sda1"),
    ("ephemeral0", "sda2"),
    ("root", "/dev/sda1"),
    ("swap", "sda3"),
)
BUS_TYPES = {
    "PCIDeviceBus": "pci",
    "USBDeviceBus": "usb",
    "SCSIDeviceBus": "scsi",
    "IDEDeviceBus": "ide",
    "XenDeviceBus": "xen",
}


def json_text(text: str | None, what: str) -> Any:
    """Stored JSON, or None when absent or unreadable (logged: Nova would fail the load)."""
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        log.warning("Nova's %s is not JSON (%s); served as absent", what, exc)
        return None


def object_data(primitive: Any) -> Mapping[str, Any]:
    """The fields of a nova_object primitive (readers ignore `nova_object.changes`)."""
    if isinstance(primitive, Mapping):
        data = primitive.get("nova_object.data", primitive)
        if isinstance(data, Mapping):
            return data
    return {}


def hostname(name: str | None, dhcp_domain: str) -> str:
    """`_get_hostname`: the domain appended when `[api] dhcp_domain` is set."""
    return f"{name}.{dhcp_domain}" if dhcp_domain else str(name)


def ec2_id(prefix: str, number: int | None) -> str | None:
    """`id_to_ec2_id`: `i-0000002a`; None when Nova has no mapping row yet."""
    return None if number is None else f"{prefix}-{number:08x}"


def flavor(text: str | None) -> Flavor:
    cur = object_data((json_text(text, "instance_extra.flavor") or {}).get("cur"))
    return Flavor(
        name=str(cur.get("name", "")),
        vcpus=int(cur.get("vcpus") or 0),
        ram_mb=int(cur.get("memory_mb") or 0),
        disk_gb=int(cur.get("root_gb") or 0),
    )


def keys(key_name: str | None, key_data: str | None, keypairs_text: str | None) -> Keys:
    """meta_data.json: the first of `instance_extra.keypairs`; EC2: `key_name`/`key_data`.
    Both only when the instance has a key name."""
    if not key_name:
        return Keys((), ())
    pairs = object_data(json_text(keypairs_text, "instance_extra.keypairs")).get("objects")
    first = object_data(pairs[0]) if isinstance(pairs, list) and pairs else None
    openstack = (
        (Key(str(first.get("name")), str(first.get("type")), str(first.get("public_key"))),)
        if first
        else ()
    )
    return Keys(openstack, (Key(key_name, "ssh", str(key_data)),))


def user_data(text: str | None) -> UserData:
    if text is None:
        return UserData(None)
    try:
        # oslo's base64.decode_as_bytes: lenient, as Nova.
        return UserData(base64.b64decode(text))
    except (binascii.Error, ValueError):
        log.warning("Nova's instances.user_data is not base64; served as absent")
        return UserData(None)


def password(pairs: Iterable[tuple[str, str | None]]) -> str:
    """`extract_password`: every `password_*` system metadata value, in key order."""
    return "".join(value or "" for key, value in sorted(pairs) if key.startswith("password_"))


def strip_dev(name: str) -> str:
    return name[5:] if name.startswith("/dev/") else name


def block_device_mapping(
    root: str | None, ephemeral: str | None, swap: str | None, rows: Iterable[Mapping[str, Any]]
) -> tuple[tuple[str, str], ...]:
    """`instance_block_mapping`, names sorted as the EC2 listing prints them."""
    if root is None:
        return DEFAULT_BLOCK_DEVICE_MAPPING
    mapping: dict[str, str] = {"ami": strip_dev(root), "root": root}
    if ephemeral:
        mapping["ephemeral0"] = ephemeral
    if swap:
        mapping["swap"] = swap
    ebs: list[str | None] = []
    blanks: list[Mapping[str, Any]] = []
    for row in rows:
        if row.get("destination_type") == "volume":
            ebs.append(row.get("device_name"))
        elif row.get("source_type") == "blank":
            blanks.append(row)
    for number, device in enumerate(sorted(ebs, key=lambda d: (d is not None, d or ""))):
        mapping[f"ebs{number}"] = str(device)
    swaps = [b for b in blanks if b.get("guest_format") == "swap"]
    if swaps:
        mapping["swap"] = str(swaps[-1].get("device_name"))
    for number, blank in enumerate(b for b in blanks if b.get("guest_format") != "swap"):
        mapping[f"ephemeral{number}"] = str(blank.get("device_name"))
    return tuple(sorted(mapping.items()))


def dedicated_cpus(text: str | None) -> tuple[int, ...]:
    """The sorted union of the NUMA cells' `pcpuset`; a cell stored before version 1.5 with
    the dedicated policy has its pins in `cpuset` (Nova migrates it on load, and writes the
    result back; we only read)."""
    topology = json_text(text, "instance_extra.numa_topology")
    cells = object_data(topology).get("cells") or []
    pinned: set[int] = set()
    for cell in cells:
        data = object_data(cell)
        version = str(cell.get("nova_object.version", "1.6")) if isinstance(cell, dict) else ""
        legacy = tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) < (1, 5)
        if legacy and data.get("cpu_policy") == "dedicated":
            pinned.update(data.get("cpuset") or ())
        else:
            pinned.update(data.get("pcpuset") or ())
    return tuple(sorted(int(cpu) for cpu in pinned))


def devices(text: str | None) -> tuple[Mapping[str, Any], ...]:
    """Tagged devices as `_get_device_metadata` shows them at the newest version; the
    renderer drops what older versions lack."""
    stored = object_data(json_text(text, "instance_extra.device_metadata")).get("devices")
    shown: list[Mapping[str, Any]] = []
    for device in stored or ():
        kind = device.get("nova_object.name") if isinstance(device, dict) else None
        data = object_data(device)
        bus, address = "none", "none"
        if "bus" in data:
            bus_name = (
                data["bus"].get("nova_object.name") if isinstance(data["bus"], dict) else None
            )
            if bus_name not in BUS_TYPES:
                continue
            bus = BUS_TYPES[bus_name]
            address = object_data(data["bus"]).get("address", "none")
        entry: dict[str, Any]
        if kind == "NetworkInterfaceMetadata":
            # Every NIC: which versions show an untagged one is the renderer's rule. The
            # VLAN is the libvirt driver's copy of the VIF's `details.vlan` (Nova's metadata
            # API never reads the info cache for it); shown when set, 0 included.
            entry = {"type": "nic", "mac": data.get("mac")}
            if data.get("vlan") is not None:
                entry["vlan"] = data["vlan"]
            entry["vf_trusted"] = bool(data.get("vf_trusted", False))
        elif kind == "DiskMetadata":
            entry = {"type": "disk"}
            for name in ("serial", "path"):
                if name in data:
                    entry[name] = data[name]
        elif kind == "ShareMetadata":
            entry = {"type": "share", "share_id": data.get("share_id"), "tag": data.get("tag")}
        else:
            continue
        entry["bus"], entry["address"] = bus, address
        if "tags" in data:
            entry["tags"] = data["tags"]
        shown.append(entry)
    return tuple(shown)


def network(text: str | None) -> Network:
    """The info cache's VIFs as ports. Per network Nova serves the first IPv4 and the first
    IPv6 subnet, each from its first IP: those come first in `fixed_ips`, the rest (still
    counted by EC2's `local-ipv4`) after them."""
    vifs = json_text(text, "instance_info_caches.network_info")
    ports = []
    # Nova numbers `interface<N>` over the VIFs that have subnets only.
    number = -1
    for vif in vifs if isinstance(vifs, list) else ():
        net = vif.get("network") or {}
        subnets = net.get("subnets") or []
        if subnets:
            number += 1
        has_dhcp_server = any((s.get("meta") or {}).get("dhcp_server") for s in subnets)
        served: list[FixedIP] = []
        rest: list[FixedIP] = []
        floating: list[str] = []
        first_by_version: set[int] = set()
        for subnet in subnets:
            version = int(subnet.get("version") or 4)
            for index, ip in enumerate(subnet.get("ips") or ()):
                fixed = _fixed_ip(subnet, ip)
                if index == 0 and version not in first_by_version:
                    served.append(fixed)
                else:
                    rest.append(fixed)
                floating.extend(f["address"] for f in ip.get("floating_ips") or ())
            first_by_version.add(version)
        vif_type = vif.get("type")
        ports.append(
            Port(
                id=str(vif.get("id")),
                mac=str(vif.get("address")),
                network_id=str(net.get("id")),
                mtu=None if has_dhcp_server else (net.get("meta") or {}).get("mtu"),
                type=vif_type if vif_type in LEGACY_EXPOSED_VIF_TYPES else "phy",
                link_name=vif.get("devname") or f"interface{max(number, 0)}",
                fixed_ips=tuple(served + rest),
                floating_ips=tuple(floating),
            )
        )
    return Network(tuple(ports))


def _fixed_ip(subnet: Mapping[str, Any], ip: Mapping[str, Any]) -> FixedIP:
    meta = subnet.get("meta") or {}
    mode = "static"
    if meta.get("ipv6_address_mode"):
        mode = str(meta["ipv6_address_mode"])
    elif meta.get("dhcp_server") is not None or meta.get("enable_dhcp"):
        mode = "dhcp"
    gateway = (subnet.get("gateway") or {}).get("address")
    return FixedIP(
        address=str(ip.get("address")),
        cidr=str(subnet.get("cidr")),
        gateway=gateway or None,
        dns=tuple(str(d.get("address")) for d in subnet.get("dns") or ()),
        routes=tuple(
            Route(str(r.get("cidr")), str((r.get("gateway") or {}).get("address")))
            for r in subnet.get("routes") or ()
        ),
        mode=mode,
    )
