"""Debian's cloud-init reads the OpenStack and EC2 trees of a running server with its own
readers; every value it ends up with is checked against the document the operator PUT."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from tests.clients.conftest import USER_DATA, ClientRun, RunningServer, run_client

pytestmark = pytest.mark.client


@pytest.fixture(scope="module")
def openstack_read(
    metadata_server: RunningServer,
    system_python_with_cloud_init: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> ClientRun:
    return run_client(
        system_python_with_cloud_init,
        "read_openstack.py",
        metadata_server.guest_url,
        json.dumps(guest_nics(metadata_server.document)),
        server=metadata_server,
        tmp_path=tmp_path_factory.mktemp("openstack"),
    )


@pytest.fixture(scope="module")
def ec2_read(
    metadata_server: RunningServer,
    system_python_with_cloud_init: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> ClientRun:
    return run_client(
        system_python_with_cloud_init,
        "read_ec2.py",
        server=metadata_server,
        tmp_path=tmp_path_factory.mktemp("ec2"),
    )


def guest_nics(doc: dict[str, Any]) -> dict[str, str]:
    """The guest's network cards by MAC, named as its kernel would name them."""
    return {port["mac"]: f"eth{i}" for i, port in enumerate(doc["ports"])}


def _port(doc: dict[str, Any], index: int) -> dict[str, Any]:
    port: dict[str, Any] = doc["ports"][index]
    return port


def _netmask(cidr: str) -> str:
    return str(ipaddress.ip_network(cidr).netmask)


def _routes(fixed: dict[str, Any]) -> list[dict[str, str]]:
    """A fixed IP's routes in network_data.json's form: the default route first."""
    routes = []
    if fixed.get("gateway"):
        routes.append({"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": fixed["gateway"]})
    for route in fixed.get("routes", []):
        net = ipaddress.ip_network(route["cidr"])
        routes.append(
            {
                "network": str(net.network_address),
                "netmask": str(net.netmask),
                "gateway": route["gateway"],
            }
        )
    return routes


def test_openstack_reader_picks_the_newest_version_it_knows(openstack_read: ClientRun) -> None:
    # cloud-init 22.4 knows OpenStack versions up to 2018-08-27; newer ones must not confuse it.
    assert openstack_read.output["version"] == "2018-08-27", openstack_read.context()


def test_openstack_meta_data(openstack_read: ClientRun, metadata_server: RunningServer) -> None:
    doc = metadata_server.document
    metadata = openstack_read.output["results"]["metadata"]
    assert metadata["uuid"] == doc["uuid"]
    assert metadata["hostname"] == doc["hostname"]
    assert metadata["name"] == doc["name"]
    assert metadata["public_keys"] == {k["name"]: k["data"] for k in doc["keys"]}
    assert metadata["keys"] == doc["keys"]
    assert metadata["meta"] == doc["metadata"]
    assert metadata["availability_zone"] == doc["availability_zone"]
    assert metadata["launch_index"] == doc["launch_index"]
    assert metadata["project_id"] == doc["project_id"]
    # cloud-init's own renames (KEY_COPIES) worked on what we served
    assert metadata["instance-id"] == doc["uuid"]
    assert metadata["local-hostname"] == doc["hostname"]
    # cloud-init base64-decodes the seed itself: it must have been valid base64
    assert isinstance(metadata["random_seed"], bytes)
    assert len(metadata["random_seed"]) > 0


def test_openstack_user_data_is_byte_exact(openstack_read: ClientRun) -> None:
    assert openstack_read.output["results"]["userdata"] == USER_DATA


def test_openstack_vendor_data(openstack_read: ClientRun, metadata_server: RunningServer) -> None:
    results = openstack_read.output["results"]
    vendor = metadata_server.document["vendor_data"]
    # no global static vendor data is configured: the instance's keys are all there is
    assert results["vendordata"] == vendor
    assert results["vendordata2"] == {"static": vendor}


def test_openstack_network_data(openstack_read: ClientRun, metadata_server: RunningServer) -> None:
    doc = metadata_server.document
    network = openstack_read.output["results"]["networkdata"]
    links = {link["ethernet_mac_address"]: link for link in network["links"]}
    assert sorted(links) == sorted(p["mac"] for p in doc["ports"])
    for port in doc["ports"]:
        link = links[port["mac"]]
        assert link["vif_id"] == port["id"]
        assert link["mtu"] == port["mtu"]
        (entry,) = [n for n in network["networks"] if n["link"] == link["id"]]
        fixed = port["fixed_ips"][0]
        assert entry["type"] == "ipv4"
        assert entry["ip_address"] == fixed["address"]
        assert entry["netmask"] == _netmask(fixed["cidr"])
        assert entry["network_id"] == port["network_id"]
        assert entry["routes"] == _routes(fixed)
    dns = {s["address"] for s in network["services"] if s["type"] == "dns"}
    assert dns == {d for p in doc["ports"] for ip in p["fixed_ips"] for d in ip["dns"]}


def test_openstack_network_data_converts_to_cloud_init_network_config(
    openstack_read: ClientRun, metadata_server: RunningServer
) -> None:
    """cloud-init turns network_data.json into its own network config: the step that
    configures the guest's interfaces must find every address, mask, MTU and route."""
    doc = metadata_server.document
    config = openstack_read.output["network_config"]
    assert config["version"] == 1, openstack_read.context()
    physical = {c["mac_address"]: c for c in config["config"] if c["type"] == "physical"}
    assert sorted(physical) == sorted(p["mac"] for p in doc["ports"])
    for port in doc["ports"]:
        interface = physical[port["mac"]]
        fixed = port["fixed_ips"][0]
        assert interface["name"] == guest_nics(doc)[port["mac"]]
        assert interface["mtu"] == port["mtu"]
        (subnet,) = interface["subnets"]
        assert subnet["type"] == "static"
        assert subnet["address"] == fixed["address"]
        assert subnet["netmask"] == _netmask(fixed["cidr"])
        assert subnet["routes"] == _routes(fixed)
    nameservers = [c["address"] for c in config["config"] if c["type"] == "nameserver"]
    assert set(nameservers) == {d for p in doc["ports"] for ip in p["fixed_ips"] for d in ip["dns"]}


def _assert_ec2_meta_data(meta: dict[str, Any], server: RunningServer, context: str) -> None:
    """The leaves every EC2 version serves, as cloud-init's crawler decoded them."""
    doc, stored = server.document, server.stored
    first_port = _port(doc, 0)
    assert meta, f"the crawl came back empty (cloud-init swallows crawl errors):\n{context}"
    assert meta["instance-id"] == doc["ec2_id"]
    assert meta["hostname"] == doc["hostname"]
    assert meta["local-hostname"] == doc["hostname"]
    assert meta["public-hostname"] == doc["hostname"]
    assert meta["local-ipv4"] == first_port["fixed_ips"][0]["address"]
    assert meta["public-ipv4"] == first_port["floating_ips"][0]
    # EC2 lists keys as `0=k1`; cloud-init reads `0/openssh-key` and files it under `k1`
    assert meta["public-keys"] == {k["name"]: k["data"] for k in doc["keys"]}
    assert meta["placement"]["availability-zone"] == doc["availability_zone"]
    assert meta["block-device-mapping"] == doc["block_device_mapping"]
    assert meta["ami-launch-index"] == str(doc["launch_index"])
    assert meta["instance-type"] == doc["flavor"]["name"]
    # a multi-line leaf is a list to cloud-init
    assert meta["security-groups"] == doc["security_groups"]
    assert meta["ami-id"] == stored["ami_id"]
    assert meta["reservation-id"] == stored["reservation_id"]


def test_openstack_reader_crawls_the_ec2_tree(
    openstack_read: ClientRun, metadata_server: RunningServer
) -> None:
    """Its built-in 169.254.169.254 reached the test server only through the guard."""
    meta = openstack_read.output["results"]["ec2-metadata"]
    _assert_ec2_meta_data(meta, metadata_server, openstack_read.context())
    # `latest` also has the region (2020-08-24) and the per-interface tree (2011-01-01)
    doc = metadata_server.document
    assert meta["placement"]["region"] == doc["availability_zone"][:-1]
    assert meta["mac"] == _port(doc, 0)["mac"]
    macs = meta["network"]["interfaces"]["macs"]
    assert sorted(macs) == sorted(p["mac"] for p in doc["ports"])
    for number, port in enumerate(doc["ports"]):
        interface = macs[port["mac"]]
        fixed = port["fixed_ips"][0]
        assert interface["mac"] == port["mac"]
        assert interface["device-number"] == str(number)
        assert interface["interface-id"] == port["id"]
        assert interface["local-ipv4s"] == fixed["address"]
        assert interface["subnet-ipv4-cidr-block"] == fixed["cidr"]
        assert interface.get("public-ipv4s") == (
            port["floating_ips"][0] if port["floating_ips"] else None
        )


def test_ec2_datasource_crawl(ec2_read: ClientRun, metadata_server: RunningServer) -> None:
    assert ec2_read.output["api_version"] == "2009-04-04"
    meta = ec2_read.output["meta-data"]
    _assert_ec2_meta_data(meta, metadata_server, ec2_read.context())
    # 2009-04-04 has neither the region nor the network
    assert "region" not in meta["placement"] and "network" not in meta


def test_ec2_user_data_is_byte_exact(ec2_read: ClientRun) -> None:
    assert ec2_read.output["user-data"] == USER_DATA, ec2_read.context()


def test_clients_tried_nothing_outside_loopback(
    openstack_read: ClientRun, ec2_read: ClientRun
) -> None:
    """Neither reader needed a destination the guard refuses: everything it read came
    from the test server."""
    for run in (openstack_read, ec2_read):
        assert "guard: refused" not in run.stderr, run.context()
