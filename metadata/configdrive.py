"""A config drive for one instance: the files Nova's config drive holds, rendered by the
same rows and renderers as the live trees, written as an ISO 9660 image labelled `config-2`.

Nova (`InstanceMetadata.metadata_for_config_drive`) writes `openstack/<every version and
latest>/…` with each file gated by version as the HTTP tree gates it, and for EC2 only
`ec2/2009-04-04` and `ec2/latest` (its `config_drive_skip_versions` default), each a
`meta-data.json` (the meta-data tree as one JSON object) and `user-data`. No `password`:
the guest posts that to the live service.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from metadata.config import Settings
from metadata.errors import Conflict, InstanceNotFound
from metadata.guest import ec2, openstack
from metadata.guest.render import listing_answer
from metadata.guest.tree import Answer, Node, Tree, View
from metadata.iso_image import build_iso
from metadata.loader import SliceLoader
from metadata.records import Slice
from metadata.store.engine import Database

VOLUME_LABEL = "config-2"
PUBLISHER = "metadata config drive"
EC2_VERSIONS = ("2009-04-04", "latest")
# Leaves a guest posts to rather than reads.
LIVE_ONLY = frozenset({"password"})
SEED_BYTES = 512


def _needs(tree: Tree) -> frozenset[Slice]:
    needs: set[Slice] = set()
    for leaf in tree.leaves:
        if leaf.path not in LIVE_ONLY:
            needs |= leaf.needs | leaf.present_needs
    for param in tree.params.values():
        needs |= param.needs
    return frozenset(needs)


def drive_seed(uuid: str, generation: int) -> bytes:
    """meta_data.json's `random_seed` on a drive. The live tree sends fresh random bytes on
    every read; a drive is an image built to be reproducible (the CLI and the admin route
    give the same bytes), so its seed is derived from the instance and its generation. It
    is no secret and no entropy: cloud-init mixes it into /dev/urandom, which it cannot
    weaken, and the live tree's `random_seed` stays random."""
    return hashlib.shake_256(f"config-drive random_seed {uuid} {generation}".encode()).digest(
        SEED_BYTES
    )


def _finish(answer: Answer, seed: bytes) -> bytes:
    if answer.seed_at < 0:
        return answer.body
    at = answer.seed_at
    return answer.body[:at] + base64.b64encode(seed) + answer.body[at:]


def _openstack_files(tree: Tree, loaded: Mapping[Slice, Any], seed: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name in [*openstack.served_versions(), "latest"]:
        version = openstack.served_version(name)
        assert version is not None
        for leaf in tree.leaves:
            if leaf.path in LIVE_ONLY:
                continue
            match = tree.match(version, leaf.path.split("/"))
            answer = None if match is None else tree.answer(match, loaded, listing_answer)
            if answer is not None:
                files[f"openstack/{name}/{leaf.path}"] = _finish(answer, seed)
    return files


def _leaf_value(body: bytes) -> str | list[str]:
    # As cloud-init's EC2 crawler reads a leaf over HTTP: several lines are a list.
    text = body.decode()
    return text.splitlines() if "\n" in text else text


def _is_present(node: Node, view: View) -> bool:
    leaf = node.leaf
    assert leaf is not None
    return leaf.since <= view.version and (leaf.present is None or leaf.present(view))


def _tree_as_json(node: Node, view: View) -> dict[str, Any]:
    """A directory of the EC2 tree as Nova's nested meta-data dict: a key per present
    child, a leaf's text as its value."""
    value: dict[str, Any] = {}
    children = [(name, child, view) for name, child in sorted(node.children.items())]
    if node.param is not None:
        param, child = node.param
        children += [(v, child, view.with_param(param.name, v)) for v in param.values(view)]
    for name, child, inner in children:
        if child.leaf is not None:
            if _is_present(child, inner):
                answer = child.leaf.render(inner)
                if answer is not None:
                    value[name] = _leaf_value(answer.body)
        elif child.since <= view.version and (below := _tree_as_json(child, inner)):
            value[name] = below
    return value


def _ec2_files(tree: Tree, loaded: Mapping[Slice, Any]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name in EC2_VERSIONS:
        version = ec2.STORE.served_version(name)
        assert version is not None
        meta_data = tree.match(version, ["meta-data"])
        assert meta_data is not None
        document = _tree_as_json(meta_data.node, View(loaded, version, {}))
        files[f"ec2/{name}/meta-data.json"] = orjson.dumps(document)
        user_data = tree.match(version, ["user-data"])
        answer = None if user_data is None else tree.answer(user_data, loaded, listing_answer)
        if answer is not None:
            files[f"ec2/{name}/user-data"] = answer.body
    return files


async def drive_files(loader: SliceLoader, settings: Settings, uuid: str) -> dict[str, bytes]:
    """Every file of the instance's config drive, by its path on the drive. The slices come
    from the database in one statement (a drive is a snapshot: no cached copy is used)."""
    os_tree = openstack.build_tree(settings.vendor_data)
    ec2_tree = ec2.build_tree()
    try:
        loaded, generation = await loader.fetch(uuid, _needs(os_tree) | _needs(ec2_tree), None)
    except InstanceNotFound:
        raise InstanceNotFound(f"no instance {uuid}") from None
    user_data = loaded[Slice.USER_DATA].data
    limit = settings.user_data_max_bytes
    if user_data is not None and len(user_data) > limit:
        raise Conflict(
            f"the instance's user data is {len(user_data)} bytes, over the limit of "
            f"{limit} (user_data_max_bytes): no config drive is built"
        )
    seed = drive_seed(uuid, generation)
    return {**_openstack_files(os_tree, loaded, seed), **_ec2_files(ec2_tree, loaded)}


def drive_image(files: Mapping[str, bytes]) -> bytes:
    """The ISO 9660 image (Joliet, Rock Ridge) labelled `config-2`, as Nova's genisoimage
    call makes it (`-J -r -V config-2`)."""
    return build_iso(files, VOLUME_LABEL, PUBLISHER)


async def write_config_drive(settings: Settings, uuid: str, output: Path) -> int:
    """`metadata config-drive`: the image from the database straight into `output` (only
    once it is complete: an unknown instance leaves no file); its size."""
    from metadata.cache import SliceCache
    from metadata.providers import build_providers
    from metadata.providers.dynamic_vendor_data import open_session
    from metadata.store.migrate import upgrade
    from metadata.store.source import StoreSource

    db = Database(
        settings.database_url,
        timeout=settings.database_timeout,
        read_timeout=settings.database_read_timeout,
    )
    session = open_session() if settings.vendor_data_targets else None
    try:
        await upgrade(db.writer)  # an empty database knows no instance, not a traceback
        # A private, unused cache: drive_files reads the database directly.
        providers = build_providers(
            settings.vendor_data_targets, settings.vendor_data_timeout, session
        )
        cache = SliceCache("memory://", settings.cache_ttl, 1)
        loader = SliceLoader(StoreSource(db), providers, cache)
        files = await drive_files(loader, settings, uuid)
    finally:
        if session is not None:
            await session.close()
        await db.dispose()
    image = await asyncio.to_thread(drive_image, files)
    await asyncio.to_thread(output.write_bytes, image)
    return len(image)
