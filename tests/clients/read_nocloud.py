"""cloud-init's NoCloud datasource seeded over HTTP, as a guest booted with
`ds=nocloud;s=http://169.254.169.254/nocloud/` runs it; writes OUTPUT.

    python guarded.py read_nocloud.py NICS OUTPUT

The kernel command line, the DMI serial and the guest's disks and network cards are the
facts of the guest this script stands in for; the rest is cloud-init's own code. Debian's
22.4 does not fetch `network-config` over HTTP (24.3 does): it is read here with
cloud-init's own URL reader and parsed by its network-state parser, as 24.3 would.
"""

from __future__ import annotations

import json
import sys
import tempfile

import client_output
from cloudinit import distros, dmi, helpers, net, url_helper, util
from cloudinit.net import eni, network_state
from cloudinit.sources import DataSourceNoCloud

SEED = "http://169.254.169.254/nocloud/"


collected = client_output.collect_logs()
nics, output = json.loads(sys.argv[1]), sys.argv[2]
util.get_cmdline = lambda: f"root=/dev/vda1 ro ds=nocloud;s={SEED}"
dmi.read_dmi_data = lambda key: None
util.find_devs_with = lambda *args, **kwargs: []
net.get_interfaces_by_mac = lambda *args, **kwargs: dict(nics)
network_state.get_interfaces_by_mac = net.get_interfaces_by_mac

state = tempfile.mkdtemp()
paths = helpers.Paths({"cloud_dir": state, "run_dir": state})
distro = distros.fetch("debian")("debian", {}, paths)
source = DataSourceNoCloud.DataSourceNoCloudNet({}, distro, paths)
found = source.get_data()
response = url_helper.readurl(SEED + "network-config", retries=10)
network_config = util.load_yaml(response.contents)
rendered = None
if network_config:
    parsed = network_state.parse_net_config_data(network_config)
    rendered = eni.Renderer()._render_interfaces(parsed)
client_output.write(
    output,
    {
        "found": found,
        "log": collected.lines,
        "seed": source.seed,
        "meta-data": source.metadata,
        "user-data": source.userdata_raw,
        "vendor-data": source.vendordata_raw,
        "instance_id": source.get_instance_id(),
        "hostname": source.get_hostname().hostname,
        "public_keys": source.get_public_ssh_keys(),
        "network_config": network_config,
        "eni": rendered,
    },
)
