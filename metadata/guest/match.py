"""Match: which tree, version and row a guest path names, from the path alone.

The trees are rows of a table keyed by the path's first segment (`/openstack/…`,
`/ec2/…`, `/nocloud/…`; anything else is the EC2 tree at the root, as Nova serves it). No
instance data is needed here: a path that matches nothing is a 404 before anything is loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from metadata.errors import BadRequest, MetadataError, NotFound
from metadata.guest import ec2, nocloud, openstack
from metadata.guest.tree import Leaf, Match, Tree
from metadata.lru import LRU
from metadata.stats import StatsKey

MATCHED_PATHS_KEPT = 4096
SECONDS_A_DAY = 86_400


@dataclass(frozen=True, slots=True)
class TreeRoot:
    """One tree the guest API serves: its rows, how it names versions, and the statistics
    template of its version listing. A tree with a `fixed_version` has no version segment
    (NoCloud's files sit right under its prefix) and no version listing."""

    name: str
    tree: Tree
    served_version: Callable[[str], str | None]
    version_listing: Callable[[], bytes]
    listing_template: str
    fixed_version: str | None = None


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a guest path leads: a version listing (match None) or a row's match."""

    root: TreeRoot
    match: Match | None
    stats_key: StatsKey
    listing: bytes = b""

    @property
    def leaf(self) -> Leaf | None:
        return None if self.match is None else self.match.leaf


def path_segments(raw_path: str) -> list[str]:
    """Segments of the raw path: `//`, `.` and trailing `/` fall away; `..` and encoded
    separators are refused rather than resolved."""
    segments = []
    for raw in raw_path.split("/"):
        try:
            segment = unquote(raw, errors="strict") if "%" in raw else raw
        except UnicodeDecodeError:
            raise BadRequest("path is not UTF-8") from None
        if segment in ("", "."):
            continue
        if segment == ".." or "/" in segment or "\\" in segment or "\x00" in segment:
            raise NotFound("no such path")
        segments.append(segment)
    return segments


class Matcher:
    """The table of trees: `by_first_segment` names the trees under a prefix, `default`
    the one served at the root."""

    def __init__(self, by_first_segment: Mapping[str, TreeRoot], default: TreeRoot) -> None:
        self.by_first_segment = dict(by_first_segment)
        self.default = default
        # Destinations by raw path: a boot renders every path of a new instance once, and
        # matching costs about what rendering does. Bounded: guests choose the paths. Kept
        # for one UTC day, as the versions served (and `latest`) follow the date.
        self._by_path: LRU[str, Destination] = LRU(MATCHED_PATHS_KEPT)
        self._day = -1
        # Version listings hold no instance data: the chain answers them before identity.
        # Derived from the table: `/` and each prefix, with or without its slash.
        self.version_listing_paths = frozenset(
            {"/"}
            | {
                f"/{prefix}{slash}"
                for prefix, root in self.by_first_segment.items()
                if root.fixed_version is None
                for slash in ("", "/")
            }
        )

    def match_path(self, path: str) -> Destination:
        """`match` of a raw path (query string removed), remembered for the day."""
        day = int(time.time()) // SECONDS_A_DAY
        if day != self._day:
            self._by_path.clear()
            self._day = day
        destination = self._by_path.get(path)
        if destination is None:
            destination = self.match(path_segments(path))
            self._by_path.set(path, destination)
        return destination

    def match(self, segments: list[str]) -> Destination:
        root = self.by_first_segment.get(segments[0]) if segments else None
        rest = segments if root is None else segments[1:]
        root = root or self.default
        if root.fixed_version is not None:
            return self._match_unversioned(root, rest)
        if not rest:
            return Destination(root, None, (root.listing_template, ""), root.version_listing())
        version = root.served_version(rest[0])
        match = None if version is None else root.tree.match(version, rest[1:])
        if match is None:
            raise NotFound("no such path")
        return Destination(root, match, (match.template, rest[0]))

    @staticmethod
    def _match_unversioned(root: TreeRoot, rest: list[str]) -> Destination:
        assert root.fixed_version is not None
        match = root.tree.match(root.fixed_version, rest)
        if match is None:
            raise NotFound("no such path")
        return Destination(root, match, (match.template, ""))

    def is_boot_critical(self, path: str) -> bool:
        """Whether the path's row says a boot cannot do without it (version listings are:
        every boot starts with one)."""
        try:
            destination = self.match_path(path)
        except MetadataError:
            return False
        leaf = destination.leaf
        return destination.match is None or (leaf is not None and leaf.boot_critical)


def _no_version(name: str) -> str | None:
    return None


def build_matcher(
    static_vendor_data: Mapping[str, Any], ec2_versions: ec2.VersionTable = ec2.STORE
) -> Matcher:
    """The guest trees; `ec2_versions` is AWS's table in store mode, `ec2.NOVA` in Nova's."""
    ec2_root = TreeRoot(
        "ec2", ec2.build_tree(), ec2_versions.served_version, ec2_versions.version_listing, "/"
    )
    nocloud_root = TreeRoot(
        "nocloud",
        nocloud.build_tree(static_vendor_data),
        _no_version,
        bytes,
        "/nocloud",
        fixed_version=nocloud.VERSION,
    )
    openstack_root = TreeRoot(
        "openstack",
        openstack.build_tree(static_vendor_data),
        openstack.served_version,
        openstack.version_listing,
        "/openstack",
    )
    return Matcher(
        {"openstack": openstack_root, "ec2": ec2_root, "nocloud": nocloud_root}, default=ec2_root
    )
