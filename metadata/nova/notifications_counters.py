"""What the notification consumer has seen, for /metrics and /readyz."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """What became of one message (every message is acknowledged, whatever its outcome)."""

    APPLIED = "applied"  # an instance change, handed to on_change
    IGNORED = "ignored"  # an event Nova sends that changes nothing a guest sees
    UNKNOWN = "unknown"  # an event type this consumer does not know
    MALFORMED = "malformed"  # not a notification it can read
    FAILED = "failed"  # on_change raised


@dataclass(slots=True)
class NotificationCounters:
    """Counts per outcome, the connection state and when the last message came.

    One consumer writes it from the event loop; readers (the metrics route) only read.
    """

    received: int = 0
    applied: int = 0
    ignored: int = 0
    unknown: int = 0
    malformed: int = 0
    failed: int = 0
    connects: int = 0  # successful (re)connects, each followed by on_resync
    disconnects: int = 0  # connections lost while running
    failovers: int = 0  # connects to another broker of the URL than the one before
    connected: bool = False
    last_message_at: float | None = None  # wall-clock time (time.time())
    broker: str = ""  # the broker in use or last tried, without its password
    brokers: tuple[str, ...] = ()  # every broker of the URL, in the order they are tried

    def count(self, outcome: Outcome) -> None:
        self.received += 1
        self.last_message_at = time.time()
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def outcomes(self) -> dict[str, int]:
        """Messages per outcome, for a labelled metric."""
        return {outcome.value: getattr(self, outcome.value) for outcome in Outcome}
