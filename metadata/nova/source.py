"""The Nova source: the slice source interface over Nova's databases, read-only.

A read is the instance-mapping look-up in the API database (cached) and ONE SELECT on the
instance's cell database bringing every slice asked for. Generations are this service's
own (`metadata.nova.generations`): Nova has none.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from metadata.errors import InstanceNotFound
from metadata.nova.cells import CellDirectory, Location
from metadata.nova.generations import NovaGenerations
from metadata.nova.neutron import NeutronSecurityGroups
from metadata.nova.overlay import UserDataOverlay
from metadata.nova.slices import NovaContext, decode_row, instance_row, statement
from metadata.records import InstanceDocument, Slice
from metadata.sources.base import SliceRead

SQL_SLICES = frozenset(
    {
        Slice.CORE,
        Slice.METADATA,
        Slice.KEYS,
        Slice.NETWORK,
        Slice.USER_DATA,
        Slice.PASSWORD,
        Slice.VENDOR_DATA,
    }
)


class NovaSource:
    # Nova's databases cannot map an address to an instance (only Neutron can).
    identifies_by_address = False

    def __init__(
        self, cells: CellDirectory, generations: NovaGenerations, dhcp_domain: str
    ) -> None:
        self.cells = cells
        self.generations = generations
        self.dhcp_domain = dhcp_domain
        # The service's own user-data overlay (None: Nova's user data only).
        self.overlay: UserDataOverlay | None = None
        # Neutron's API ([neutron] credentials), for the admin document's security groups
        # (guests get them through their own slice). None: unknown.
        self.neutron: NeutronSecurityGroups | None = None

    async def read(self, uuid: str, names: frozenset[Slice]) -> SliceRead | None:
        location = await self.cells.locate(uuid)
        if location is None:
            return None
        # The generation is taken before the rows: a change announced meanwhile makes a
        # newer one, so what is read here is never cached as newer than it is.
        generation = await self.generations.current(uuid)
        return await self._read_at(location, uuid, names, generation)

    async def _read_at(
        self, location: Location, uuid: str, names: frozenset[Slice], generation: int
    ) -> SliceRead | None:
        cell = location.cell
        wanted = names & SQL_SLICES
        query = statement(wanted, cell.engine.dialect.name)
        row = instance_row(await cell.rows(query, {"uuid": uuid}), wanted)
        if row is None:
            return None
        context = NovaContext(self.dhcp_domain, generation)
        slices: dict[Slice, Any] = decode_row(row, wanted, context)
        if Slice.USER_DATA in slices and self.overlay is not None:
            # One statement on the service's own database, never on Nova's.
            overlay = await self.overlay.current(uuid)
            if overlay is not None:
                slices[Slice.USER_DATA] = overlay
        if Slice.PASSWORD in slices and self.overlay is not None:
            posted = await self.overlay.password(uuid)
            if posted is not None:
                slices[Slice.PASSWORD] = posted
        return SliceRead(uuid, generation, slices)

    async def read_by_address(self, address: str, names: frozenset[Slice]) -> list[SliceRead]:
        """Nova's databases hold addresses only inside the info cache's JSON: no indexed
        look-up exists (Nova asks Neutron). Never reached: `identifies_by_address`."""
        return []

    async def generation(self, uuid: str) -> int | None:
        if await self.cells.locate(uuid) is None:
            return None
        return await self.generations.current(uuid)

    async def project_of(self, uuid: str) -> str | None:
        """The instance's project from its mapping (cached), for the tenant check of signed
        requests; None: unknown here, read the instance."""
        location = await self.cells.locate(uuid)
        return None if location is None else location.project_id


async def nova_document(source: NovaSource, uuid: str) -> InstanceDocument:
    """The instance as an admin document, read from Nova in one statement (and its groups
    from Neutron when configured)."""
    found = await source.read(uuid, SQL_SLICES)
    if found is None:
        raise InstanceNotFound(f"no instance {uuid}")
    slices = dict(found.slices)
    names = None if source.neutron is None else await source.neutron.of_instance(uuid)
    if names is not None:  # () too: Neutron said the ports carry no group
        slices[Slice.CORE] = dataclasses.replace(
            slices[Slice.CORE], security_groups=names, security_groups_known=True
        )
    return InstanceDocument.from_slices(slices)
