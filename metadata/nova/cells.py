"""Which cell database holds an instance: `instance_mappings` in the API database (cached),
one read-only engine per cell of `cell_mappings`, or the one local cell
(`[api] local_metadata_per_cell`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

from metadata.lru import LRU
from metadata.nova import schema as n
from metadata.nova.engines import NovaDatabase
from metadata.nova.urls import async_database_url, expand_template
from metadata.single_flight import SingleFlight

log = logging.getLogger(__name__)
_m = n.instance_mappings
# Built once: the look-up of every cold request, its uuid a parameter.
MAPPING = (
    select(_m.c.cell_id, _m.c.project_id)
    .where(_m.c.instance_uuid == bindparam("uuid", type_=_m.c.instance_uuid.type))
    .limit(1)
)


@dataclass(frozen=True, slots=True)
class Location:
    cell: NovaDatabase
    # From the mapping (None in the per-cell mode, where only the cell row knows it).
    project_id: str | None


class CellDirectory:
    def __init__(
        self,
        api: NovaDatabase | None,
        local: NovaDatabase | None,
        *,
        cell_template_base: str | None,
        max_remembered: int = 100_000,
        timeout: float = 2.0,
    ) -> None:
        """`api` None: the per-cell mode, every instance is in `local`. Otherwise `local`
        (when configured) is where Nova falls back for an instance with no mapping."""
        self.api = api
        self.local = local
        self._base = cell_template_base
        self._timeout = timeout
        self.cells: dict[int, NovaDatabase] = {}
        self._names: dict[int, str] = {}
        # uuid -> (cell id, project): cell ids change only on a cross-cell resize, which
        # the notification consumer forgets.
        self._mappings: LRU[str, tuple[int, str | None]] = LRU(max_remembered)
        self._mapping_reads: SingleFlight[str, Mapping[str, Any] | None] = SingleFlight()

    @property
    def databases(self) -> list[NovaDatabase]:
        found = [d for d in (self.api, self.local) if d is not None]
        return found + [c for c in self.cells.values() if c not in found]

    async def load_cells(self) -> None:
        """Read `cell_mappings` and open an engine per cell (templates expanded)."""
        if self.api is None:
            return
        c = n.cell_mappings
        async with self.api.read() as conn:
            rows = (
                await conn.execute(
                    select(c.c.id, c.c.uuid, c.c.name, c.c.database_connection).order_by(c.c.id)
                )
            ).all()
        for cell_id, uuid, name, connection in rows:
            if cell_id in self.cells or not connection:
                continue
            url = expand_template(connection, self._base)
            label = f"cell {name or uuid}"
            try:
                async_url = async_database_url(url, f"cell_mappings {name or uuid}")
            except Exception as exc:
                log.error("%s: %s; its instances answer 404", label, exc)
                continue
            self.cells[cell_id] = NovaDatabase(label, async_url, timeout=self._timeout)
            self._names[cell_id] = name or uuid

    def forget(self, uuid: str) -> None:
        self._mappings.pop(uuid)

    async def locate(self, uuid: str) -> Location | None:
        """The instance's cell, or None (no mapping and no local cell, or not scheduled)."""
        if self.api is None:
            return None if self.local is None else Location(self.local, None)
        known = self._mappings.get(uuid)
        if known is None:
            # Concurrent first requests of one instance share one look-up.
            row = await self._mapping_reads.run(uuid, lambda: self._read_mapping(uuid))
            if row is None:
                # Nova logs a warning and reads its local [database] then.
                return None if self.local is None else Location(self.local, None)
            if row["cell_id"] is None:
                return None  # a BuildRequest: not scheduled yet, Nova answers 404
            known = (row["cell_id"], row["project_id"])
            self._mappings.set(uuid, known)
        cell = self.cells.get(known[0])
        if cell is None:
            await self.load_cells()
            cell = self.cells.get(known[0])
        return None if cell is None else Location(cell, known[1])

    async def _read_mapping(self, uuid: str) -> Mapping[str, Any] | None:
        assert self.api is not None
        return await self.api.first(MAPPING, {"uuid": uuid})

    async def dispose(self) -> None:
        for database in self.databases:
            await database.dispose()
