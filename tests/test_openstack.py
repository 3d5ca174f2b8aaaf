"""The OpenStack tree: meta_data.json per version, network_data.json from the ports,
vendor data, user data and the guest's one password POST."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from metadata.document import parse_document
from metadata.guest import openstack
from metadata.guest.tree import View
from metadata.records import Slice
from tests.conftest import PROXY_SECRET
from tests.documents import guest_headers, sample_document
from tests.guest_http import full_document, minimal_document, signed_headers

STATIC_VENDOR_DATA = {"cloud": "static", "region": "r1"}
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
N = 8


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"vendor_data": STATIC_VENDOR_DATA}


def network_json(ports: list[dict[str, Any]]) -> Any:
    """network_data.json rendered straight from a document's ports (no server)."""
    doc = parse_document(sample_document(1, ports=ports))
    answer = openstack.network_data(View({Slice.NETWORK: doc.network}, "latest", {}))
    assert answer is not None and answer.content_type == "application/json"
    return json.loads(answer.body)


def port(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "0123456789abcdef",
        "mac": "fa:16:3e:00:00:01",
        "network_id": "net-1",
        "mtu": 1500,
    }
    return {**base, **overrides}


def test_network_data_of_a_static_ipv4_port_has_gateway_routes_and_dns() -> None:
    ip = {
        "address": "10.0.0.5",
        "cidr": "10.0.0.0/24",
        "gateway": "10.0.0.1",
        "dns": ["10.0.0.2", "10.0.0.3"],
        "routes": [{"cidr": "172.16.0.0/16", "gateway": "10.0.0.9"}],
    }
    assert network_json([port(fixed_ips=[ip])]) == {
        "links": [
            {
                "id": "tap0123456789a",
                "vif_id": "0123456789abcdef",
                "type": "ovs",
                "mtu": 1500,
                "ethernet_mac_address": "fa:16:3e:00:00:01",
            }
        ],
        "networks": [
            {
                "id": "network0",
                "type": "ipv4",
                "link": "tap0123456789a",
                "ip_address": "10.0.0.5",
                "netmask": "255.255.255.0",
                "routes": [
                    {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
                    {"network": "172.16.0.0", "netmask": "255.255.0.0", "gateway": "10.0.0.9"},
                ],
                "network_id": "net-1",
                "services": [
                    {"type": "dns", "address": "10.0.0.2"},
                    {"type": "dns", "address": "10.0.0.3"},
                ],
            }
        ],
        "services": [
            {"type": "dns", "address": "10.0.0.2"},
            {"type": "dns", "address": "10.0.0.3"},
        ],
    }


def test_network_data_of_ipv6_static_and_slaac_subnets() -> None:
    static = {"address": "fd00::5", "cidr": "fd00::/64", "gateway": "fd00::1", "dns": ["fd00::53"]}
    slaac = {"address": "fd01::7", "cidr": "fd01::/64", "mode": "slaac"}
    data = network_json(
        [port(fixed_ips=[static]), port(id="p2", mac="fa:16:3e:00:00:02", fixed_ips=[slaac])]
    )
    assert data["networks"] == [
        {
            "id": "network0",
            "type": "ipv6",
            "link": "tap0123456789a",
            "ip_address": "fd00::5",
            "netmask": "ffff:ffff:ffff:ffff::",
            "routes": [{"network": "::", "netmask": "::", "gateway": "fd00::1"}],
            "network_id": "net-1",
            "services": [{"type": "dns", "address": "fd00::53"}],
        },
        {
            "id": "network1",
            "type": "ipv6_slaac",
            "link": "tapp2",
            "ip_address": "fd01::7",
            "netmask": "ffff:ffff:ffff:ffff::",
            "routes": [],
            "network_id": "net-1",
            "services": [],
        },
    ]
    assert data["services"] == [{"type": "dns", "address": "fd00::53"}]


def test_network_data_of_a_dhcp_subnet_names_only_the_network() -> None:
    ip = {"address": "10.0.0.5", "cidr": "10.0.0.0/24", "gateway": "10.0.0.1", "mode": "dhcp"}
    data = network_json([port(fixed_ips=[ip])])
    assert data["networks"] == [
        {"id": "network0", "type": "ipv4_dhcp", "link": "tap0123456789a", "network_id": "net-1"}
    ]


def test_network_data_numbers_networks_across_two_ports_and_dedups_dns() -> None:
    first = port(
        fixed_ips=[
            {"address": "10.0.0.5", "cidr": "10.0.0.0/24", "dns": ["10.0.0.2"]},
            {"address": "fd00::5", "cidr": "fd00::/64", "dns": ["10.0.0.2", "fd00::53"]},
        ]
    )
    second = port(
        id="second-port-id",
        mac="fa:16:3e:00:00:02",
        network_id="net-2",
        mtu=None,
        fixed_ips=[{"address": "10.1.0.5", "cidr": "10.1.0.0/16", "dns": ["fd00::53", "10.1.0.2"]}],
    )
    data = network_json([first, second])
    assert [(n["id"], n["link"], n["ip_address"]) for n in data["networks"]] == [
        ("network0", "tap0123456789a", "10.0.0.5"),
        ("network1", "tap0123456789a", "fd00::5"),
        ("network2", "tapsecond-port", "10.1.0.5"),
    ]
    assert data["networks"][2]["netmask"] == "255.255.0.0"
    assert data["links"][1] == {
        "id": "tapsecond-port",
        "vif_id": "second-port-id",
        "type": "ovs",
        "mtu": None,
        "ethernet_mac_address": "fa:16:3e:00:00:02",
    }
    assert data["services"] == [
        {"type": "dns", "address": a} for a in ("10.0.0.2", "fd00::53", "10.1.0.2")
    ]


def test_network_data_serves_only_the_first_subnet_of_each_family_and_its_dns() -> None:
    # Nova (netutils.get_network_metadata) takes the first IPv4 and first IPv6 subnet of a
    # port; a second subnet's address and DNS servers are not served.
    ips = [
        {"address": "10.0.0.5", "cidr": "10.0.0.0/24", "dns": ["10.0.0.2"]},
        {"address": "10.9.0.5", "cidr": "10.9.0.0/24", "dns": ["10.9.0.2"]},
    ]
    data = network_json([port(fixed_ips=ips)])
    assert [n["ip_address"] for n in data["networks"]] == ["10.0.0.5"]
    assert data["services"] == [{"type": "dns", "address": "10.0.0.2"}]


def test_network_data_calls_an_ethernet_link_phy_as_nova_does() -> None:
    ip = {"address": "10.0.0.5", "cidr": "10.0.0.0/24"}
    data = network_json([port(type="ethernet", fixed_ips=[ip])])
    assert data["links"][0]["type"] == "phy"


def test_network_data_of_an_instance_without_ports_is_empty() -> None:
    assert network_json([]) == {}


async def get_json(guest: Any, path: str, headers: dict[str, str]) -> Any:
    response = await guest.get(path, headers=headers)
    assert response.status == 200, path
    assert response.headers["Content-Type"] == "application/json"
    return json.loads(await response.read())


@pytest.mark.parametrize("version", OPENSTACK_VERSIONS)
async def test_meta_data_json_carries_the_fields_each_version_adds(
    guest: Any, put_instance: Any, version: str
) -> None:
    doc = full_document(N)
    doc["devices"].append(
        {
            "type": "share",
            "share_id": "s-1",
            "tag": "data",
            "bus": "none",
            "address": "",
            "tags": [],
        }
    )
    doc = await put_instance(doc)
    meta = await get_json(guest, f"/openstack/{version}/meta_data.json", guest_headers(N))
    assert meta["uuid"] == doc["uuid"] and meta["hostname"] == doc["hostname"]
    assert meta["name"] == doc["name"] and meta["availability_zone"] == doc["availability_zone"]
    assert meta["launch_index"] == doc["launch_index"] and meta["meta"] == doc["metadata"]
    assert meta["public_keys"] == {k["name"]: k["data"] for k in doc["keys"]}
    assert meta["keys"] == doc["keys"]
    assert ("random_seed" in meta) == (version >= "2013-04-04")
    assert meta.get("project_id") == (doc["project_id"] if version >= "2015-10-15" else None)
    assert ("dedicated_cpus" in meta) == (version >= "2020-10-14")
    if version >= "2020-10-14":
        assert meta["dedicated_cpus"] == doc["dedicated_cpus"]
    if version < "2016-06-30":
        assert "devices" not in meta
        return
    nic = meta["devices"][0]
    assert {k: nic[k] for k in ("type", "bus", "address", "mac", "tags")} == {
        k: doc["devices"][0][k] for k in ("type", "bus", "address", "mac", "tags")
    }
    assert ("vlan" in nic) == (version >= "2017-02-22")
    assert ("vf_trusted" in nic) == (version >= "2018-08-27")
    shares = [d for d in meta["devices"] if d["type"] == "share"]
    assert shares == ([doc["devices"][1]] if version >= "2025-04-04" else [])


@pytest.mark.parametrize("version", ["2016-06-30", "2017-02-22", "2018-08-27"])
async def test_an_untagged_nic_is_shown_from_the_version_that_gives_it_a_field(
    guest: Any, put_instance: Any, version: str
) -> None:
    """Nova's `_get_device_metadata` skips a NIC with no tags, no VLAN and no vf_trusted:
    one with a VLAN (0 counts) shows from 2017-02-22, any NIC from 2018-08-27."""
    doc = full_document(N)
    nic = {"type": "nic", "bus": "pci", "address": "0000:00:04.0", "vf_trusted": False}
    doc["devices"] = [{**nic, "mac": "fa:16:3e:00:00:0a", "vlan": 0}, {**nic, "mac": "m-2"}]
    await put_instance(doc)
    meta = await get_json(guest, f"/openstack/{version}/meta_data.json", guest_headers(N))
    shown = {d["mac"]: d.get("vlan") for d in meta["devices"]}
    expected = {
        "2016-06-30": {},
        "2017-02-22": {"fa:16:3e:00:00:0a": 0},
        "2018-08-27": {"fa:16:3e:00:00:0a": 0, "m-2": None},
    }
    assert shown == expected[version]


async def test_random_seed_is_512_fresh_random_bytes_on_each_request(
    guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(N))
    seeds = []
    for _ in range(2):
        meta = await get_json(guest, "/openstack/latest/meta_data.json", guest_headers(N))
        seeds.append(base64.b64decode(meta["random_seed"], validate=True))
    assert [len(s) for s in seeds] == [512, 512]
    assert seeds[0] != seeds[1]


async def test_meta_data_json_of_an_instance_without_keys_or_metadata_omits_them(
    guest: Any, put_instance: Any
) -> None:
    doc = await put_instance(minimal_document(N))
    meta = await get_json(
        guest, "/openstack/latest/meta_data.json", signed_headers(doc, PROXY_SECRET)
    )
    assert not {"public_keys", "keys", "meta"} & set(meta)
    assert meta["devices"] == [] and meta["dedicated_cpus"] == []


async def test_vendor_data_is_the_static_data_with_the_instances_keys_on_top(
    guest: Any, put_instance: Any
) -> None:
    doc = await put_instance(sample_document(N, vendor_data={"cloud": "mine", "x": [1]}))
    expected = {**STATIC_VENDOR_DATA, **doc["vendor_data"]}
    assert expected == {"cloud": "mine", "region": "r1", "x": [1]}
    path = "/openstack/latest/"
    assert await get_json(guest, path + "vendor_data.json", guest_headers(N)) == expected
    assert await get_json(guest, path + "vendor_data2.json", guest_headers(N)) == {
        "static": expected
    }


async def test_network_data_json_is_served_from_the_instances_ports(
    guest: Any, put_instance: Any
) -> None:
    doc = await put_instance(full_document(N))
    data = await get_json(guest, "/openstack/latest/network_data.json", guest_headers(N))
    assert [link["vif_id"] for link in data["links"]] == [p["id"] for p in doc["ports"]]
    assert [n["type"] for n in data["networks"]] == ["ipv4", "ipv6", "ipv4", "ipv6_slaac"]


async def test_user_data_is_the_raw_bytes_given(guest: Any, put_instance: Any) -> None:
    raw = b"\x00\xffbinary\n#!/bin/sh\n"
    await put_instance(sample_document(N, user_data=base64.b64encode(raw).decode()))
    response = await guest.get("/openstack/latest/user_data", headers=guest_headers(N))
    assert response.status == 200
    assert await response.read() == raw


async def test_user_data_is_404_and_not_listed_when_there_is_none(
    guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(N, user_data=None))
    listing = await guest.get("/openstack/latest/", headers=guest_headers(N))
    assert "user_data" not in (await listing.text()).split("\n")
    response = await guest.get("/openstack/latest/user_data", headers=guest_headers(N))
    assert response.status == 404


async def test_password_is_posted_once_and_read_back(guest: Any, put_instance: Any) -> None:
    await put_instance(sample_document(N))
    path, headers = "/openstack/latest/password", guest_headers(N)
    empty = await guest.get(path, headers=headers)
    assert empty.status == 200 and await empty.read() == b""
    secret = "c2VjcmV0IGVuY3J5cHRlZCBieSB0aGUgZ3Vlc3Q=" * 3
    assert (await guest.post(path, data=secret, headers=headers)).status == 200
    stored = await guest.get("/openstack/2013-04-04/password", headers=headers)
    assert await stored.text() == secret
    again = await guest.post(path, data="other", headers=headers)
    assert again.status == 409
    assert await (await guest.get(path, headers=headers)).text() == secret


async def test_password_over_1020_bytes_is_refused_and_1020_accepted(
    guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(N))
    path, headers = "/openstack/latest/password", guest_headers(N)
    too_long = await guest.post(path, data=b"x" * 1021, headers=headers)
    assert too_long.status == 400
    assert "1020" in await too_long.text()
    assert await (await guest.get(path, headers=headers)).read() == b""
    assert (await guest.post(path, data=b"y" * 1020, headers=headers)).status == 200
    assert await (await guest.get(path, headers=headers)).read() == b"y" * 1020


async def test_password_post_is_405_on_ec2_paths(guest: Any, put_instance: Any) -> None:
    await put_instance(sample_document(N))
    for path in ("/latest/user-data", "/2009-04-04/meta-data/instance-id", "/latest/"):
        response = await guest.post(path, data="pw", headers=guest_headers(N))
        assert response.status == 405, path
        assert response.headers["Allow"] == "GET, HEAD"
    # nothing was stored on the way
    response = await guest.get("/openstack/latest/password", headers=guest_headers(N))
    assert await response.read() == b""
