"""The path tree as guests see it: every leaf is listed by its parent, every listed name
answers, listings and leaves have the shapes clients rely on, and paths are normalised or
refused the way Nova does it."""

from __future__ import annotations

from typing import Any

import pytest

from metadata.guest import ec2, openstack
from metadata.guest.tree import Leaf
from tests.aws_versions import AWS_VERSIONS
from tests.conftest import PROXY_SECRET
from tests.documents import guest_headers
from tests.guest_http import (
    crawl,
    full_document,
    minimal_document,
    raw_request,
    signed_headers,
    user_data_of,
)

EC2_VERSIONS = AWS_VERSIONS
# Crawled whole: Nova's oldest and newest, then each version that adds leaves cloud-init
# reads, the three cloud-init probes and the newest.
CRAWLED_EC2_VERSIONS = [
    "1.0",
    "2009-04-04",
    "2011-01-01",
    "2016-06-30",
    "2016-09-02",
    "2018-09-24",
    "2020-10-27",
    "2021-03-23",
    "2022-09-24",
]
OPENSTACK_VERSIONS = [
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
    "2025-04-04",
]
FULL = 5


def concrete_paths(leaf: Leaf, doc: dict[str, Any]) -> list[str]:
    """A leaf row's paths for this document, its parameters taken from the document."""
    values = {
        "{bdm}": list(doc["block_device_mapping"]),
        "{key}": [str(i) for i in range(len(doc["keys"]))],
        "{mac}": [p["mac"] for p in doc["ports"]],
        "{tag}": list(doc["tags"]),
    }
    ports = {p["mac"]: p for p in doc["ports"]}
    paths = [""]
    for segment in leaf.path.split("/"):
        if segment == "{public_ip}":
            # a port's floating IPs, under that port's MAC
            paths = [f"{p}/{ip}" for p in paths for ip in ports[p.split("/")[4]]["floating_ips"]]
            continue
        options = values.get(segment, [segment])
        paths = [f"{p}/{o}" if p else o for p in paths for o in options]
    return paths


def listed_name(doc: dict[str, Any], parent: str, segment: str, is_directory: bool) -> str:
    if parent.endswith("public-keys"):
        return f"{segment}={doc['keys'][int(segment)]['name']}"
    return segment + ("/" if is_directory else "")


async def get_listing(guest: Any, path: str, headers: dict[str, str]) -> list[str]:
    response = await guest.get(path, headers=headers)
    assert response.status == 200, (path, response.status)
    text: str = await response.text()
    return text.split("\n")


@pytest.mark.parametrize(
    ("prefix", "tree"),
    [("/latest/", ec2.build_tree()), ("/openstack/latest/", openstack.build_tree({}))],
    ids=["ec2", "openstack"],
)
async def test_every_leaf_row_is_listed_by_each_of_its_parents(
    guest: Any, put_instance: Any, prefix: str, tree: Any
) -> None:
    doc = await put_instance(full_document(FULL))
    headers = guest_headers(FULL)
    for leaf in tree.leaves:
        for path in concrete_paths(leaf, doc):
            segments = path.split("/")
            for depth, segment in enumerate(segments):
                parent = "/".join(segments[:depth])
                names = await get_listing(guest, prefix + parent, headers)
                is_directory = depth < len(segments) - 1
                assert listed_name(doc, parent, segment, is_directory) in names, (path, names)
            response = await guest.get(prefix + path, headers=headers)
            assert response.status == 200, path


async def assert_crawl_is_clean(
    guest: Any, root: str, headers: dict[str, str], is_ec2: bool
) -> Any:
    found = await crawl(guest, root, headers)
    for path, body in found.leaves.items():
        if not path.endswith(("user-data", "user_data")):
            assert not body.endswith(b"\n"), f"{path} ends with a newline"
    for directory, names in found.directories.items():
        for name in names:
            target = directory + (name.split("=")[0] + "/" if "=" in name else name)
            is_directory = target in found.directories
            assert is_directory == name.endswith("/") or "=" in name, (directory, name)
    if is_ec2:
        for path, content_type in found.content_types.items():
            assert content_type == "text/plain", path
    return found


@pytest.mark.parametrize("version", [*CRAWLED_EC2_VERSIONS, "latest"])
async def test_ec2_meta_data_crawl_of_a_full_instance_finds_only_answers(
    guest: Any, put_instance: Any, version: str
) -> None:
    doc = await put_instance(full_document(FULL))
    found = await assert_crawl_is_clean(guest, f"/{version}/meta-data/", guest_headers(FULL), True)
    assert found.leaves[f"/{version}/meta-data/instance-id"] == doc["ec2_id"].encode()
    key_path = f"/{version}/meta-data/public-keys/1/openssh-key"
    assert found.leaves[key_path] == doc["keys"][1]["data"].encode()


@pytest.mark.parametrize("version", [*CRAWLED_EC2_VERSIONS, "latest"])
async def test_ec2_version_root_lists_meta_data_and_user_data(
    guest: Any, put_instance: Any, version: str
) -> None:
    doc = await put_instance(full_document(FULL))
    names = await get_listing(guest, f"/{version}/", guest_headers(FULL))
    assert "meta-data/" in names and "user-data" in names
    response = await guest.get(f"/{version}/user-data", headers=guest_headers(FULL))
    assert await response.read() == user_data_of(doc)
    for name in names:
        response = await guest.get(f"/{version}/{name}", headers=guest_headers(FULL))
        assert response.status == 200, name


@pytest.mark.parametrize("version", [*OPENSTACK_VERSIONS, "latest"])
async def test_openstack_crawl_of_a_full_instance_finds_only_answers(
    guest: Any, put_instance: Any, version: str
) -> None:
    doc = await put_instance(full_document(FULL))
    found = await assert_crawl_is_clean(guest, f"/openstack/{version}/", guest_headers(FULL), False)
    assert found.leaves[f"/openstack/{version}/user_data"] == user_data_of(doc)
    assert f"/openstack/{version}/meta_data.json" in found.leaves


@pytest.mark.parametrize("version", ["1.0", "2009-04-04", "2021-03-23", "latest"])
async def test_ec2_crawl_of_a_minimal_instance_lists_nothing_that_404s(
    guest: Any, put_instance: Any, version: str
) -> None:
    doc = await put_instance(minimal_document(21))
    headers = signed_headers(doc, PROXY_SECRET)
    root = await get_listing(guest, f"/{version}/", headers)
    assert "user-data" not in root
    found = await assert_crawl_is_clean(guest, f"/{version}/meta-data/", headers, True)
    assert not any(
        "public-keys" in p or "local-ipv4" in p or "public-ipv4" in p
        for p in [*found.leaves, *found.directories]
    )


@pytest.mark.parametrize("version", ["2012-08-10", "2018-08-27", "latest"])
async def test_openstack_crawl_of_a_minimal_instance_lists_nothing_that_404s(
    guest: Any, put_instance: Any, version: str
) -> None:
    doc = await put_instance(minimal_document(22))
    headers = signed_headers(doc, PROXY_SECRET)
    found = await assert_crawl_is_clean(guest, f"/openstack/{version}/", headers, False)
    assert f"/openstack/{version}/user_data" not in found.leaves


async def test_ec2_version_listing_is_awss_dated_versions_then_latest(guest: Any) -> None:
    for path in ("/", "/ec2", "/ec2/"):
        response = await guest.get(path)
        assert response.status == 200
        assert await response.text() == "\n".join([*EC2_VERSIONS, "latest"])


async def test_openstack_version_listing_is_every_dated_version_then_latest(guest: Any) -> None:
    for path in ("/openstack", "/openstack/"):
        response = await guest.get(path)
        assert response.status == 200
        assert await response.text() == "\n".join([*OPENSTACK_VERSIONS, "latest"])


@pytest.mark.parametrize(
    "path",
    [
        "/latest/meta-data/placement/availability-zone/",
        "/latest/meta-data/instance-id/",
        "/ec2/latest/meta-data/instance-id",
        "//latest//meta-data/./instance-id",
        "/latest/meta-data/./placement//availability-zone",
    ],
)
async def test_leaf_is_answered_through_normalised_spellings(
    guest: Any, put_instance: Any, path: str
) -> None:
    doc = await put_instance(full_document(FULL))
    xff = list(guest_headers(FULL).items())
    response = await raw_request(guest, "GET", path, xff)
    assert response.status == 200, path
    expected = doc["availability_zone"] if "placement" in path else doc["ec2_id"]
    assert response.body == expected.encode()


@pytest.mark.parametrize("path", ["/latest/meta-data/placement", "/latest/meta-data/placement/"])
async def test_directory_answers_with_or_without_trailing_slash(
    guest: Any, put_instance: Any, path: str
) -> None:
    await put_instance(full_document(FULL))
    assert await get_listing(guest, path, guest_headers(FULL)) == ["availability-zone", "region"]


@pytest.mark.parametrize(
    "path",
    [
        "/latest/meta-data/../meta-data/instance-id",
        "/latest/meta-data/%2E%2E/user-data",
        "/latest/meta-data%2Finstance-id",
        "/latest/meta-data/placement%2favailability-zone",
        "/latest/meta-data/instance-id/extra",
        "/latest/meta-data/nope",
        "/2010-01-01/meta-data/instance-id",
        "/openstack/2099-01-01/meta_data.json",
        "/openstack/latest/nope.json",
        "/latest/meta-data/public-keys/0=k1",
        "/latest/meta-data/public-keys/7/openssh-key",
        "/1.0/meta-data/instance-type",
        "/openstack/2012-08-10/password",
    ],
)
async def test_paths_outside_the_tree_are_404(guest: Any, put_instance: Any, path: str) -> None:
    await put_instance(full_document(FULL))
    response = await raw_request(guest, "GET", path, list(guest_headers(FULL).items()))
    assert response.status == 404, (path, response.status, response.body)


async def test_head_answers_without_a_body(guest: Any, put_instance: Any) -> None:
    await put_instance(full_document(FULL))
    for path in (
        "/latest/meta-data/instance-id",
        "/latest/meta-data/",
        "/",
        "/openstack/latest/meta_data.json",
    ):
        response = await raw_request(guest, "HEAD", path, list(guest_headers(FULL).items()))
        assert response.status == 200, path
        assert response.body == b""


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/latest/meta-data/instance-id", "GET, HEAD"),
        ("PUT", "/latest/meta-data/instance-id", "GET, HEAD"),
        ("POST", "/latest/meta-data/instance-id", "GET, HEAD"),
        ("POST", "/latest/meta-data/", "GET, HEAD"),
        ("PATCH", "/", "GET, HEAD"),
        ("POST", "/openstack", "GET, HEAD"),
        ("POST", "/openstack/latest/meta_data.json", "GET, HEAD"),
        ("DELETE", "/openstack/latest/password", "GET, HEAD, POST"),
        ("PUT", "/openstack/latest/password", "GET, HEAD, POST"),
    ],
)
async def test_wrong_methods_are_405_with_an_allow_header(
    guest: Any, put_instance: Any, method: str, path: str, allow: str
) -> None:
    await put_instance(full_document(FULL))
    response = await guest.request(method, path, headers=guest_headers(FULL))
    assert response.status == 405, (method, path)
    assert response.headers["Allow"] == allow


def test_a_directory_is_listed_when_a_leaf_below_it_is_present_for_the_version() -> None:
    """Listings decide a subdirectory from its first present leaf, or at once from a leaf
    with no presence test: either way exactly what its own listing would hold."""
    from metadata.guest.tree import Answer, Tree, View

    def body(view: View) -> Answer:
        return Answer(b"x")

    tree = Tree(
        [
            Leaf("a/only-when/x", body, frozenset(), "2010", present=lambda v: v.params == {}),
            Leaf("b/sometimes", body, frozenset(), "2010", present=lambda v: False),
            Leaf("c/always", body, frozenset(), "2012"),
            Leaf("c/later", body, frozenset(), "2010", present=lambda v: False),
        ],
        [],
    )
    for version, listed in (("2009", []), ("2011", ["a/"]), ("2013", ["a/", "c/"])):
        view = View({}, version, {})
        assert tree.listing(tree.root, view) == listed, version
