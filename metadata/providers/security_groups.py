"""The security-groups slice from the core slice, where the instance document keeps them
(store mode): derived, so it costs no read beyond the core slice identity already has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metadata.providers.base import Provider
from metadata.records import InstanceCore, SecurityGroups, Slice


class SecurityGroupsFromCore(Provider):
    slice = Slice.SECURITY_GROUPS

    def __init__(self) -> None:
        self.requires = frozenset({Slice.CORE})

    async def derive(self, uuid: str, inputs: Mapping[Slice, Any]) -> SecurityGroups:
        core: InstanceCore = inputs[Slice.CORE]
        return SecurityGroups(core.security_groups, core.security_groups_known)
