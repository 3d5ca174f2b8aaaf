"""The EC2 tree: each leaf's value from the document, and the versions that gate them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from metadata import codec
from metadata.document import document_to_json, parse_document
from metadata.errors import InvalidDocument, NotFound
from metadata.guest import ec2
from metadata.guest.match import build_matcher, path_segments
from metadata.records import Slice
from tests.aws_versions import AWS_VERSIONS
from tests.documents import guest_headers, sample_document
from tests.guest_http import full_document

N = 11


async def value(guest: Any, path: str, n: int = N) -> str | None:
    """The leaf's text, or None when it answers 404."""
    response = await guest.get(path, headers=guest_headers(n))
    if response.status == 404:
        return None
    assert response.status == 200, (path, response.status)
    assert response.headers["Content-Type"] == "text/plain"
    text: str = await response.text()
    return text


async def listing(guest: Any, path: str, n: int = N) -> list[str]:
    text = await value(guest, path, n)
    assert text is not None, path
    return text.split("\n")


async def test_scalar_leaves_are_the_documents_values(guest: Any, put_instance: Any) -> None:
    doc = full_document(N)
    doc.update(
        ec2_id="i-0000abcd",
        reservation_id="r-feedbeef",
        launch_index=3,
        image_id="ami-12345678",
        availability_zone="zone-b",
    )
    await put_instance(doc)
    expected = {
        "instance-id": "i-0000abcd",
        "ami-id": "ami-12345678",
        "reservation-id": "r-feedbeef",
        "ami-launch-index": "3",
        "instance-type": doc["flavor"]["name"],
        "hostname": doc["hostname"],
        "local-hostname": doc["hostname"],
        "local-ipv4": doc["ports"][0]["fixed_ips"][0]["address"],
        "public-ipv4": doc["ports"][0]["floating_ips"][0],
        "placement/availability-zone": "zone-b",
        "kernel-id": "aki-00000001",
        "ramdisk-id": "ari-00000002",
        "mac": doc["ports"][0]["mac"],
        "instance-action": "none",
    }
    for leaf, want in expected.items():
        assert await value(guest, f"/latest/meta-data/{leaf}") == want, leaf


async def test_instance_id_is_derived_from_the_uuid_without_an_ec2_id(
    guest: Any, put_instance: Any
) -> None:
    doc = sample_document(N)
    await put_instance(doc)
    want = "i-" + doc["uuid"].replace("-", "")[:17]
    assert await value(guest, "/2009-04-04/meta-data/instance-id") == want


async def test_ami_id_of_a_glance_uuid_is_ami_and_its_first_8_hex_digits(
    guest: Any, put_instance: Any
) -> None:
    doc = sample_document(N, image_id="5d3c6a4e-8b1f-4f0e-9d3a-2b7c1e0f9a88")
    await put_instance(doc)
    assert await value(guest, "/latest/meta-data/ami-id") == "ami-5d3c6a4e"


async def test_security_groups_are_one_per_line(guest: Any, put_instance: Any) -> None:
    await put_instance(sample_document(N, security_groups=["default", "web", "ssh"]))
    assert await listing(guest, "/1.0/meta-data/security-groups") == ["default", "web", "ssh"]


async def test_public_keys_list_index_equals_name_and_each_holds_openssh_key(
    guest: Any, put_instance: Any
) -> None:
    doc = await put_instance(full_document(N))
    assert await listing(guest, "/latest/meta-data/public-keys/") == ["0=k1", "1=k2"]
    for index, key in enumerate(doc["keys"]):
        base = f"/latest/meta-data/public-keys/{index}"
        assert await listing(guest, base) == ["openssh-key"]
        assert await listing(guest, base + "/") == ["openssh-key"]
        assert await value(guest, base + "/openssh-key") == key["data"]


async def test_block_device_mapping_lists_names_and_answers_devices(
    guest: Any, put_instance: Any
) -> None:
    doc = await put_instance(full_document(N))
    mapping = doc["block_device_mapping"]
    names = await listing(guest, "/2007-12-15/meta-data/block-device-mapping/")
    assert names == sorted(mapping)
    for name, device in mapping.items():
        assert await value(guest, f"/latest/meta-data/block-device-mapping/{name}") == device


async def test_optional_leaves_are_absent_and_unlisted_when_not_set(
    guest: Any, put_instance: Any
) -> None:
    doc = sample_document(N)
    doc["ports"][0]["floating_ips"] = []
    await put_instance(doc)
    names = await listing(guest, "/latest/meta-data/")
    for leaf in ("kernel-id", "ramdisk-id", "public-ipv4"):
        assert leaf not in names
        assert await value(guest, f"/latest/meta-data/{leaf}") is None, leaf
    assert "public-hostname" in names


async def test_mac_and_network_interfaces_are_served_from_2011_01_01(
    guest: Any, put_instance: Any
) -> None:
    doc = await put_instance(full_document(N))
    first, second = doc["ports"]
    assert await value(guest, "/2009-04-04/meta-data/mac") is None
    assert await value(guest, "/2009-04-04/meta-data/network/interfaces/macs/") is None
    assert "network/" not in await listing(guest, "/2009-04-04/meta-data/")
    assert await value(guest, "/2011-01-01/meta-data/mac") == first["mac"]
    macs = await listing(guest, "/2021-03-23/meta-data/network/interfaces/macs/")
    assert macs == [first["mac"] + "/", second["mac"] + "/"]
    base = f"/2021-03-23/meta-data/network/interfaces/macs/{second['mac']}/"
    assert await value(guest, base + "device-number") == "1"
    assert await value(guest, base + "interface-id") == second["id"]
    assert await value(guest, base + "mac") == second["mac"]
    assert await value(guest, base + "local-ipv4s") == second["fixed_ips"][0]["address"]
    assert await value(guest, base + "subnet-ipv4-cidr-block") == second["fixed_ips"][0]["cidr"]
    assert await value(guest, base + "ipv6s") == second["fixed_ips"][1]["address"]
    assert await value(guest, base + "subnet-ipv6-cidr-blocks") == second["fixed_ips"][1]["cidr"]
    assert await value(guest, base + "public-ipv4s") == second["floating_ips"][0]
    unknown = "/latest/meta-data/network/interfaces/macs/fa:16:3e:99:99:99/"
    assert await value(guest, unknown) is None


async def test_each_port_is_a_vpc_interface_of_its_network(guest: Any, put_instance: Any) -> None:
    doc = full_document(N)
    doc["ports"][1]["fixed_ips"].append({"address": "192.168.11.8", "cidr": "192.168.11.0/24"})
    doc["ports"][1]["fixed_ips"].append({"address": "172.16.0.9", "cidr": "172.16.0.0/20"})
    await put_instance(doc)
    port = doc["ports"][1]
    base = f"/latest/meta-data/network/interfaces/macs/{port['mac']}/"
    assert await value(guest, base + "vpc-id") == port["network_id"]
    assert await value(guest, base + "owner-id") == doc["project_id"]
    assert await listing(guest, base + "local-ipv4s") == [
        "192.168.11.7",
        "192.168.11.8",
        "172.16.0.9",
    ]
    assert await value(guest, base + "vpc-ipv4-cidr-block") == "192.168.11.0/24"
    assert await listing(guest, base + "vpc-ipv4-cidr-blocks") == [
        "172.16.0.0/20",
        "192.168.11.0/24",
    ]
    assert await value(guest, base + "vpc-ipv6-cidr-blocks") == "fd01:b::/64"
    assert await listing(guest, base + "security-groups") == ["default", "web"]
    assert await listing(guest, base + "security-group-ids") == ["default", "web"]
    assert await listing(guest, base + "ipv4-associations/") == port["floating_ips"]
    associated = await value(guest, base + "ipv4-associations/" + port["floating_ips"][0])
    assert associated == "192.168.11.7"


async def test_a_port_without_ipv6_or_network_lists_none_of_their_leaves(
    guest: Any, put_instance: Any
) -> None:
    doc = sample_document(N)
    doc["ports"][0]["network_id"] = ""
    doc["ports"][0]["floating_ips"] = []
    await put_instance(doc)
    base = f"/latest/meta-data/network/interfaces/macs/{doc['ports'][0]['mac']}/"
    names = await listing(guest, base)
    for absent in (
        "ipv6s",
        "subnet-ipv6-cidr-blocks",
        "vpc-id",
        "vpc-ipv4-cidr-block",
        "vpc-ipv4-cidr-blocks",
        "vpc-ipv6-cidr-blocks",
        "public-ipv4s",
        "ipv4-associations/",
    ):
        assert absent not in names
        assert await value(guest, base + absent) is None, absent
    assert "ipv6" not in await listing(guest, "/latest/meta-data/")


@pytest.mark.parametrize(
    ("leaf", "since"),
    [
        ("local-hostname", "2007-01-19"),
        ("public-hostname", "2007-01-19"),
        ("public-ipv4", "2007-01-19"),
        ("instance-type", "2007-08-29"),
        ("block-device-mapping/ami", "2007-12-15"),
        ("kernel-id", "2007-12-15"),
        ("placement/availability-zone", "2008-02-01"),
        ("instance-action", "2008-09-01"),
        ("mac", "2011-01-01"),
        ("services/domain", "2014-02-25"),
        ("services/partition", "2015-10-20"),
        ("instance-life-cycle", "2019-10-01"),
        ("placement/region", "2020-08-24"),
        ("ipv6", "2021-01-03"),
        ("tags/instance/Name", "2021-03-23"),
    ],
)
async def test_leaves_appear_from_the_version_that_introduced_them(
    guest: Any, put_instance: Any, leaf: str, since: str
) -> None:
    await put_instance(full_document(N))
    parent, _, name = leaf.rpartition("/")
    for version in [*AWS_VERSIONS, "latest"]:
        is_served = version == "latest" or version >= since
        got = await value(guest, f"/{version}/meta-data/{leaf}")
        assert (got is not None) == is_served, (version, leaf)
        # listed by its parent exactly when served (a parent with nothing in it is absent)
        names = await value(guest, f"/{version}/meta-data/{parent}")
        assert (name in (names or "").split("\n")) == is_served, version


async def test_ipv6_leaves_of_an_interface_appear_from_2016_06_30(
    guest: Any, put_instance: Any
) -> None:
    doc = await put_instance(full_document(N))
    mac = doc["ports"][0]["mac"]
    for version, is_served in (("2016-04-19", False), ("2016-06-30", True), ("latest", True)):
        base = f"/{version}/meta-data/network/interfaces/macs/{mac}/"
        names = await listing(guest, base)
        for leaf in ("ipv6s", "subnet-ipv6-cidr-blocks", "vpc-ipv4-cidr-blocks"):
            assert (leaf in names) == is_served, (version, leaf)
            assert (await value(guest, base + leaf) is not None) == is_served, (version, leaf)
        assert "vpc-ipv4-cidr-block" in names


@pytest.mark.parametrize("version", ["2010-01-01", "2023-01-01", "2021-3-23", "LATEST", "v1"])
async def test_an_unknown_version_is_404(guest: Any, put_instance: Any, version: str) -> None:
    await put_instance(full_document(N))
    assert await value(guest, f"/{version}/meta-data/instance-id") is None
    assert await value(guest, f"/{version}/") is None


async def test_region_is_the_documents_else_the_zone_minus_its_letter(
    guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(N, availability_zone="eu-west-3b"))
    assert await value(guest, "/latest/meta-data/placement/region") == "eu-west-3"
    await put_instance(sample_document(N, availability_zone="nova", region="regionone"))
    assert await value(guest, "/2021-03-23/meta-data/placement/region") == "regionone"
    document = await value(guest, "/latest/dynamic/instance-identity/document")
    assert document is not None and '"region": "regionone"' in document


async def test_services_and_life_cycle_are_awss_fixed_answers(
    guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(N))
    assert await listing(guest, "/latest/meta-data/services/") == ["domain", "partition"]
    assert await value(guest, "/latest/meta-data/services/domain") == "amazonaws.com"
    assert await value(guest, "/latest/meta-data/services/partition") == "aws"
    assert await value(guest, "/latest/meta-data/instance-life-cycle") == "on-demand"


async def test_tags_are_served_only_when_the_document_opts_in(
    guest: Any, put_instance: Any
) -> None:
    tags = {"Name": "web-11", "cost-center": "42", "a:b@c": "x y"}
    await put_instance(sample_document(N, tags=tags))
    assert "tags/" not in await listing(guest, "/latest/meta-data/")
    assert await value(guest, "/latest/meta-data/tags/instance/Name") is None
    await put_instance(sample_document(N, tags=tags, instance_metadata_tags=True))
    assert "tags/" in await listing(guest, "/2021-03-23/meta-data/")
    assert await listing(guest, "/2021-03-23/meta-data/tags/") == ["instance/"]
    names = await listing(guest, "/2021-03-23/meta-data/tags/instance")
    assert names == sorted(tags)
    for key, want in tags.items():
        assert await value(guest, f"/2021-03-23/meta-data/tags/instance/{key}") == want
    assert await value(guest, "/latest/meta-data/tags/instance/Other") is None
    # opted in without tags: nothing to list, so nothing is listed
    await put_instance(sample_document(N, instance_metadata_tags=True))
    assert "tags/" not in await listing(guest, "/latest/meta-data/")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"region": "US East"}, "region"),
        ({"region": 5}, "region"),
        ({"tags": {"a/b": "x"}}, "tags.a/b"),
        ({"tags": {"_index": "x"}}, "tags._index"),
        ({"tags": {"..": "x"}}, "tags..."),
        ({"tags": {"k": "two\nlines"}}, "tags.k"),
        ({"tags": {"k": 1}}, "tags.k"),
        ({"tags": ["k"]}, "tags"),
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "tags"),
        ({"instance_metadata_tags": "yes"}, "instance_metadata_tags"),
    ],
)
def test_bad_ec2_fields_are_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidDocument) as raised:
        parse_document(sample_document(N, **fields))
    assert raised.value.field == field


def test_ec2_fields_round_trip_and_old_documents_stay_valid() -> None:
    old = parse_document(sample_document(N))
    assert (old.core.region, old.core.tags, old.core.instance_metadata_tags) == (None, (), False)
    assert not {"region", "tags", "instance_metadata_tags"} & set(document_to_json(old))
    given = sample_document(N, region="r1", tags={"b": "2", "a": "1"}, instance_metadata_tags=True)
    exported = document_to_json(parse_document(given))
    assert exported["region"] == "r1"
    assert exported["tags"] == {"a": "1", "b": "2"}
    assert exported["instance_metadata_tags"] is True
    assert parse_document(exported) == parse_document(given)


def test_store_mode_serves_awss_versions_with_every_leaf_under_latest() -> None:
    matcher = build_matcher({}, ec2.STORE)
    assert matcher.match([]).listing == "\n".join([*AWS_VERSIONS, "latest"]).encode()
    for path in ("/2021-03-23/meta-data/mac", "/latest/meta-data/mac"):
        assert matcher.match(path_segments(path)).match is not None


def test_nova_mode_keeps_novas_versions_with_latest_as_2009_04_04() -> None:
    matcher = build_matcher({}, ec2.NOVA)
    assert matcher.match([]).listing == "\n".join([*AWS_VERSIONS[:9], "latest"]).encode()
    latest = matcher.match(path_segments("/latest/meta-data/instance-id")).match
    assert latest is not None and latest.version == "2009-04-04"
    for path in ("/2021-03-23/meta-data/instance-id", "/latest/meta-data/mac"):
        with pytest.raises(NotFound):
            matcher.match(path_segments(path))


def test_the_core_slice_with_ec2_fields_survives_the_shared_cache_codec() -> None:
    core = parse_document(
        sample_document(N, region="r1", tags={"a": "1"}, instance_metadata_tags=True)
    ).core
    assert codec.decode(Slice.CORE, codec.encode(Slice.CORE, core)) == core
    # a slice cached before these fields existed still decodes, with their defaults
    raw = orjson.loads(codec.encode(Slice.CORE, core))
    for name in ("region", "tags", "instance_metadata_tags"):
        del raw[name]
    old = codec.decode(Slice.CORE, orjson.dumps(raw))
    assert (old.region, old.tags, old.instance_metadata_tags) == (None, (), False)


async def test_an_unknown_version_loads_nothing(guest: Any, admin: Any, put_instance: Any) -> None:
    """cloud-init waits for each probe without a timeout: a version we do not serve is
    refused from the path alone, before any slice is loaded."""
    await put_instance(full_document(N))
    assert await value(guest, "/2021-03-23/meta-data/instance-id") is not None
    for version in ("2023-01-01", "2010-10-10", "2021-03-24"):
        assert await value(guest, f"/{version}/meta-data/instance-id") is None
    rows = (await (await admin.get("/v1/stats/paths")).json())["paths"]
    (unmatched,) = [row for row in rows if row["path"] == "(unmatched)"]
    assert (unmatched["hits"], unmatched["db_statements"]) == (3, 0)
