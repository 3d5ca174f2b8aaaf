"""botocore reads the instance id and the region through its IMDS fetchers.

Whether the server grants an IMDSv2 token or botocore falls back to IMDSv1 (on 403, 404 or
405), the values must be the same: the tests assert values, not the token dance.
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import backends
from tests.clients.conftest import RunningServer, run_client
from tests.documents import sample_document
from tests.servers import free_port, start_server

pytestmark = pytest.mark.client


@pytest.mark.parametrize("endpoint", ["default", "environment"])
def test_botocore_reads_instance_id_and_region(
    endpoint: str, metadata_server: RunningServer, tmp_path: Path
) -> None:
    # default: botocore's built-in 169.254.169.254, redirected by the guard; environment:
    # the endpoint an operator names in AWS_EC2_METADATA_SERVICE_ENDPOINT.
    extra = (
        {}
        if endpoint == "default"
        else {"AWS_EC2_METADATA_SERVICE_ENDPOINT": metadata_server.guest_url + "/"}
    )
    run = run_client(
        sys.executable, "read_botocore.py", server=metadata_server, tmp_path=tmp_path, **extra
    )
    doc = metadata_server.document
    expected_base = (
        "http://169.254.169.254/"
        if endpoint == "default"
        else extra["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
    )
    assert run.output["base_url"] == expected_base
    assert run.output["status"] == 200, run.context()
    assert run.output["instance-id"] == doc["ec2_id"]
    # botocore drops the zone's last character: nova-1a -> nova-1
    assert run.output["region"] == doc["availability_zone"][:-1], run.context()
    assert "guard: refused" not in run.stderr, run.context()


@pytest.fixture(scope="module")
def dual_stack_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """`metadata serve` on two guest listeners, 127.0.0.1:P and [::1]:P, holding one
    instance whose port has the IPv6 address ::1: the guest botocore speaks for."""
    if not socket.has_ipv6:
        backends.unavailable("no IPv6 on this machine")
    workdir = tmp_path_factory.mktemp("dual-stack")
    port = free_port()
    server = start_server(
        workdir,
        {"METADATA_LISTEN": f"127.0.0.1:{port},[::1]:{port}", "METADATA_TRUSTED_PROXIES": ""},
    )
    try:
        document = sample_document(61, availability_zone="nova-6b", ec2_id="i-0000000000000061a")
        document["ports"][0]["fixed_ips"].append({"address": "::1", "cidr": "::1/128"})
        status, stored = server.admin("PUT", f"/v1/instances/{document['uuid']}", document)
        assert status == 201, stored
        yield RunningServer(port, server.admin_port, workdir, document, json.loads(stored))
    finally:
        server.stop()


def test_botocore_in_ipv6_endpoint_mode_reads_from_the_ipv6_listener(
    dual_stack_server: RunningServer, tmp_path: Path
) -> None:
    # botocore's own IPv6 default [fd00:ec2::254]:80, redirected by the guard to [::1]:P;
    # the server knows the guest by its IPv6 source address alone.
    run = run_client(
        sys.executable,
        "read_botocore.py",
        server=dual_stack_server,
        tmp_path=tmp_path,
        AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE="ipv6",
        METADATA_GUARD_IPV6="1",
    )
    assert run.output["base_url"] == "http://[fd00:ec2::254]/"
    assert run.output["status"] == 200, run.context()
    assert run.output["instance-id"] == dual_stack_server.document["ec2_id"]
    assert run.output["region"] == "nova-6", run.context()
    assert "guard: refused" not in run.stderr, run.context()
    # and the same server answers the IPv4 listener too
    assert guest_get(dual_stack_server.guest_port, "127.0.0.1") == 404  # no instance owns it


def guest_get(port: int, host: str) -> int:
    try:
        with urllib.request.urlopen(
            f"http://{host}:{port}/latest/meta-data/instance-id", timeout=10
        ) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
