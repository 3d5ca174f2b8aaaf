"""What the store tells its listeners after a commit. The store knows no cache: the coherence
layer and the waiters subscribe to these events (`Store.add_write_listener`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WriteEvent:
    """A committed write: the instance, its new generation (None: deleted), and every
    fixed address it had before or has after the write."""

    uuid: str
    generation: int | None
    addresses: frozenset[str] = frozenset()
