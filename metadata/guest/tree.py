"""The path tree as data: leaf rows compiled into a trie; listings derived from the leaves.

A `Leaf` row names its path below the version (`meta-data/placement/availability-zone`),
the version that introduced it, the slices it renders from, a pure render function, and
the path's behaviour that the request chain reads from the row (ETag, waitable,
boot-critical, token policy default); its statistics template is derived from the row.
`{name}` segments are parameters enumerated from the slices (key indices, MACs). A
directory lists exactly the children that are present for this instance and version, so a
listing never names a path that then answers 404.

Resolution has two steps so that the loader can fetch every slice a path needs at once:
`match` walks the trie by structure alone and says which slices are needed; `answer` then
checks parameters and presence against the loaded slices and renders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from metadata.records import (
    DynamicVendorData,
    InstanceCore,
    Keys,
    MetadataItems,
    Network,
    Password,
    SecurityGroups,
    Slice,
    UserData,
    VendorData,
)

Params = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    content_type: str = "text/plain"
    # Offset at which a fresh random seed is spliced in on every request (meta_data.json
    # carries `random_seed`, new each time as in Nova), so the rest can be kept rendered.
    seed_at: int = -1


class View:
    """What a renderer sees: the slices loaded for one request, the version asked for and
    the path's parameters. Reading a slice the path did not declare is a bug, and raises."""

    __slots__ = ("_loaded", "params", "version")

    def __init__(self, loaded: Mapping[Slice, Any], version: str, params: Params) -> None:
        self._loaded = loaded
        self.version = version
        self.params = params

    def with_param(self, name: str, value: str) -> View:
        return View(self._loaded, self.version, {**self.params, name: value})

    def _get(self, name: Slice) -> Any:
        try:
            return self._loaded[name]
        except KeyError:
            raise LookupError(f"slice {name.value} was not declared by this path") from None

    @property
    def core(self) -> InstanceCore:
        core: InstanceCore = self._get(Slice.CORE)
        return core

    @property
    def metadata(self) -> MetadataItems:
        return cast(MetadataItems, self._get(Slice.METADATA))

    @property
    def keys(self) -> Keys:
        return cast(Keys, self._get(Slice.KEYS))

    @property
    def network(self) -> Network:
        return cast(Network, self._get(Slice.NETWORK))

    @property
    def user_data(self) -> UserData:
        return cast(UserData, self._get(Slice.USER_DATA))

    @property
    def vendor_data(self) -> VendorData:
        return cast(VendorData, self._get(Slice.VENDOR_DATA))

    @property
    def password(self) -> Password:
        return cast(Password, self._get(Slice.PASSWORD))

    @property
    def dynamic_vendor_data(self) -> DynamicVendorData:
        return cast(DynamicVendorData, self._get(Slice.DYNAMIC_VENDOR_DATA))

    @property
    def security_groups(self) -> SecurityGroups:
        return cast(SecurityGroups, self._get(Slice.SECURITY_GROUPS))


Render = Callable[[View], Answer | None]
Present = Callable[[View], bool]


@dataclass(frozen=True, slots=True)
class Leaf:
    path: str
    render: Render
    needs: frozenset[Slice]
    since: str = ""
    # Absent leaves are neither listed nor served; None: present whenever the version is.
    present: Present | None = None
    present_needs: frozenset[Slice] = frozenset()
    # Methods besides GET and HEAD this leaf accepts (the OpenStack password takes POST).
    methods: frozenset[str] = frozenset()
    # The answer carries the strong ETag of its bytes and honours If-None-Match.
    etag: bool = False
    # `?wait_for_change=` may hold the request until the answer changes.
    waitable: bool = False
    # What a boot cannot do without: served first when the listener is saturated.
    boot_critical: bool = False
    # Whether `token_mode=required` asks a token here; None: the tree's default.
    token: bool | None = None


@dataclass(frozen=True, slots=True)
class Param:
    """A variable segment: its values come from a slice (key indices, MACs)."""

    name: str
    needs: frozenset[Slice]
    values: Callable[[View], Iterable[str]]
    # How the parent listing names a value; default "<value>/" (a directory).
    label: Callable[[View, str], str] | None = None


@dataclass(slots=True)
class Node:
    children: dict[str, Node] = field(default_factory=dict)
    param: tuple[Param, Node] | None = None
    leaf: Leaf | None = None
    since: str = "~"  # the oldest version any descendant appears in
    # the oldest version from which a descendant is present for every instance (a leaf
    # without a presence test, reached without a parameter): a directory known non-empty
    # without walking it
    always_since: str = "~"
    listing_needs: frozenset[Slice] = frozenset()
    # the children in listing order, worked out once
    ordered: tuple[tuple[str, Node], ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    node: Node
    version: str
    params: Params
    # every Param walked through, to validate against the slices
    walked: tuple[tuple[Param, str], ...]
    needs: frozenset[Slice]
    # the template of the path, `{version}` and parameters named: statistics key on it
    template: str
    # whether `token_mode=required` asks a token for this path (the row's, else the tree's)
    token_by_default: bool

    @property
    def leaf(self) -> Leaf | None:
        return self.node.leaf


class Tree:
    """`template_prefix` begins every statistics template of the tree (`/{version}`,
    `/openstack/{version}`); `token_by_default` is what `token_mode=required` means for a
    path whose row does not say (EC2: a token; OpenStack: none, cloud-init never sends one)."""

    def __init__(
        self,
        leaves: Iterable[Leaf],
        params: Iterable[Param],
        template_prefix: str = "/{version}",
        token_by_default: bool = True,
        sorted_listings: bool = True,
    ) -> None:
        """`sorted_listings` False: a directory lists its children in row order (Nova's
        OpenStack version listing is in its handlers' order, not sorted)."""
        self.sorted_listings = sorted_listings
        self.template_prefix = template_prefix
        self.token_by_default = token_by_default
        self.params = {p.name: p for p in params}
        self.root = Node()
        self.leaves = tuple(leaves)
        for leaf in self.leaves:
            self._insert(leaf)
        self._derive(self.root)

    def _insert(self, leaf: Leaf) -> None:
        node = self.root
        for segment in leaf.path.split("/"):
            if node.leaf is not None:
                raise ValueError(f"{leaf.path}: a leaf cannot have children")
            if segment.startswith("{"):
                param = self.params[segment.strip("{}")]
                if node.param is None:
                    node.param = (param, Node())
                elif node.param[0] is not param:
                    raise ValueError(f"{leaf.path}: two parameters at one level")
                node = node.param[1]
            else:
                node = node.children.setdefault(segment, Node())
        if node.leaf is not None or node.children or node.param:
            raise ValueError(f"{leaf.path}: defined twice or also a directory")
        node.leaf = leaf

    def _derive(self, node: Node) -> None:
        if node.leaf is not None:
            node.since = node.leaf.since
            node.always_since = node.leaf.since if node.leaf.present is None else "~"
            node.listing_needs = node.leaf.present_needs
            return
        needs: set[Slice] = set()
        sinces = []
        for child in node.children.values():
            self._derive(child)
            needs |= child.listing_needs
            sinces.append(child.since)
        node.always_since = min((c.always_since for c in node.children.values()), default="~")
        if node.param is not None:
            param, child = node.param
            self._derive(child)
            needs |= param.needs | child.listing_needs
            sinces.append(child.since)
        node.since = min(sinces, default="~")
        node.listing_needs = frozenset(needs)
        items = node.children.items()
        node.ordered = tuple(sorted(items) if self.sorted_listings else items)

    def match(self, version: str, segments: list[str]) -> Match | None:
        """Structural match; None when no such path exists in any instance's tree."""
        node = self.root
        params: dict[str, str] = {}
        walked: list[tuple[Param, str]] = []
        template: list[str] = []
        needs: set[Slice] = set()
        for segment in segments:
            child = node.children.get(segment)
            if child is not None:
                node = child
                template.append(segment)
            elif node.param is not None:
                param, node = node.param
                params[param.name] = segment
                walked.append((param, segment))
                needs |= param.needs
                template.append("{" + param.name + "}")
            else:
                return None
            if node.since > version:
                return None
        leaf = node.leaf
        token = self.token_by_default
        if leaf is not None:
            needs |= leaf.needs | leaf.present_needs
            if leaf.token is not None:
                token = leaf.token
        else:
            needs |= node.listing_needs
        below = "/".join(template)
        return Match(
            node,
            version,
            params,
            tuple(walked),
            frozenset(needs),
            f"{self.template_prefix}/{below}",
            token,
        )

    def answer(
        self, match: Match, loaded: Mapping[Slice, Any], listing: Callable[[list[str]], Answer]
    ) -> Answer | None:
        """Render a match from loaded slices; None means 404 for this instance."""
        view = View(loaded, match.version, match.params)
        for param, value in match.walked:
            if value not in param.values(view):
                return None
        node = match.node
        if node.leaf is not None:
            if not _leaf_present(node.leaf, view):
                return None
            return node.leaf.render(view)
        names = self.listing(node, view)
        return listing(names) if names or node is self.root else None

    def listing(self, node: Node, view: View) -> list[str]:
        return list(self._entries(node, view))

    def _has_any(self, node: Node, view: View) -> bool:
        """Whether a directory lists anything (what `listing` would say is non-empty),
        stopping at the first child present: a listing asks it of every subdirectory."""
        if node.always_since <= view.version:
            return True
        return next(self._entries(node, view), None) is not None

    def _entries(self, node: Node, view: View) -> Iterator[str]:
        """The directory's listing, entry by entry, in listing order."""
        for name, child in node.ordered:
            if child.leaf is not None:
                if _leaf_present(child.leaf, view):
                    yield name
            elif child.since <= view.version and self._has_any(child, view):
                yield name + "/"
        if node.param is not None:
            param, child = node.param
            for value in param.values(view):
                inner = view.with_param(param.name, value)
                # a parameter's child is listed only when present, like any other child
                if (
                    _leaf_present(child.leaf, inner)
                    if child.leaf is not None
                    else self._has_any(child, inner)
                ):
                    yield (
                        param.label(view, value)
                        if param.label
                        else value + ("/" if child.leaf is None else "")
                    )


def _leaf_present(leaf: Leaf, view: View) -> bool:
    if leaf.since > view.version:
        return False
    return leaf.present is None or leaf.present(view)
