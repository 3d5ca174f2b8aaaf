"""Debian's cloud-init runs its EC2 datasource against a real server, on both of its paths
(AWS with IMDSv2, and any other platform): it must settle on 2021-03-23 and configure the
guest's network from our per-interface answers."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.clients.conftest import ClientRun, RunningServer, _admin_request, run_client
from tests.documents import sample_document

pytestmark = pytest.mark.client

# A second guest of the session's server, told apart by its own source address.
GUEST = "127.0.0.24"
USER_DATA = b"#cloud-config\nhostname: ec2-guest\n"


def ec2_guest_document() -> dict[str, Any]:
    """Two ports: the first with a secondary IPv4 and an IPv6 address, its MAC written in
    upper case (served lower case, as the guest's sysfs spells it); the second IPv4 only."""
    return sample_document(
        24,
        hostname="ec2-guest",
        availability_zone="zone-1b",
        ec2_id="i-0123456789abcdef1",
        ports=[
            {
                "id": "port-c-0123456789",
                "mac": "FA:16:3E:00:18:01",
                "network_id": "net-a",
                "fixed_ips": [
                    {"address": GUEST, "cidr": "127.0.0.0/8", "gateway": "127.0.0.1"},
                    {"address": "127.0.0.124", "cidr": "127.0.0.0/8"},
                    {"address": "fd00:18::5", "cidr": "fd00:18::/64"},
                ],
                "floating_ips": ["203.0.113.24"],
            },
            {
                "id": "port-d-0123456789",
                "mac": "fa:16:3e:00:18:02",
                "network_id": "net-b",
                "fixed_ips": [{"address": "10.24.0.5", "cidr": "10.24.0.0/24"}],
            },
        ],
        user_data=base64.b64encode(USER_DATA).decode(),
    )


NICS = {"fa:16:3e:00:18:01": "eth0", "fa:16:3e:00:18:02": "eth1"}


@pytest.fixture(scope="module")
def ec2_guest(metadata_server: RunningServer) -> dict[str, Any]:
    document = ec2_guest_document()
    status, stored = _admin_request(
        metadata_server.admin_port, "PUT", f"/v1/instances/{document['uuid']}", document
    )
    assert status in (200, 201), stored
    stored_document: dict[str, Any] = stored
    return stored_document


def read(platform: str, server: RunningServer, python: str, tmp_path: Any) -> ClientRun:
    return run_client(
        python,
        "read_ec2_datasource.py",
        platform,
        json.dumps(NICS),
        server=server,
        tmp_path=tmp_path,
        METADATA_GUARD_SOURCE=GUEST,
    )


@pytest.fixture(scope="module", params=["aws", "other"])
def datasource_run(
    request: pytest.FixtureRequest,
    ec2_guest: dict[str, Any],
    metadata_server: RunningServer,
    system_python_with_cloud_init: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> ClientRun:
    platform: str = request.param
    return read(
        platform,
        metadata_server,
        system_python_with_cloud_init,
        tmp_path_factory.mktemp(f"ec2-{platform}"),
    )


def test_datasource_picks_2021_03_23(datasource_run: ClientRun) -> None:
    output = datasource_run.output
    assert output["found"], datasource_run.context()
    assert output["api_version"] == "2021-03-23", datasource_run.context()
    assert "DEBUG Found preferred metadata version 2021-03-23" in output["log"]


def test_datasource_reads_the_guests_own_data(
    datasource_run: ClientRun, ec2_guest: dict[str, Any]
) -> None:
    output = datasource_run.output
    meta = output["meta-data"]
    assert meta["instance-id"] == ec2_guest["ec2_id"]
    assert meta["local-hostname"] == ec2_guest["hostname"]
    assert meta["mac"] == "fa:16:3e:00:18:01"
    assert meta["placement"] == {"availability-zone": "zone-1b", "region": "zone-1"}
    assert meta["services"] == {"domain": "amazonaws.com", "partition": "aws"}
    assert output["user-data"] == USER_DATA
    assert output["availability_zone"] == "zone-1b"
    assert output["region"] == "zone-1"


def test_aws_path_uses_a_token_and_reads_the_identity_document(
    datasource_run: ClientRun, ec2_guest: dict[str, Any]
) -> None:
    output = datasource_run.output
    if output["cloud_name"] != "aws":
        assert output["identity"] == {}
        assert not output["has_token"]
        return
    assert output["has_token"], datasource_run.context()
    identity = output["identity"]
    assert identity["instanceId"] == ec2_guest["ec2_id"]
    assert identity["availabilityZone"] == "zone-1b"
    assert identity["region"] == "zone-1"


def test_interfaces_are_keyed_by_lower_case_mac_in_a_vpc(datasource_run: ClientRun) -> None:
    output = datasource_run.output
    macs = output["meta-data"]["network"]["interfaces"]["macs"]
    assert sorted(macs) == sorted(NICS)
    first, second = macs["fa:16:3e:00:18:01"], macs["fa:16:3e:00:18:02"]
    assert first["device-number"] == "0" and second["device-number"] == "1"
    assert first["local-ipv4s"] == [GUEST, "127.0.0.124"]
    assert first["ipv6s"] == "fd00:18::5"
    assert first["subnet-ipv6-cidr-blocks"] == "fd00:18::/64"
    assert first["vpc-id"] == "net-a" and second["vpc-id"] == "net-b"
    assert "ipv6s" not in second
    assert output["is_classic"] is False
    warnings = [line for line in output["log"] if line.startswith(("WARNING", "ERROR"))]
    assert warnings == [], warnings


def test_network_config_is_rendered_from_our_answers(datasource_run: ClientRun) -> None:
    """cloud-init's own conversion: DHCP on every card by MAC, DHCPv6 only where the port
    has IPv6, the secondary IPv4 as a static address with the subnet's prefix, metrics by
    device number."""
    config = datasource_run.output["network_config"]
    assert config == {
        "version": 2,
        "ethernets": {
            "eth0": {
                "match": {"macaddress": "fa:16:3e:00:18:01"},
                "set-name": "eth0",
                "dhcp4": True,
                "dhcp4-overrides": {"route-metric": 100},
                "dhcp6": True,
                "dhcp6-overrides": {"route-metric": 100},
                "addresses": ["127.0.0.124/8"],
            },
            "eth1": {
                "match": {"macaddress": "fa:16:3e:00:18:02"},
                "set-name": "eth1",
                "dhcp4": True,
                "dhcp4-overrides": {"route-metric": 200},
                "dhcp6": False,
            },
        },
    }, datasource_run.context()
    rendered = datasource_run.output["eni"]
    assert "iface eth0 inet dhcp" in rendered
    assert "iface eth0 inet6 dhcp" in rendered
    assert "iface eth1 inet dhcp" in rendered
    assert "iface eth1 inet6" not in rendered


def test_datasource_tried_nothing_outside_loopback(datasource_run: ClientRun) -> None:
    # cloud-init's other default URLs ([fd00:ec2::254], instance-data.) were refused by
    # name before any packet; nothing was connected to outside loopback.
    assert "guard: refused" not in datasource_run.stderr.replace("guard: refused to resolve", ""), (
        datasource_run.context()
    )
