"""The parity crawler asks every path of both trees and compares as the contract says:
JSON as data without `random_seed`, listing lines one by one, excused only by the table."""

from __future__ import annotations

import pytest

from loadtests.nova_peer import NovaCloud, NovaMetadataApp
from loadtests.nova_peer.parity import (
    DELIBERATE_DIFFERENCES,
    Answer,
    Crawl,
    Identity,
    compare,
    crawl_both,
    unexplained,
)


def crawl_of(answers: dict[str, Answer]) -> Crawl:
    return Crawl("http://example.invalid", dict(answers))


def test_json_compares_as_data_and_ignores_random_seed() -> None:
    ours = crawl_of(
        {"/openstack/latest/meta_data.json": Answer(200, b'{"a": 1, "random_seed": "x"}')}
    )
    theirs = crawl_of(
        {"/openstack/latest/meta_data.json": Answer(200, b'{"random_seed": "y", "a": 1}')}
    )
    assert compare(ours, theirs) == []
    theirs.answers["/openstack/latest/meta_data.json"] = Answer(
        200, b'{"a": 2, "random_seed": "y"}'
    )
    assert [d.what for d in compare(ours, theirs)] == ["json"]


def test_a_missing_listing_line_is_excused_only_by_the_table() -> None:
    ours = crawl_of({"/latest/meta-data/": Answer(200, b"hostname\ninstance-id")})
    theirs = crawl_of(
        {"/latest/meta-data/": Answer(200, b"hostname\ninstance-id\nsecurity-groups")}
    )
    (difference,) = compare(ours, theirs)
    assert difference.path == "/latest/meta-data/#security-groups"
    assert difference.reason == DELIBERATE_DIFFERENCES["/*/meta-data/#security-groups"]
    assert unexplained(compare(ours, theirs, deliberate={})) == [
        compare(ours, theirs, deliberate={})[0]
    ]


def test_status_and_body_differences_are_reported() -> None:
    ours = crawl_of(
        {"/latest/user-data": Answer(404, b""), "/latest/meta-data/hostname": Answer(200, b"a")}
    )
    theirs = crawl_of(
        {"/latest/user-data": Answer(200, b"x"), "/latest/meta-data/hostname": Answer(200, b"b")}
    )
    assert sorted(d.what for d in compare(ours, theirs)) == ["body", "status"]


@pytest.mark.parametrize("name", ["multi-3", "cell2-4"])
async def test_novas_app_crawled_twice_has_no_difference_with_itself(
    nova_metadata_app: NovaMetadataApp, nova_cloud_mysql: NovaCloud, name: str
) -> None:
    instance = nova_cloud_mysql.instance(name)
    identity = Identity(
        instance.uuid, instance.project_id, nova_cloud_mysql.shared_secret, instance.address
    )
    first, second = await crawl_both(
        nova_metadata_app.base_url, nova_metadata_app.base_url, identity
    )
    paths = set(first.answers)
    # both trees, every version, and the leaves under them
    assert {
        "/openstack",
        "/openstack/latest/meta_data.json",
        "/latest/meta-data/instance-id",
    } <= paths
    assert "/2009-04-04/meta-data/block-device-mapping/root" in paths
    assert compare(first, second) == []
