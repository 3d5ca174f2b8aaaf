"""Debian's cloud-init seeds its NoCloud datasource from `/nocloud/` of a real server, as
a guest booted with `ds=nocloud;s=http://169.254.169.254/nocloud/` does."""

from __future__ import annotations

import json

import pytest

from tests.clients.conftest import USER_DATA, ClientRun, RunningServer, run_client

pytestmark = pytest.mark.client


@pytest.fixture(scope="module")
def nocloud_read(
    metadata_server: RunningServer,
    system_python_with_cloud_init: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> ClientRun:
    nics = {port["mac"]: f"eth{i}" for i, port in enumerate(metadata_server.document["ports"])}
    return run_client(
        system_python_with_cloud_init,
        "read_nocloud.py",
        json.dumps(nics),
        server=metadata_server,
        tmp_path=tmp_path_factory.mktemp("nocloud"),
    )


def test_seed_is_read_from_the_url(nocloud_read: ClientRun) -> None:
    output = nocloud_read.output
    assert output["found"], nocloud_read.context()
    assert output["seed"] == "cmdline,http://169.254.169.254/nocloud/"


def test_instance_hostname_keys_and_user_data(
    nocloud_read: ClientRun, metadata_server: RunningServer
) -> None:
    doc = metadata_server.document
    output = nocloud_read.output
    assert output["instance_id"] == doc["uuid"]
    assert output["hostname"] == doc["hostname"]
    assert sorted(output["public_keys"]) == sorted(k["data"] for k in doc["keys"])
    assert output["user-data"] == USER_DATA
    # the document's vendor data has no `cloud-init` part: an empty file, not a 404
    assert output["vendor-data"] == b""


def test_every_file_was_read_at_the_first_try(nocloud_read: ClientRun) -> None:
    """cloud-init retries any error a second apart: one attempt each means no 404."""
    log = nocloud_read.output["log"]
    for name in ("meta-data", "user-data", "vendor-data", "network-config"):
        url = f"http://169.254.169.254/nocloud/{name}"
        assert any(
            f"Read from {url} (200" in line and "after 1 attempts" in line for line in log
        ), (name, nocloud_read.context())
    assert not any("Please wait" in line for line in log)
    assert not [line for line in log if line.startswith(("WARNING", "ERROR"))]


def test_network_config_is_parsed_by_cloud_init(
    nocloud_read: ClientRun, metadata_server: RunningServer
) -> None:
    doc = metadata_server.document
    config = nocloud_read.output["network_config"]
    assert config["version"] == 2
    macs = {e["match"]["macaddress"] for e in config["ethernets"].values()}
    assert macs == {p["mac"] for p in doc["ports"]}
    rendered = nocloud_read.output["eni"]
    for i, port in enumerate(doc["ports"]):
        fixed = port["fixed_ips"][0]
        assert f"iface eth{i} inet static" in rendered, rendered
        assert f"address {fixed['address']}/" in rendered
        assert f"mtu {port['mtu']}" in rendered
    # the default route and the subnet's extra route, through their gateways
    assert "route add default gw 127.0.0.1" in rendered
    assert "route add -net 192.0.2.0/24 gw 127.0.0.254" in rendered
    assert "dns-nameservers 127.0.0.53" in rendered
