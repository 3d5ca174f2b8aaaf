"""The NoCloud tree: cloud-init's seed files from the instance's slices, every one 200 (an
empty body when there is nothing), identified like every guest request, counted per path."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from tests.conftest import PROXY_SECRET
from tests.documents import guest_headers, sample_document
from tests.guest_http import full_document, minimal_document, signed_headers

N = 31
FILES = ("meta-data", "user-data", "vendor-data", "network-config")


async def body(guest: Any, path: str, headers: dict[str, str]) -> bytes:
    response = await guest.get(path, headers=headers)
    assert response.status == 200, (path, response.status)
    data: bytes = await response.read()
    return data


async def test_meta_data_is_yaml_with_instance_id_hostname_and_keys(
    guest: Any, put_instance: Any
) -> None:
    doc = await put_instance(full_document(N))
    meta = yaml.safe_load(await body(guest, "/nocloud/meta-data", guest_headers(N)))
    assert meta == {
        "instance-id": doc["uuid"],
        "local-hostname": doc["hostname"],
        "public-keys": [k["data"] for k in doc["keys"]],
    }


async def test_user_data_is_byte_exact(guest: Any, put_instance: Any) -> None:
    raw = bytes(range(256))
    await put_instance(sample_document(N, user_data=base64.b64encode(raw).decode()))
    assert await body(guest, "/nocloud/user-data", guest_headers(N)) == raw


async def test_vendor_data_is_the_cloud_init_part_of_vendor_data(
    guest: Any, put_instance: Any
) -> None:
    vendor = {"cloud-init": "#cloud-config\npackages: [htop]\n", "other": 1}
    await put_instance(sample_document(N, vendor_data=vendor))
    assert (
        await body(guest, "/nocloud/vendor-data", guest_headers(N)) == vendor["cloud-init"].encode()
    )


async def test_network_config_is_version_2_from_the_ports(guest: Any, put_instance: Any) -> None:
    doc = full_document(N)
    doc["ports"][1]["fixed_ips"].append(
        {"address": "10.9.0.4", "cidr": "10.9.0.0/24", "mode": "dhcp"}
    )
    doc["ports"][0]["fixed_ips"][0]["routes"] = [{"cidr": "192.0.2.0/24", "gateway": "10.0.31.253"}]
    await put_instance(doc)
    config = yaml.safe_load(await body(guest, "/nocloud/network-config", guest_headers(N)))
    first, second = doc["ports"]
    v4, v6 = first["fixed_ips"]
    assert config == {
        "version": 2,
        "ethernets": {
            "eth0": {
                "match": {"macaddress": first["mac"]},
                "addresses": [f"{v4['address']}/24", f"{v6['address']}/64"],
                "routes": [
                    {"to": "0.0.0.0/0", "via": v4["gateway"]},
                    {"to": "192.0.2.0/24", "via": "10.0.31.253"},
                    {"to": "::/0", "via": v6["gateway"]},
                ],
                "nameservers": {"addresses": v4["dns"]},
                "mtu": first["mtu"],
            },
            "eth1": {
                "match": {"macaddress": second["mac"]},
                "addresses": [f"{second['fixed_ips'][0]['address']}/24"],
                "accept-ra": True,
                "dhcp4": True,
                "mtu": second["mtu"],
            },
        },
    }


async def test_an_instance_without_data_gets_empty_200s_not_404s(
    guest: Any, put_instance: Any
) -> None:
    """cloud-init retries a 404 ten times, a second apart: absence is an empty file."""
    doc = await put_instance(minimal_document(N))
    headers = signed_headers(doc, PROXY_SECRET)
    for name in ("user-data", "vendor-data", "network-config"):
        assert await body(guest, f"/nocloud/{name}", headers) == b"", name
    meta = yaml.safe_load(await body(guest, "/nocloud/meta-data", headers))
    assert meta == {"instance-id": doc["uuid"], "local-hostname": doc["hostname"]}


async def test_listing_names_the_four_files(guest: Any, put_instance: Any) -> None:
    await put_instance(sample_document(N))
    for path in ("/nocloud", "/nocloud/"):
        listing = await body(guest, path, guest_headers(N))
        assert listing.decode().split("\n") == sorted(FILES)


@pytest.mark.parametrize(
    "path",
    [
        "/nocloud/meta-data/x",
        "/nocloud/latest/meta-data",
        "/nocloud/user_data",
        "/nocloud/2021-03-23",
    ],
)
async def test_other_paths_are_404(guest: Any, put_instance: Any, path: str) -> None:
    await put_instance(sample_document(N))
    assert (await guest.get(path, headers=guest_headers(N))).status == 404


async def test_an_unknown_guest_gets_404(guest: Any, put_instance: Any) -> None:
    await put_instance(sample_document(N))
    assert (await guest.get("/nocloud/meta-data", headers=guest_headers(N + 1))).status == 404


async def test_each_file_is_counted_under_its_own_path(
    guest: Any, admin: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(N))
    for name in FILES:
        for _ in range(3):
            await body(guest, f"/nocloud/{name}", guest_headers(N))
    rows = {
        (r["path"], r["version"]): r
        for r in (await (await admin.get("/v1/stats/paths")).json())["paths"]
    }
    for name in FILES:
        row = rows[(f"/nocloud/{name}", "")]
        assert (row["hits"], row["cache_misses"]) == (3, 1), name
