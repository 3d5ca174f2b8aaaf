"""cloud-init's EC2 datasource crawl (user data, then the meta-data tree); writes OUTPUT.

    python guarded.py read_ec2.py OUTPUT

Uses the datasource's own metadata address (the guard redirects it) and the API version
it settles on when a cloud is not AWS and serves none of its newer versions.
"""

from __future__ import annotations

import logging
import sys

import client_output
from cloudinit.sources import DataSourceEc2
from cloudinit.sources.helpers import ec2

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
output = sys.argv[1]
address = "http://169.254.169.254"
version = DataSourceEc2.DataSourceEc2.min_metadata_version
client_output.write(
    output,
    {
        "api_version": version,
        "user-data": ec2.get_instance_userdata(version, address),
        "meta-data": ec2.get_instance_metadata(version, address),
    },
)
