"""The slices of instance data, as frozen records passed from providers to renderers.

Each slice is what one provider loads with at most one SQL statement. Renderers receive only
the slices their path declares, so a record here never reaches into another.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Slice(enum.Enum):
    CORE = "core"
    METADATA = "metadata"
    KEYS = "keys"
    NETWORK = "network"
    USER_DATA = "user_data"
    VENDOR_DATA = "vendor_data"
    PASSWORD = "password"
    # Not read from SQL: the answers of the configured external vendor-data services.
    DYNAMIC_VENDOR_DATA = "dynamic_vendor_data"
    # Derived: from CORE in store mode, from Neutron's API in Nova mode (no SQL there).
    SECURITY_GROUPS = "security_groups"


@dataclass(frozen=True, slots=True)
class Flavor:
    name: str
    vcpus: int = 1
    ram_mb: int = 512
    disk_gb: int = 1


@dataclass(frozen=True, slots=True)
class InstanceCore:
    uuid: str
    generation: int
    ec2_id: str
    name: str
    hostname: str
    project_id: str
    user_id: str
    # None only from Nova (a shelved-offloaded instance): EC2 prints None, JSON null.
    availability_zone: str | None
    launch_index: int
    image_id: str
    ami_id: str
    kernel_id: str | None
    ramdisk_id: str | None
    reservation_id: str
    flavor: Flavor
    security_groups: tuple[str, ...]
    # EC2 block-device-mapping names ("ami", "root", "ephemeral0", ...) -> device.
    block_device_mapping: tuple[tuple[str, str], ...]
    devices: tuple[Mapping[str, Any], ...]
    dedicated_cpus: tuple[int, ...]
    # EC2 facts newer than Nova's versions: the region when the document names one (else it
    # is derived from the zone), and the instance's tags, served only when opted in.
    region: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    instance_metadata_tags: bool = False
    # False: nothing could say which security groups the instance has (Nova mode without
    # Neutron, or Neutron unreachable with no earlier answer); Nova mode then unlists them.
    security_groups_known: bool = True


@dataclass(frozen=True, slots=True)
class MetadataItems:
    items: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    type: str
    data: str


@dataclass(frozen=True, slots=True)
class Keys:
    keys: tuple[Key, ...] = ()
    # The EC2 tree's keys when they differ from the OpenStack tree's (Nova serves EC2 from
    # `instances.key_name/key_data`, meta_data.json from `instance_extra.keypairs`);
    # None: the same keys.
    ec2_keys: tuple[Key, ...] | None = None

    @property
    def for_ec2(self) -> tuple[Key, ...]:
        return self.keys if self.ec2_keys is None else self.ec2_keys


@dataclass(frozen=True, slots=True)
class Route:
    cidr: str
    gateway: str


@dataclass(frozen=True, slots=True)
class FixedIP:
    address: str
    cidr: str
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()
    # "static" (the address is served in network_data.json) or "dhcp"; IPv6 also knows
    # "slaac", "dhcpv6-stateful" and "dhcpv6-stateless" as Neutron's ipv6_address_mode.
    mode: str = "static"

    @property
    def version(self) -> int:
        return 6 if ":" in self.address else 4


@dataclass(frozen=True, slots=True)
class Port:
    id: str
    mac: str
    network_id: str
    mtu: int | None = None
    type: str = "ovs"
    # The link's name in network_data.json (Nova: the VIF's devname); None: "tap" and the
    # port id's first 11 characters, as Nova names a Neutron port's tap device.
    link_name: str | None = None
    fixed_ips: tuple[FixedIP, ...] = ()
    floating_ips: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Network:
    ports: tuple[Port, ...] = ()

    @property
    def first_fixed_ipv4(self) -> str | None:
        for port in self.ports:
            for ip in port.fixed_ips:
                if ip.version == 4:
                    return ip.address
        return None

    @property
    def first_floating_ip(self) -> str | None:
        for port in self.ports:
            if port.floating_ips:
                return port.floating_ips[0]
        return None


@dataclass(frozen=True, slots=True)
class UserData:
    """The raw bytes (None: the instance has no user data)."""

    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class VendorData:
    """The instance's own vendor data (store mode), and what the dynamic vendor data POST
    is built from besides the core slice: in Nova mode the `boot_roles` system metadata
    (comma-separated role names of the token that booted it), "" when absent."""

    data: Mapping[str, Any] = field(default_factory=dict)
    boot_roles: str = ""


@dataclass(frozen=True, slots=True)
class DynamicVendorData:
    """Each dynamic vendor-data service that answered: its name -> the JSON it returned, in
    the configured order. A service that failed is absent, never an empty placeholder."""

    answers: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Password:
    value: str = ""


@dataclass(frozen=True, slots=True)
class SecurityGroups:
    """The instance's group names, in the order served; `known` False: nobody could say
    (Nova without Neutron's answer), so the leaf is unlisted rather than empty."""

    names: tuple[str, ...] = ()
    known: bool = True


@dataclass(frozen=True, slots=True)
class InstanceDocument:
    """A validated instance document: the whole of what an operator writes in one PUT."""

    core: InstanceCore
    metadata: MetadataItems
    keys: Keys
    network: Network
    vendor_data: VendorData
    # None: leave user data out of this write's concern; UserData(None): the doc has none.
    user_data: UserData | None

    @classmethod
    def from_slices(cls, found: Mapping[Slice, Any]) -> InstanceDocument:
        """The document of an instance whose document slices were read (any source)."""
        return cls(
            core=found[Slice.CORE],
            metadata=found[Slice.METADATA],
            keys=found[Slice.KEYS],
            network=found[Slice.NETWORK],
            vendor_data=found[Slice.VENDOR_DATA],
            user_data=found[Slice.USER_DATA],
        )
