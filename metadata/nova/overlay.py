"""User data that can change on a Nova cloud without a rebuild: an overlay in the service's
own database, served on both trees instead of Nova's `user_data` until it is deleted or Nova
rebuilds the instance. A guest's password POST is kept there too (Nova's is only read).

The overlay is kept by the store (`METADATA_DATABASE_URL`) under a placeholder instance row
of the same uuid that holds nothing else, so ETags, If-Match, history, restore and
`wait_for_change` are store mode's own. An overlay is active while that row has user data.
Nova's databases are never written.
"""

from __future__ import annotations

import contextlib

from metadata.document import parse_document
from metadata.errors import Conflict, InstanceNotFound
from metadata.records import Password, Slice, UserData
from metadata.store.source import StoreSource
from metadata.store.store import Store


def placeholder(uuid: str) -> dict[str, str]:
    """The smallest document the store accepts: it only anchors the overlay's rows."""
    return {
        "uuid": uuid,
        "hostname": "nova-overlay",
        "name": "nova-overlay",
        "project_id": "nova-overlay",
        "user_id": "nova-overlay",
    }


class UserDataOverlay:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def current(self, uuid: str) -> UserData | None:
        """The overlay's user data, or None when Nova's is served."""
        try:
            found = await self.store.get_user_data(uuid)
        except InstanceNotFound:
            return None
        return found if found.data is not None else None

    async def password(self, uuid: str) -> Password | None:
        """The password a guest POSTed to us, or None (then Nova's stored one is served)."""
        found = await StoreSource(self.store.db).read(uuid, frozenset({Slice.PASSWORD}))
        posted: Password | None = None if found is None else found.slices[Slice.PASSWORD]
        return posted if posted is not None and posted.value else None

    async def set_password_once(self, uuid: str, value: str, novas: Password) -> None:
        """A guest's password POST, kept here; refused (409) when Nova already has one."""
        if novas.value:
            raise Conflict("a password is already set")
        await self.ensure_anchor(uuid)
        await self.store.set_password_once(uuid, value)

    async def ensure_anchor(self, uuid: str) -> None:
        """The placeholder row, made on the first overlay write."""
        try:
            await self.store.user_data_etag(uuid)
        except InstanceNotFound:
            doc = parse_document(placeholder(uuid), uuid=uuid, user_data_max_bytes=1)
            await self.store.put_document(doc, "nova-overlay")

    async def on_change(self, uuid: str, kind: str) -> None:
        """Nova rebuilt the instance (new user data of its own) or deleted it: the overlay
        and its history go."""
        if kind in ("rebuilt", "deleted"):
            with contextlib.suppress(InstanceNotFound):
                await self.store.delete_instance(uuid)
