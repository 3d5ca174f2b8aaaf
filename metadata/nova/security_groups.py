"""The security-groups slice in Nova mode: derived from nothing Nova's databases hold, only
Neutron's answer, so a path that renders no group never waits for Neutron, and a Neutron
outage degrades only the `security-groups` leaf."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metadata.nova.neutron import NeutronSecurityGroups
from metadata.providers import Provider
from metadata.records import SecurityGroups, Slice

UNKNOWN = SecurityGroups((), known=False)


class NeutronSecurityGroupsProvider(Provider):
    """Cached per generation like every slice; Neutron is asked at most once per
    `Bounds.max_staleness` per instance whatever the generations do."""

    slice = Slice.SECURITY_GROUPS

    def __init__(self, neutron: NeutronSecurityGroups) -> None:
        self.neutron = neutron

    async def derive(self, uuid: str, inputs: Mapping[Slice, Any]) -> SecurityGroups:
        names = await self.neutron.of_instance(uuid)
        return UNKNOWN if names is None else SecurityGroups(names)


class UnknownSecurityGroups(Provider):
    """No Keystone credentials in [neutron]: nobody can say, the leaf is unlisted."""

    slice = Slice.SECURITY_GROUPS

    async def derive(self, uuid: str, inputs: Mapping[Slice, Any]) -> SecurityGroups:
        return UNKNOWN


def security_groups_provider(neutron: NeutronSecurityGroups | None) -> Provider:
    return UnknownSecurityGroups() if neutron is None else NeutronSecurityGroupsProvider(neutron)
