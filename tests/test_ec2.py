"""The EC2 tree: each leaf's value from the document, and the versions that gate them."""

from __future__ import annotations

from typing import Any

import pytest

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
    doc.update(ec2_id="i-0000abcd", reservation_id="r-feedbeef", launch_index=3,
               image_id="ami-12345678", availability_zone="zone-b")  # fmt: skip
    await put_instance(doc)
    expected = {
        "instance-id": "i-0000abcd", "ami-id": "ami-12345678", "reservation-id": "r-feedbeef",
        "ami-launch-index": "3", "instance-type": doc["flavor"]["name"],
        "hostname": doc["hostname"], "local-hostname": doc["hostname"],
        "local-ipv4": doc["ports"][0]["fixed_ips"][0]["address"],
        "public-ipv4": doc["ports"][0]["floating_ips"][0],
        "placement/availability-zone": "zone-b", "kernel-id": "aki-00000001",
        "ramdisk-id": "ari-00000002", "mac": doc["ports"][0]["mac"], "instance-action": "none",
    }  # fmt: skip
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


async def test_mac_and_network_interfaces_are_only_under_latest(
    guest: Any, put_instance: Any
) -> None:
    doc = await put_instance(full_document(N))
    first, second = doc["ports"]
    assert await value(guest, "/2009-04-04/meta-data/mac") is None
    assert await value(guest, "/2009-04-04/meta-data/network/interfaces/macs/") is None
    assert "network/" not in await listing(guest, "/2009-04-04/meta-data/")
    macs = await listing(guest, "/latest/meta-data/network/interfaces/macs/")
    assert macs == [first["mac"] + "/", second["mac"] + "/"]
    base = f"/latest/meta-data/network/interfaces/macs/{second['mac']}/"
    assert await value(guest, base + "device-number") == "1"
    assert await value(guest, base + "interface-id") == second["id"]
    assert await value(guest, base + "mac") == second["mac"]
    assert await value(guest, base + "local-ipv4s") == second["fixed_ips"][0]["address"]
    assert await value(guest, base + "subnet-ipv4-cidr-block") == second["fixed_ips"][0]["cidr"]
    assert await value(guest, base + "ipv6s") == second["fixed_ips"][1]["address"]
    assert await value(guest, base + "public-ipv4s") == second["floating_ips"][0]
    unknown = "/latest/meta-data/network/interfaces/macs/fa:16:3e:99:99:99/"
    assert await value(guest, unknown) is None


@pytest.mark.parametrize(
    ("leaf", "since"),
    [("local-hostname", "2007-01-19"), ("public-hostname", "2007-01-19"),
     ("public-ipv4", "2007-01-19"), ("instance-type", "2007-08-29"),
     ("block-device-mapping/ami", "2007-12-15"), ("kernel-id", "2007-12-15"),
     ("placement/availability-zone", "2008-02-01"), ("instance-action", "2008-09-01")],
)  # fmt: skip
async def test_leaves_appear_from_the_version_that_introduced_them(
    guest: Any, put_instance: Any, leaf: str, since: str
) -> None:
    await put_instance(full_document(N))
    versions = ["1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04", "latest"]  # fmt: skip
    top = leaf.split("/")[0] + ("/" if "/" in leaf else "")
    for version in versions:
        is_served = version == "latest" or version >= since
        got = await value(guest, f"/{version}/meta-data/{leaf}")
        assert (got is not None) == is_served, (version, leaf)
        assert (top in await listing(guest, f"/{version}/meta-data/")) == is_served


async def test_user_data_is_raw_and_404_when_absent(guest: Any, put_instance: Any) -> None:
    await put_instance(sample_document(N, user_data="I2Nsb3VkLWNvbmZpZw=="))
    assert await value(guest, "/latest/user-data") == "#cloud-config"
    await put_instance(sample_document(N, user_data=None))
    assert await value(guest, "/2009-04-04/user-data") is None
    assert "user-data" not in await listing(guest, "/2009-04-04/")
