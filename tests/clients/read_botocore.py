"""botocore's IMDS fetchers read the instance id and the region; writes OUTPUT.

    python guarded.py read_botocore.py OUTPUT

The endpoint is botocore's own choice: its default 169.254.169.254 (redirected by the
guard) unless AWS_EC2_METADATA_SERVICE_ENDPOINT names another, or its IPv6 default
[fd00:ec2::254] with AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=ipv6.
"""

from __future__ import annotations

import logging
import os
import sys

import client_output
from botocore.utils import IMDSFetcher, InstanceMetadataRegionFetcher

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
output = sys.argv[1]
config = {
    "ec2_metadata_service_endpoint": os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT"),
    "ec2_metadata_service_endpoint_mode": os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"),
}
fetcher = IMDSFetcher(timeout=5, config=config)
# botocore's fetchers ask for a session token first and fall back to IMDSv1 without one.
token = fetcher._fetch_metadata_token()
response = fetcher._get_request("latest/meta-data/instance-id", None, token)
region = InstanceMetadataRegionFetcher(timeout=5, config=config).retrieve_region()
client_output.write(
    output,
    {
        "base_url": fetcher.get_base_url(),
        "instance-id": response.text,
        "status": response.status_code,
        "region": region,
    },
)
