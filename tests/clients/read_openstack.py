"""cloud-init's OpenStack datasource reader against BASE_URL; writes its results to OUTPUT.

    python guarded.py read_openstack.py BASE_URL NICS OUTPUT

NICS is a JSON object {mac: interface name}: the guest's network cards, which cloud-init
matches network_data.json's links against when it writes the network configuration.

Runs under the system Python, where Debian installs cloud-init. The reader then crawls the
EC2 tree at its built-in http://169.254.169.254, which the guard sends to the test server.
"""

from __future__ import annotations

import copy
import json
import logging
import sys

import client_output
from cloudinit.sources import DataSourceOpenStack
from cloudinit.sources.helpers import openstack

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
base_url, nics, output = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
reader = openstack.MetadataReader(base_url)
version = reader._find_working_version()
# The function the datasource itself calls, with its default timeout and retries.
results = DataSourceOpenStack.read_metadata_service(base_url)
# convert_net_json rewrites its argument in place (dns -> nameserver): give it a copy.
networkdata = copy.deepcopy(results.get("networkdata"))
network_config = openstack.convert_net_json(networkdata, known_macs=nics)
client_output.write(
    output, {"version": version, "results": results, "network_config": network_config}
)
