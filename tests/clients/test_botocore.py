"""botocore reads the instance id and the region through its IMDS fetchers.

Whether the server grants an IMDSv2 token or botocore falls back to IMDSv1 (on 403, 404 or
405), the values must be the same: the tests assert values, not the token dance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.clients.conftest import RunningServer, run_client

pytestmark = pytest.mark.client


@pytest.mark.parametrize("endpoint", ["default", "environment"])
def test_botocore_reads_instance_id_and_region(
    endpoint: str, metadata_server: RunningServer, tmp_path: Path
) -> None:
    # default: botocore's built-in 169.254.169.254, redirected by the guard; environment:
    # the endpoint an operator names in AWS_EC2_METADATA_SERVICE_ENDPOINT.
    extra = {} if endpoint == "default" else {
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": metadata_server.guest_url + "/"
    }  # fmt: skip
    run = run_client(
        sys.executable, "read_botocore.py", server=metadata_server, tmp_path=tmp_path, **extra
    )
    doc = metadata_server.document
    expected_base = "http://169.254.169.254/" if endpoint == "default" else extra[
        "AWS_EC2_METADATA_SERVICE_ENDPOINT"
    ]  # fmt: skip
    assert run.output["base_url"] == expected_base
    assert run.output["status"] == 200, run.context()
    assert run.output["instance-id"] == doc["ec2_id"]
    # botocore drops the zone's last character: nova-1a -> nova-1
    assert run.output["region"] == doc["availability_zone"][:-1], run.context()
    assert "guard: refused" not in run.stderr, run.context()
