"""The guest trees in Nova mode: Nova 34.0.0's own EC2 leaves and versions (none of the
AWS-only leaves store mode adds under `latest`), and the OpenStack tree as Nova lists it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from metadata.guest import ec2, openstack
from metadata.guest.match import Matcher, TreeRoot
from metadata.guest.tree import Leaf, Tree
from metadata.records import Slice

SECURITY_GROUPS = frozenset({Slice.SECURITY_GROUPS})

# Leaves Nova's metadata API does not have (AWS's, served by store mode under `latest`).
NOT_IN_NOVA = ("meta-data/mac", "meta-data/network/", "dynamic/")


def _nova_ec2_leaf(leaf: Leaf) -> Leaf:
    if leaf.path == "meta-data/security-groups":
        # Only Neutron knows them, so they are their own slice: no other path waits for
        # Neutron. Without its answer the leaf is unlisted rather than empty; with it,
        # listed as Nova lists it, even with no group (an empty body).
        return replace(
            leaf,
            render=lambda v: ec2.lines(list(v.security_groups.names)),
            needs=SECURITY_GROUPS,
            present=lambda v: v.security_groups.known,
            present_needs=SECURITY_GROUPS,
        )
    return leaf


def build_ec2_tree() -> Tree:
    leaves = [_nova_ec2_leaf(leaf) for leaf in ec2.LEAVES if not leaf.path.startswith(NOT_IN_NOVA)]
    params = [p for p in ec2.PARAMS if p.name != "mac"]
    return Tree(leaves, params, "/{version}", token_by_default=True)


def build_openstack_tree(static_vendor_data: Mapping[str, Any], static_json: bool) -> Tree:
    """`static_json`: StaticJSON is among nova.conf's vendordata providers; without it Nova
    has no vendor_data.json."""
    leaves = [
        leaf
        for leaf in openstack.build_tree(static_vendor_data).leaves
        if static_json or leaf.path != "vendor_data.json"
    ]
    # The rows are in the order Nova's _handle_version lists them.
    return Tree(leaves, (), "/openstack/{version}", token_by_default=False, sorted_listings=False)


def build_nova_matcher(static_vendor_data: Mapping[str, Any], static_json: bool) -> Matcher:
    # Nova's versions: `latest` is 2009-04-04, so no leaf AWS added later is served.
    versions = ec2.NOVA
    ec2_root = TreeRoot(
        "ec2", build_ec2_tree(), versions.served_version, versions.version_listing, "/"
    )
    openstack_root = TreeRoot(
        "openstack",
        build_openstack_tree(static_vendor_data, static_json),
        openstack.served_version,
        openstack.version_listing,
        "/openstack",
    )
    return Matcher({"openstack": openstack_root, "ec2": ec2_root}, default=ec2_root)
