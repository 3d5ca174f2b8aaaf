"""User data versions: the strong ETag of the bytes, conditional request headers, and the
records of each change that the admin API lists and restores."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from metadata.lru import LRU


def etag_of_sha256(hexdigest: str) -> str:
    """The strong ETag of bytes with this SHA-256: the same on the admin and guest APIs."""
    return f'"{hexdigest}"'


def etag_of(data: bytes) -> str:
    return etag_of_sha256(hashlib.sha256(data).hexdigest())


def _tags(header: str) -> list[str]:
    # A weak validator names the same bytes here (we only ever issue strong ones), and some
    # clients (GCP-style `last_etag=`) send the tag without its quotes.
    tags = []
    for part in header.split(","):
        tag = part.strip().removeprefix("W/")
        if tag:
            tags.append(tag if tag.startswith('"') else f'"{tag}"')
    return tags


def etag_matches(header: str, etag: str | None) -> bool:
    """Whether an If-Match / If-None-Match header names `etag` (None: nothing is stored,
    which no header matches: `*` asks for something to be there)."""
    if header.strip() == "*":
        return etag is not None
    return etag is not None and etag in _tags(header)


def normalise_etag(value: str) -> str:
    tags = _tags(value)
    return tags[0] if tags else '""'


class ETagMemo:
    """The ETag of the user data an instance had at a generation, so a warm guest read adds
    a dict lookup, not a SHA-256 of up to 64 KiB."""

    def __init__(self, max_entries: int) -> None:
        self._etags: LRU[tuple[str, int], str] = LRU(max_entries)

    def get(self, uuid: str, generation: int, body: bytes) -> str:
        key = (uuid, generation)
        etag = self._etags.get(key)
        if etag is None:
            etag = etag_of(body)
            self._etags.set(key, etag)
        return etag


@dataclass(frozen=True, slots=True)
class UserDataChange:
    """Who asks for a change and on which condition (the If-Match header, if any)."""

    actor: str
    if_match: str | None = None


@dataclass(frozen=True, slots=True)
class UserDataVersion:
    """One recorded change. `sha256` None: the change removed the user data."""

    version: int
    changed_at: datetime
    changed_by: str
    action: str  # set | delete | restore
    size: int | None
    sha256: str | None
    is_restorable: bool
    restored_from: int | None = None

    @property
    def etag(self) -> str | None:
        return None if self.sha256 is None else etag_of_sha256(self.sha256)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "changed_at": self.changed_at.isoformat(),
            "changed_by": self.changed_by,
            "action": self.action,
            "size": self.size,
            "sha256": self.sha256,
            "etag": self.etag,
            "restorable": self.is_restorable,
            "restored_from": self.restored_from,
        }
