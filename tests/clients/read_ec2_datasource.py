"""cloud-init's EC2 datasource as a guest runs it: find the service, pick the API version,
crawl, and turn the crawl into the guest's network config; writes OUTPUT.

    python guarded.py read_ec2_datasource.py PLATFORM NICS OUTPUT

PLATFORM `aws`: the guest's DMI says EC2, so the datasource takes its IMDSv2 path (token
PUT, the token on every GET, the identity document). `other`: any other platform, with
`strict_id: false` as such a guest must configure. NICS is a JSON object {mac: name}: the
guest's network cards as its kernel names them. DMI and the cards are the two facts of the
guest's hardware this script stands in for; everything else is cloud-init's own code, with
its default metadata URLs (the guard sends 169.254.169.254 to the test server and refuses
the others).
"""

from __future__ import annotations

import json
import sys
import tempfile

import client_output
from cloudinit import distros, helpers, net
from cloudinit.net import eni, network_state
from cloudinit.sources import DataSourceEc2

collected = client_output.collect_logs()
platform, nics, output = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
cloud = DataSourceEc2.CloudNames.AWS if platform == "aws" else DataSourceEc2.CloudNames.UNKNOWN
DataSourceEc2.identify_platform = lambda: cloud
net.get_interfaces_by_mac = lambda *args, **kwargs: dict(nics)

state = tempfile.mkdtemp()
paths = helpers.Paths({"cloud_dir": state, "run_dir": state})
distro = distros.fetch("debian")("debian", {}, paths)
sys_cfg = {"datasource": {"Ec2": {"strict_id": False}}}
source = DataSourceEc2.DataSourceEc2(sys_cfg, distro, paths)
source._fallback_interface = sorted(nics.items())[0][1]
found = source.get_data()
config = source.network_config if found else None
rendered = None
if config:
    parsed = network_state.parse_net_config_data(config)
    rendered = eni.Renderer()._render_interfaces(parsed)
client_output.write(
    output,
    {
        "found": found,
        "log": collected.lines,
        "has_token": bool(source._api_token),
        "cloud_name": source.cloud_name,
        "api_version": source._crawled_metadata.get("_metadata_api_version") if found else None,
        "meta-data": source.metadata,
        "user-data": source.userdata_raw,
        "identity": source.identity if found else None,
        "availability_zone": source.availability_zone if found else None,
        "region": source.region if found else None,
        "is_classic": source.is_classic_instance() if found else None,
        "network_config": config,
        "eni": rendered,
    },
)
