"""Which of Nova's versioned notifications change what a guest sees, and how.

The table follows Nova 34.0.0's emitters (`nova/compute/manager.py`, `compute/api.py`,
`conductor/manager.py`, `notifications/base.py`). An action `instance.<action>` is announced
as `.start`, `.end` and `.error`: the data a guest reads changes between `.start` and `.end`,
so `.end` and `.error` (a failed action may have saved part of its change) invalidate and
`.start` does not, except for a rebuild, whose new user data, image and keys the API has
saved before any rebuild event is sent.
"""

from __future__ import annotations

from enum import StrEnum


class ChangeKind(StrEnum):
    """What the Nova source must do with an instance it has cached."""

    CHANGED = "changed"  # re-read it
    REBUILT = "rebuilt"  # re-read it, and drop the service's own user-data overlay
    DELETED = "deleted"  # it answers 404 from now on


# Actions whose `.end` (and `.error`) change rows a metadata path renders.
CHANGING_ACTIONS = (
    "create",  # a new instance: a cached "unknown instance" must go
    "soft_delete",
    "restore",
    "resize_prep",
    "resize",
    "resize_finish",  # the flavor switches here; a cross-cell resize moves the instance
    "resize_confirm",
    "resize_revert",
    "live_migration_pre",
    "live_migration_post",
    "live_migration_post_dest",
    "live_migration_rollback",
    "live_migration_rollback_dest",
    "live_migration_abort",
    "live_migration_force_complete",
    "shelve",
    "shelve_offload",  # availability zone becomes null
    "unshelve",
    "interface_attach",  # info cache and device metadata
    "interface_detach",
    "volume_attach",  # block device mapping and tagged disks
    "volume_detach",
    "volume_swap",
    "share_attach",
    "share_detach",
)

# Instance actions that only change states Nova's metadata API never renders.
STATE_ONLY_ACTIONS = (
    "lock",
    "unlock",
    "pause",
    "unpause",
    "suspend",
    "resume",
    "power_on",
    "power_off",
    "reboot",
    "rescue",
    "unrescue",
    "snapshot",
    "trigger_crash_dump",
    "shutdown",
)
PHASES = ("start", "end", "error")


def _build_table() -> dict[str, ChangeKind | None]:
    table: dict[str, ChangeKind | None] = {}
    for action in CHANGING_ACTIONS:
        table[f"instance.{action}.start"] = None
        table[f"instance.{action}.end"] = ChangeKind.CHANGED
        table[f"instance.{action}.error"] = ChangeKind.CHANGED
    for action in STATE_ONLY_ACTIONS:
        for phase in PHASES:
            table[f"instance.{action}.{phase}"] = None
    table.update(
        {
            # every Instance.save() with notify_on_state_change set: rename, hostname,
            # server metadata, password reset, the rebuild's API-side save
            "instance.update": ChangeKind.CHANGED,
            "instance.rebuild_scheduled": ChangeKind.REBUILT,
            "instance.rebuild.start": ChangeKind.REBUILT,
            "instance.rebuild.end": ChangeKind.REBUILT,
            "instance.rebuild.error": ChangeKind.CHANGED,
            "instance.evacuate": ChangeKind.CHANGED,
            "instance.delete.start": None,  # still served until its rows are deleted
            "instance.delete.end": ChangeKind.DELETED,
            "instance.exists": None,  # the periodic usage audit
        }
    )
    return table


# event_type -> kind; None marks an event Nova sends that changes nothing a guest sees.
EVENT_KINDS: dict[str, ChangeKind | None] = _build_table()

# Families of events about other objects than instances: instances keep their own copies
# of key pairs and flavors, so none of these changes an instance's metadata.
UNRELATED_PREFIXES = (
    "aggregate.",
    "compute.",
    "compute_task.",
    "flavor.",
    "instance.usage_audit",
    "keypair.",
    "libvirt.",
    "metrics.",
    "server_group.",
    "service.",
    "volume.",
)


def is_known(event_type: str) -> bool:
    """Whether Nova is known to send this event type (relevant or not)."""
    return event_type in EVENT_KINDS or event_type.startswith(UNRELATED_PREFIXES)


def kind_of(event_type: str) -> ChangeKind | None:
    """The change an event announces, or None when it changes nothing a guest sees."""
    return EVENT_KINDS.get(event_type)
