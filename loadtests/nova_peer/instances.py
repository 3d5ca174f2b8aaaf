"""What the seeding step made: one record per instance, as the harness's users need it."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SeededInstance:
    uuid: str
    name: str
    hostname: str  # without the dhcp_domain Nova appends
    cell: str
    project_id: str
    user_id: str
    fixed_addresses: tuple[str, ...]
    floating_addresses: tuple[str, ...]
    ec2_id: str
    user_data: bytes | None
    metadata: dict[str, str]
    key_names: tuple[str, ...]
    security_groups: tuple[str, ...]
    availability_zone: str | None
    features: tuple[str, ...]  # what this instance exercises, e.g. "ipv6_slaac", "cell2"

    @property
    def address(self) -> str:
        """The guest's address as Neutron's agent reports it (first IPv4, else a stand-in)."""
        return next((a for a in self.fixed_addresses if ":" not in a), "10.255.255.1")

    @classmethod
    def from_seed(cls, row: dict[str, Any]) -> SeededInstance:
        user_data = row["user_data"]
        return cls(
            uuid=row["uuid"],
            name=row["name"],
            hostname=row["hostname"],
            cell=row["cell"],
            project_id=row["project_id"],
            user_id=row["user_id"],
            fixed_addresses=tuple(row["fixed_addresses"]),
            floating_addresses=tuple(row["floating_addresses"]),
            ec2_id=row["ec2_id"],
            user_data=base64.b64decode(user_data) if user_data is not None else None,
            metadata=dict(row["metadata"]),
            key_names=tuple(row["key_names"]),
            security_groups=tuple(row["security_groups"]),
            availability_zone=row["availability_zone"],
            features=tuple(row["features"]),
        )
