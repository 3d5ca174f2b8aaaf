"""cloud-init's ConfigDrive datasource reads an extracted config drive; writes OUTPUT.

    python read_config_drive.py DIRECTORY NICS OUTPUT

DIRECTORY holds the drive's files as mounted (`openstack/…`, `ec2/…`); NICS is a JSON
object {mac: interface name} that network_data.json's links are matched against. Runs
under the system Python, where Debian installs cloud-init; reads files only (no mount, no
root, no network).
"""

from __future__ import annotations

import copy
import json
import logging
import sys

import client_output
from cloudinit.sources import DataSourceConfigDrive
from cloudinit.sources.helpers import openstack

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
directory, nics, output = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
# The directory read_v2 takes its files from: the newest version cloud-init knows.
version_dir = openstack.ConfigDriveReader(directory)._find_working_version()
# The function the datasource itself calls on a seed directory or a mounted drive.
results = DataSourceConfigDrive.read_config_drive(directory)
networkdata = copy.deepcopy(results.get("networkdata"))
network_config = openstack.convert_net_json(networkdata, known_macs=nics)
client_output.write(
    output, {"version_dir": version_dir, "results": results, "network_config": network_config}
)
