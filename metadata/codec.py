"""Slices to bytes and back, for a cache shared between processes (Redis).

JSON rather than pickle: a cache server that is shared must never be able to make us run
code.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import orjson

from metadata.records import (
    DynamicVendorData,
    FixedIP,
    Flavor,
    InstanceCore,
    Key,
    Keys,
    MetadataItems,
    Network,
    Password,
    Port,
    Route,
    SecurityGroups,
    Slice,
    UserData,
    VendorData,
)


def encode(name: Slice, value: Any) -> bytes:
    if name is Slice.USER_DATA:
        data = value.data
        return orjson.dumps(None if data is None else base64.b64encode(data).decode())
    if value is None:
        return b"null"
    return orjson.dumps(asdict(value))


def _core(raw: dict[str, Any]) -> InstanceCore:
    raw["flavor"] = Flavor(**raw["flavor"])
    for name in ("security_groups", "devices", "dedicated_cpus"):
        raw[name] = tuple(raw[name])
    raw["block_device_mapping"] = tuple(tuple(pair) for pair in raw["block_device_mapping"])
    # absent from slices cached before tags existed: the record's default then
    if "tags" in raw:
        raw["tags"] = tuple(tuple(pair) for pair in raw["tags"])
    return InstanceCore(**raw)


def _network(raw: dict[str, Any]) -> Network:
    ports = []
    for port in raw["ports"]:
        fixed = tuple(
            FixedIP(
                address=ip["address"],
                cidr=ip["cidr"],
                gateway=ip["gateway"],
                dns=tuple(ip["dns"]),
                routes=tuple(Route(**r) for r in ip["routes"]),
                mode=ip["mode"],
            )
            for ip in port["fixed_ips"]
        )
        ports.append(
            Port(**{**port, "fixed_ips": fixed, "floating_ips": tuple(port["floating_ips"])})
        )
    return Network(tuple(ports))


def _user_data(raw: str | None) -> UserData:
    return UserData(None if raw is None else base64.b64decode(raw))


DECODERS: dict[Slice, Callable[[Any], Any]] = {
    Slice.CORE: _core,
    Slice.METADATA: lambda raw: MetadataItems(raw["items"]),
    Slice.KEYS: lambda raw: Keys(
        tuple(Key(**k) for k in raw["keys"]),
        None if raw.get("ec2_keys") is None else tuple(Key(**k) for k in raw["ec2_keys"]),
    ),
    Slice.NETWORK: _network,
    Slice.USER_DATA: _user_data,
    # boot_roles absent from slices cached before it existed: the record's default then
    Slice.VENDOR_DATA: lambda raw: VendorData(raw["data"], raw.get("boot_roles", "")),
    Slice.PASSWORD: lambda raw: Password(raw["value"]),
    Slice.DYNAMIC_VENDOR_DATA: lambda raw: DynamicVendorData(raw["answers"]),
    Slice.SECURITY_GROUPS: lambda raw: SecurityGroups(tuple(raw["names"]), raw["known"]),
}


def decode(name: Slice, data: bytes) -> Any:
    raw = orjson.loads(data)
    if raw is None and name is not Slice.USER_DATA:
        return None
    return DECODERS[name](raw)
