"""Instance documents: validate the JSON an operator sends and turn it into records, and back.

Every problem is an `InvalidDocument` naming the field (`ports[0].fixed_ips[1].address`),
raised before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import uuid as uuid_module
from collections.abc import Mapping
from typing import Any

from metadata.errors import InvalidDocument, UserDataTooLarge
from metadata.records import (
    FixedIP,
    Flavor,
    InstanceCore,
    InstanceDocument,
    Key,
    Keys,
    MetadataItems,
    Network,
    Port,
    Route,
    UserData,
    VendorData,
)

KNOWN_FIELDS = frozenset(
    {
        "uuid",
        "name",
        "hostname",
        "project_id",
        "user_id",
        "availability_zone",
        "launch_index",
        "image_id",
        "ami_id",
        "kernel_id",
        "ramdisk_id",
        "ec2_id",
        "reservation_id",
        "flavor",
        "security_groups",
        "block_device_mapping",
        "devices",
        "dedicated_cpus",
        "metadata",
        "keys",
        "ports",
        "user_data",
        "vendor_data",
        "region",
        "tags",
        "instance_metadata_tags",
    }
)
MAX_TEXT = 255
MAX_METADATA_ITEMS = 128
MAX_KEYS = 32
MAX_PORTS = 32
MAX_KEY_DATA = 16384
# The column widths of store/schema.py: a longer value would be a driver error, not a 400.
MAX_PORT_TYPE = 32
EC2_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# Hostnames and names are served as EC2 scalars: a newline would turn them into a list in
# cloud-init, so control characters are refused everywhere a scalar comes from.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Key data may be multi-line PEM, but a NUL is refused by PostgreSQL's text type.
KEY_DATA_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
IPV6_MODES = ("static", "dhcp", "slaac", "dhcpv6-stateful", "dhcpv6-stateless")
MAX_TAGS = 50  # AWS's limit per resource
# What AWS allows in a tag key once tags are in instance metadata: the key is a path
# segment there, so no `/` or space, and not `.`, `..` or `_index`.
TAG_KEY = re.compile(r"^[A-Za-z0-9+\-=.,_:@]{1,128}$")
RESERVED_TAG_KEYS = frozenset({".", "..", "_index"})
REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def normalise_uuid(text: str, field: str = "uuid") -> str:
    try:
        parsed = uuid_module.UUID(text)
    except (ValueError, AttributeError, TypeError):
        raise InvalidDocument(field, "must be a UUID") from None
    return str(parsed)


def _text(
    doc: Mapping[str, Any],
    field: str,
    *,
    default: str | None = None,
    limit: int = MAX_TEXT,
    path: str = "",
) -> str:
    name = path + field
    value = doc.get(field, default)
    if value is None:
        raise InvalidDocument(name, "is required")
    if not isinstance(value, str):
        raise InvalidDocument(name, "must be a string")
    if len(value) > limit:
        raise InvalidDocument(name, f"must be at most {limit} characters")
    if CONTROL.search(value):
        raise InvalidDocument(name, "must not contain control characters")
    return value


def _optional_text(doc: Mapping[str, Any], field: str, path: str = "") -> str | None:
    if doc.get(field) is None:
        return None
    # "" means absent: document_to_json leaves it out, so keeping "" would not round-trip.
    return _text(doc, field, path=path) or None


def _int(
    doc: Mapping[str, Any],
    field: str,
    default: int,
    *,
    minimum: int = 0,
    maximum: int = 2**31 - 1,
    path: str = "",
) -> int:
    value = doc.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidDocument(path + field, "must be an integer")
    if not minimum <= value <= maximum:
        raise InvalidDocument(path + field, f"must be between {minimum} and {maximum}")
    return value


def _list(doc: Mapping[str, Any], field: str, limit: int, path: str = "") -> list[Any]:
    value = doc.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidDocument(path + field, "must be a list")
    if len(value) > limit:
        raise InvalidDocument(path + field, f"must have at most {limit} entries")
    return value


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidDocument(name, "must be an object")
    return value


def _optional_object(
    doc: Mapping[str, Any], field: str, default: Mapping[str, Any]
) -> Mapping[str, Any]:
    """The object in `field`; null, absent or {} give the default, any other type is refused
    (a falsy `0` or `""` must not pass for an empty object)."""
    value = doc.get(field)
    if value is None:
        return default
    return _object(value, field) or default


def _ip(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidDocument(name, "must be an IP address string")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidDocument(name, f"{value!r} is not an IP address") from None


def _flavor(doc: Mapping[str, Any]) -> Flavor:
    raw = _optional_object(doc, "flavor", {"name": "m1.small"})
    return Flavor(
        name=_text(raw, "name", path="flavor."),
        vcpus=_int(raw, "vcpus", 1, minimum=1, path="flavor."),
        ram_mb=_int(raw, "ram_mb", 512, minimum=1, path="flavor."),
        disk_gb=_int(raw, "disk_gb", 1, path="flavor."),
    )


def _block_device_mapping(doc: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = _optional_object(doc, "block_device_mapping", {"ami": "vda", "root": "/dev/vda"})
    mapping = []
    for name in raw:
        if not re.fullmatch(r"ami|root|swap|ebs\d+|ephemeral\d+", name):
            raise InvalidDocument(
                f"block_device_mapping.{name}", "names are ami, root, swap, ebsN or ephemeralN"
            )
        mapping.append((name, _text(raw, name, path="block_device_mapping.")))
    return tuple(sorted(mapping))


def _devices(doc: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    devices = []
    for index, raw in enumerate(_list(doc, "devices", 64)):
        device = dict(_object(raw, f"devices[{index}]"))
        if device.get("type") not in ("nic", "disk", "share"):
            raise InvalidDocument(f"devices[{index}].type", "must be nic, disk or share")
        devices.append(device)
    return tuple(devices)


def _core(doc: Mapping[str, Any], uuid: str) -> InstanceCore:
    hostname = _text(doc, "hostname")
    if not hostname:
        raise InvalidDocument("hostname", "must not be empty")
    ec2_id = _optional_text(doc, "ec2_id") or "i-" + uuid.replace("-", "")[:17]
    if not EC2_ID.match(ec2_id):
        raise InvalidDocument("ec2_id", "must look like i- followed by 8 to 17 hex digits")
    image_id = _text(doc, "image_id", default="")
    cpus = _list(doc, "dedicated_cpus", 4096)
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cpus):
        raise InvalidDocument("dedicated_cpus", "must be a list of CPU numbers")
    groups = _list(doc, "security_groups", 64) if "security_groups" in doc else ["default"]
    opted_in = doc.get("instance_metadata_tags", False)
    if not isinstance(opted_in, bool):
        raise InvalidDocument("instance_metadata_tags", "must be true or false")
    return InstanceCore(
        uuid=uuid,
        generation=0,
        ec2_id=ec2_id,
        name=_text(doc, "name", default=hostname),
        hostname=hostname,
        project_id=_text(doc, "project_id"),
        user_id=_text(doc, "user_id", default=""),
        availability_zone=_text(doc, "availability_zone", default="nova"),
        launch_index=_int(doc, "launch_index", 0),
        image_id=image_id,
        ami_id=_optional_text(doc, "ami_id") or derive_ami_id(image_id),
        kernel_id=_optional_text(doc, "kernel_id"),
        ramdisk_id=_optional_text(doc, "ramdisk_id"),
        reservation_id=_optional_text(doc, "reservation_id") or "r-" + uuid.replace("-", "")[-8:],
        flavor=_flavor(doc),
        security_groups=tuple(
            _text({f"security_groups[{i}]": g}, f"security_groups[{i}]")
            for i, g in enumerate(groups)
        ),
        block_device_mapping=_block_device_mapping(doc),
        devices=_devices(doc),
        dedicated_cpus=tuple(cpus),
        region=_region(doc),
        tags=_tags(doc),
        instance_metadata_tags=opted_in,
    )


def _region(doc: Mapping[str, Any]) -> str | None:
    region = _optional_text(doc, "region")
    if region is not None and not REGION.match(region):
        raise InvalidDocument("region", "must be lower-case letters, digits and '-' (us-east-1)")
    return region


def _tags(doc: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = _optional_object(doc, "tags", {})
    if len(raw) > MAX_TAGS:
        raise InvalidDocument("tags", f"must have at most {MAX_TAGS} tags")
    tags = []
    for key in raw:
        if not isinstance(key, str) or not TAG_KEY.match(key) or key in RESERVED_TAG_KEYS:
            raise InvalidDocument(
                f"tags.{key}",
                "keys are 1 to 128 of A-Z a-z 0-9 + - = . , _ : @, and not '.', '..' or '_index'",
            )
        tags.append((key, _text(raw, key, path="tags.")))
    return tuple(sorted(tags))


def derive_ami_id(image_id: str) -> str:
    """EC2 wants `ami-<hex>`; a Glance image UUID gives its first 8 hex digits, as Nova's
    mapping ids have 8; anything else already EC2-shaped is kept."""
    if image_id.startswith("ami-"):
        return image_id
    try:
        return "ami-" + uuid_module.UUID(image_id).hex[:8]
    except ValueError:
        return "ami-" + (re.sub(r"[^0-9a-f]", "", image_id.lower())[:8].rjust(8, "0"))


def _metadata(doc: Mapping[str, Any]) -> MetadataItems:
    raw = _optional_object(doc, "metadata", {})
    if len(raw) > MAX_METADATA_ITEMS:
        raise InvalidDocument("metadata", f"must have at most {MAX_METADATA_ITEMS} items")
    items = {}
    for key in raw:
        if not isinstance(key, str) or not 0 < len(key) <= MAX_TEXT:
            raise InvalidDocument("metadata", "keys must be 1 to 255 characters")
        if CONTROL.search(key):
            raise InvalidDocument("metadata", "keys must not contain control characters")
        items[key] = _text(raw, key, path="metadata.")
    return MetadataItems(items)


def _keys(doc: Mapping[str, Any]) -> Keys:
    keys = []
    for index, raw in enumerate(_list(doc, "keys", MAX_KEYS)):
        path = f"keys[{index}]."
        entry = _object(raw, f"keys[{index}]")
        kind = _text(entry, "type", default="ssh", path=path)
        if kind not in ("ssh", "x509"):
            raise InvalidDocument(path + "type", "must be ssh or x509")
        name = _text(entry, "name", path=path)
        if not name or "=" in name or "/" in name:
            raise InvalidDocument(path + "name", "must be non-empty, without '=' or '/'")
        data = entry.get("data")
        if not isinstance(data, str) or not data or len(data.encode()) > MAX_KEY_DATA:
            raise InvalidDocument(path + "data", f"must be a string of 1 to {MAX_KEY_DATA} bytes")
        if KEY_DATA_CONTROL.search(data):
            raise InvalidDocument(path + "data", "must not contain control characters")
        keys.append(Key(name=name, type=kind, data=data))
    if len({k.name for k in keys}) != len(keys):
        raise InvalidDocument("keys", "names must be unique")
    return Keys(tuple(keys))


def _fixed_ip(raw: Any, path: str) -> FixedIP:
    entry = _object(raw, path)
    address = _ip(entry.get("address"), path + ".address")
    cidr_text = entry.get("cidr")
    if not isinstance(cidr_text, str):
        raise InvalidDocument(path + ".cidr", "is required (the subnet, e.g. 10.0.0.0/24)")
    try:
        cidr = ipaddress.ip_network(cidr_text, strict=False)
    except ValueError:
        raise InvalidDocument(path + ".cidr", f"{cidr_text!r} is not a network") from None
    if ipaddress.ip_address(address) not in cidr:
        raise InvalidDocument(path + ".address", f"{address} is not inside {cidr}")
    gateway = entry.get("gateway")
    dns = _list(entry, "dns", 16, path=path + ".")
    routes = []
    for i, route in enumerate(_list(entry, "routes", 64, path=path + ".")):
        route = _object(route, f"{path}.routes[{i}]")
        try:
            network = str(ipaddress.ip_network(str(route.get("cidr")), strict=False))
        except ValueError:
            raise InvalidDocument(f"{path}.routes[{i}].cidr", "is not a network") from None
        routes.append(Route(network, _ip(route.get("gateway"), f"{path}.routes[{i}].gateway")))
    mode = entry.get("mode", "static")
    if mode not in IPV6_MODES or (cidr.version == 4 and mode not in ("static", "dhcp")):
        raise InvalidDocument(
            path + ".mode",
            "must be static or dhcp (IPv6 also slaac, dhcpv6-stateful, dhcpv6-stateless)",
        )
    return FixedIP(
        address=address,
        cidr=str(cidr),
        gateway=None if gateway is None else _ip(gateway, path + ".gateway"),
        dns=tuple(_ip(d, f"{path}.dns[{i}]") for i, d in enumerate(dns)),
        routes=tuple(routes),
        mode=mode,
    )


def _network(doc: Mapping[str, Any]) -> Network:
    ports = []
    for index, raw in enumerate(_list(doc, "ports", MAX_PORTS)):
        path = f"ports[{index}]"
        entry = _object(raw, path)
        mac = _text(entry, "mac", path=path + ".").lower()
        if not MAC.match(mac):
            raise InvalidDocument(path + ".mac", "must be a MAC address like fa:16:3e:00:00:01")
        mtu = entry.get("mtu")
        if mtu is not None:
            mtu = _int(entry, "mtu", 0, minimum=68, maximum=65535, path=path + ".")
        fixed = _list(entry, "fixed_ips", 16, path=path + ".")
        floating = _list(entry, "floating_ips", 16, path=path + ".")
        ports.append(
            Port(
                id=_text(entry, "id", path=path + "."),
                mac=mac,
                network_id=_text(entry, "network_id", default="", path=path + "."),
                mtu=mtu,
                type=_text(entry, "type", default="ovs", limit=MAX_PORT_TYPE, path=path + "."),
                fixed_ips=tuple(
                    _fixed_ip(ip, f"{path}.fixed_ips[{i}]") for i, ip in enumerate(fixed)
                ),
                floating_ips=tuple(
                    _ip(ip, f"{path}.floating_ips[{i}]") for i, ip in enumerate(floating)
                ),
            )
        )
    if len({p.id for p in ports}) != len(ports):
        raise InvalidDocument("ports", "ids must be unique")
    if len({p.mac for p in ports}) != len(ports):
        raise InvalidDocument("ports", "MAC addresses must be unique")
    return Network(tuple(ports))


def decode_user_data(value: Any, max_bytes: int) -> UserData:
    if value is None:
        return UserData(None)
    if not isinstance(value, str):
        raise InvalidDocument("user_data", "must be a base64 string or null")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidDocument("user_data", "is not valid base64") from None
    if len(data) > max_bytes:
        raise UserDataTooLarge("user_data", f"is {len(data)} bytes, over the {max_bytes} limit")
    return UserData(data)


def parse_document(
    raw: Any, *, uuid: str | None = None, user_data_max_bytes: int = 65536
) -> InstanceDocument:
    """Validate an instance document; `uuid` is the one the URL names, if any."""
    doc = _object(raw, "document")
    unknown = sorted(set(doc) - KNOWN_FIELDS)
    if unknown:
        raise InvalidDocument(str(unknown[0]), "unknown field")
    if "uuid" in doc:
        doc_uuid = normalise_uuid(doc["uuid"])
        if uuid is not None and doc_uuid != uuid:
            raise InvalidDocument("uuid", "does not match the uuid in the URL")
        uuid = doc_uuid
    if uuid is None:
        raise InvalidDocument("uuid", "is required")
    vendor = _optional_object(doc, "vendor_data", {})
    return InstanceDocument(
        core=_core(doc, uuid),
        metadata=_metadata(doc),
        keys=_keys(doc),
        network=_network(doc),
        vendor_data=VendorData(dict(vendor)),
        user_data=(
            decode_user_data(doc["user_data"], user_data_max_bytes) if "user_data" in doc else None
        ),
    )


def document_to_json(doc: InstanceDocument) -> dict[str, Any]:
    """The document as the admin API returns and `instances export` writes it."""
    core = doc.core
    out: dict[str, Any] = {
        "uuid": core.uuid,
        "name": core.name,
        "hostname": core.hostname,
        "project_id": core.project_id,
        "user_id": core.user_id,
        "availability_zone": core.availability_zone,
        "launch_index": core.launch_index,
        "image_id": core.image_id,
        "ami_id": core.ami_id,
        "ec2_id": core.ec2_id,
        "reservation_id": core.reservation_id,
        "flavor": {
            "name": core.flavor.name,
            "vcpus": core.flavor.vcpus,
            "ram_mb": core.flavor.ram_mb,
            "disk_gb": core.flavor.disk_gb,
        },
        "security_groups": list(core.security_groups),
        "block_device_mapping": dict(core.block_device_mapping),
        "metadata": dict(doc.metadata.items),
        "keys": [{"name": k.name, "type": k.type, "data": k.data} for k in doc.keys.keys],
        "ports": [port_to_json(p) for p in doc.network.ports],
        "vendor_data": dict(doc.vendor_data.data),
    }
    for optional in ("kernel_id", "ramdisk_id", "region"):
        if getattr(core, optional):
            out[optional] = getattr(core, optional)
    if core.tags:
        out["tags"] = dict(core.tags)
    if core.instance_metadata_tags:
        out["instance_metadata_tags"] = True
    if core.devices:
        out["devices"] = [dict(d) for d in core.devices]
    if core.dedicated_cpus:
        out["dedicated_cpus"] = list(core.dedicated_cpus)
    if doc.user_data is not None:
        # null, not absent, for "no user data": an exported document restored over an
        # instance that has gained user data since must remove it (absent leaves it alone).
        data = doc.user_data.data
        out["user_data"] = None if data is None else base64.b64encode(data).decode()
    return out


def port_to_json(port: Port) -> dict[str, Any]:
    return {
        "id": port.id,
        "mac": port.mac,
        "network_id": port.network_id,
        "mtu": port.mtu,
        "type": port.type,
        "floating_ips": list(port.floating_ips),
        "fixed_ips": [
            {
                "address": ip.address,
                "cidr": ip.cidr,
                "gateway": ip.gateway,
                "dns": list(ip.dns),
                "mode": ip.mode,
                "routes": [{"cidr": r.cidr, "gateway": r.gateway} for r in ip.routes],
            }
            for ip in port.fixed_ips
        ],
    }
