"""The EC2-compatible tree: one row per leaf with the AWS version that introduced it, each
rendered from the slices it declares; listings are derived from the rows. Also the version
tables: AWS's, which store mode serves, and Nova's, which Nova mode keeps.

Values carry no trailing newline: cloud-init reads a newline in a leaf as a list.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from metadata.guest.tree import Answer, Leaf, Param, Present, Render, Tree, View
from metadata.records import FixedIP, InstanceCore, Port, Slice

# Every metadata version AWS lists at `/`, oldest first (imds-peers §1.2).
AWS_VERSIONS = (
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "2011-01-01",
    "2011-05-01",
    "2012-01-12",
    "2014-02-25",
    "2014-11-05",
    "2015-10-20",
    "2016-04-19",
    "2016-06-30",
    "2016-09-02",
    "2018-03-28",
    "2018-08-17",
    "2018-09-24",
    "2019-10-01",
    "2020-10-27",
    "2021-01-03",
    "2021-03-23",
    "2021-07-15",
    "2022-07-09",
    "2022-09-24",
)
# The versions Nova lists; its `latest` is the newest of them (nova/api/metadata/base.py).
NOVA_VERSIONS = AWS_VERSIONS[: AWS_VERSIONS.index("2009-04-04") + 1]
VERSIONS = AWS_VERSIONS
# What store mode matches `latest` as: every row, whatever its date.
LATEST = "9999-12-31"

# The dates AWS introduced the leaves newer than Nova's versions. AWS's "since" dates need
# not be listed versions (2020-08-24 is not): a version serves a leaf when it is that late.
VPC = "2011-01-01"  # `mac` and `network/interfaces/macs/…`
SERVICES_DOMAIN = "2014-02-25"
SERVICES_PARTITION = "2015-10-20"
IPV6_ADDRESSES = "2016-06-30"  # per-MAC `ipv6s`, IPv6 subnets, several VPC CIDR blocks
LIFE_CYCLE = "2019-10-01"
REGION = "2020-08-24"
FIRST_IPV6 = "2021-01-03"
TAGS = "2021-03-23"

CORE = frozenset({Slice.CORE})
KEYS = frozenset({Slice.KEYS})
NETWORK = frozenset({Slice.NETWORK})
USER_DATA = frozenset({Slice.USER_DATA})


class VersionTable:
    """The dated versions `/` lists, and the version `latest` is matched as."""

    __slots__ = ("_listing", "_served", "dated", "latest")

    def __init__(self, dated: Iterable[str], latest: str) -> None:
        self.dated = tuple(dated)
        self.latest = latest
        self._served = {name: name for name in self.dated}
        self._served["latest"] = latest
        self._listing = "\n".join([*self.dated, "latest"]).encode()

    def served_version(self, name: str) -> str | None:
        """The version to match rows against, or None for one not served (a 404 at once:
        cloud-init probes newer versions one try each, without a timeout)."""
        return self._served.get(name)

    def version_listing(self) -> bytes:
        return self._listing


STORE = VersionTable(AWS_VERSIONS, LATEST)
NOVA = VersionTable(NOVA_VERSIONS, NOVA_VERSIONS[-1])


def text(value: str | int) -> Answer:
    return Answer(str(value).encode())


def lines(values: list[str]) -> Answer:
    return Answer("\n".join(values).encode())


def _port(view: View) -> Port:
    mac = view.params["mac"]
    return next(p for p in view.network.ports if p.mac == mac)


def _ips(port: Port, version: int) -> list[FixedIP]:
    return [ip for ip in port.fixed_ips if ip.version == version]


def _cidrs(port: Port, version: int) -> list[str]:
    return sorted({ip.cidr for ip in _ips(port, version)})


def _has_floating(view: View) -> bool:
    return view.network.first_floating_ip is not None


def _has_fixed_ipv4(view: View) -> bool:
    return view.network.first_fixed_ipv4 is not None


def _first_port_ipv6(view: View) -> str | None:
    ports = view.network.ports
    ipv6 = _ips(ports[0], 6) if ports else []
    return ipv6[0].address if ipv6 else None


def region(core: InstanceCore) -> str:
    """The document's region, else the zone minus its last letter, as AWS names zones
    (`us-east-1a` in `us-east-1`) and as botocore derives the region."""
    if core.region:
        return core.region
    zone = core.availability_zone or ""
    return zone[:-1] if len(zone) > 1 and zone[-1].isalpha() else zone


def _tag_keys(view: View) -> list[str]:
    # Tags are served only when the document opts in, as AWS's InstanceMetadataTags.
    core = view.core
    return [key for key, _ in core.tags] if core.instance_metadata_tags else []


def identity_document(view: View) -> Answer:
    core = view.core
    document = {
        "accountId": core.project_id,
        "architecture": "x86_64",
        "availabilityZone": core.availability_zone,
        "billingProducts": None,
        "devpayProductCodes": None,
        "imageId": core.ami_id,
        "instanceId": core.ec2_id,
        "instanceType": core.flavor.name,
        "kernelId": core.kernel_id,
        "marketplaceProductCodes": None,
        "pendingTime": None,
        "privateIp": view.network.first_fixed_ipv4,
        "ramdiskId": core.ramdisk_id,
        "region": region(core),
        "version": "2017-09-30",
    }
    return Answer(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def _mac_leaf(
    name: str,
    render: Render,
    present: Present | None = None,
    needs: frozenset[Slice] = NETWORK,
    since: str = VPC,
) -> Leaf:
    return Leaf(
        f"meta-data/network/interfaces/macs/{{mac}}/{name}",
        render,
        needs,
        since,
        present=present,
        present_needs=needs if present else frozenset(),
    )


def _has_ipv4(view: View) -> bool:
    return bool(_ips(_port(view), 4))


def _has_ipv6(view: View) -> bool:
    return bool(_ips(_port(view), 6))


def _in_vpc(view: View) -> bool:
    # A port's network is its VPC: cloud-init reads a MAC without vpc-id as EC2 Classic
    # and then rewrites the guest's network config on every boot.
    return bool(_port(view).network_id)


# Leaves Nova also serves keep Nova's dates (kernel-id and ramdisk-id: 2007-12-15), so
# that one table serves both modes; the rest are AWS's (imds-peers §1.4, §1.5).
LEAVES = (
    Leaf("meta-data/ami-id", lambda v: text(v.core.ami_id), CORE),
    Leaf("meta-data/ami-launch-index", lambda v: text(v.core.launch_index), CORE),
    Leaf("meta-data/ami-manifest-path", lambda v: text("FIXME"), frozenset()),
    Leaf(
        "meta-data/block-device-mapping/{bdm}",
        lambda v: text(dict(v.core.block_device_mapping)[v.params["bdm"]]),
        CORE,
        "2007-12-15",
    ),
    Leaf("meta-data/hostname", lambda v: text(v.core.hostname), CORE),
    Leaf("meta-data/instance-action", lambda v: text("none"), frozenset(), "2008-09-01"),
    Leaf("meta-data/instance-id", lambda v: text(v.core.ec2_id), CORE, boot_critical=True),
    # No spot market here: every instance runs on demand.
    Leaf("meta-data/instance-life-cycle", lambda v: text("on-demand"), frozenset(), LIFE_CYCLE),
    Leaf("meta-data/instance-type", lambda v: text(v.core.flavor.name), CORE, "2007-08-29"),
    Leaf(
        "meta-data/ipv6",
        lambda v: text(_first_port_ipv6(v) or ""),
        NETWORK,
        FIRST_IPV6,
        present=lambda v: _first_port_ipv6(v) is not None,
        present_needs=NETWORK,
    ),
    Leaf(
        "meta-data/kernel-id",
        lambda v: text(v.core.kernel_id or ""),
        CORE,
        "2007-12-15",
        present=lambda v: bool(v.core.kernel_id),
        present_needs=CORE,
    ),
    Leaf(
        "meta-data/ramdisk-id",
        lambda v: text(v.core.ramdisk_id or ""),
        CORE,
        "2007-12-15",
        present=lambda v: bool(v.core.ramdisk_id),
        present_needs=CORE,
    ),
    Leaf("meta-data/local-hostname", lambda v: text(v.core.hostname), CORE, "2007-01-19"),
    Leaf(
        "meta-data/local-ipv4",
        lambda v: text(v.network.first_fixed_ipv4 or ""),
        NETWORK,
        present=_has_fixed_ipv4,
        present_needs=NETWORK,
    ),
    Leaf(
        "meta-data/mac",
        lambda v: text(v.network.ports[0].mac),
        NETWORK,
        VPC,
        present=lambda v: bool(v.network.ports),
        present_needs=NETWORK,
    ),
    Leaf(
        "meta-data/placement/availability-zone",
        lambda v: text(str(v.core.availability_zone)),
        CORE,
        "2008-02-01",
    ),
    Leaf("meta-data/placement/region", lambda v: text(region(v.core)), CORE, REGION),
    # Nova serves the hostname here whether or not there is a floating IP.
    Leaf("meta-data/public-hostname", lambda v: text(v.core.hostname), CORE, "2007-01-19"),
    # AWS leaves public-ipv4 out when there is none (Nova serves an empty body): an empty
    # 200 counts as a failure for botocore, so we follow AWS.
    Leaf(
        "meta-data/public-ipv4",
        lambda v: text(v.network.first_floating_ip or ""),
        NETWORK,
        "2007-01-19",
        present=_has_floating,
        present_needs=NETWORK,
    ),
    Leaf(
        "meta-data/public-keys/{key}/openssh-key",
        lambda v: text(v.keys.for_ec2[int(v.params["key"])].data),
        KEYS,
    ),
    Leaf("meta-data/reservation-id", lambda v: text(v.core.reservation_id), CORE),
    Leaf("meta-data/security-groups", lambda v: lines(list(v.core.security_groups)), CORE),
    # AWS's values: clients build endpoint names from them (`s3.<region>.<domain>`).
    Leaf(
        "meta-data/services/domain", lambda v: text("amazonaws.com"), frozenset(), SERVICES_DOMAIN
    ),
    Leaf("meta-data/services/partition", lambda v: text("aws"), frozenset(), SERVICES_PARTITION),
    Leaf(
        "meta-data/tags/instance/{tag}",
        lambda v: text(dict(v.core.tags)[v.params["tag"]]),
        CORE,
        TAGS,
    ),
    _mac_leaf(
        "device-number", lambda v: text([p.mac for p in v.network.ports].index(v.params["mac"]))
    ),
    _mac_leaf("interface-id", lambda v: text(_port(v).id)),
    _mac_leaf("ipv4-associations/{public_ip}", lambda v: text(_ips(_port(v), 4)[0].address)),
    _mac_leaf("local-hostname", lambda v: text(v.core.hostname), needs=CORE | NETWORK),
    _mac_leaf(
        "local-ipv4s", lambda v: lines([ip.address for ip in _ips(_port(v), 4)]), present=_has_ipv4
    ),
    _mac_leaf("mac", lambda v: text(v.params["mac"])),
    _mac_leaf("owner-id", lambda v: text(v.core.project_id), needs=CORE | NETWORK),
    _mac_leaf(
        "public-ipv4s",
        lambda v: lines(list(_port(v).floating_ips)),
        present=lambda v: bool(_port(v).floating_ips),
    ),
    # The document names groups per instance, and by name only: every port has them all,
    # and a name stands for the id, as Neutron accepts either.
    _mac_leaf(
        "security-group-ids",
        lambda v: lines(list(v.core.security_groups)),
        present=lambda v: bool(v.core.security_groups),
        needs=CORE | NETWORK,
    ),
    _mac_leaf(
        "security-groups",
        lambda v: lines(list(v.core.security_groups)),
        present=lambda v: bool(v.core.security_groups),
        needs=CORE | NETWORK,
    ),
    _mac_leaf(
        "subnet-ipv4-cidr-block", lambda v: text(_ips(_port(v), 4)[0].cidr), present=_has_ipv4
    ),
    _mac_leaf(
        "ipv6s",
        lambda v: lines([ip.address for ip in _ips(_port(v), 6)]),
        present=_has_ipv6,
        since=IPV6_ADDRESSES,
    ),
    _mac_leaf(
        "subnet-ipv6-cidr-blocks",
        lambda v: lines(_cidrs(_port(v), 6)),
        present=_has_ipv6,
        since=IPV6_ADDRESSES,
    ),
    _mac_leaf("vpc-id", lambda v: text(_port(v).network_id), present=_in_vpc),
    _mac_leaf(
        "vpc-ipv4-cidr-block",
        lambda v: text(_ips(_port(v), 4)[0].cidr),
        present=lambda v: _in_vpc(v) and _has_ipv4(v),
    ),
    _mac_leaf(
        "vpc-ipv4-cidr-blocks",
        lambda v: lines(_cidrs(_port(v), 4)),
        present=lambda v: _in_vpc(v) and _has_ipv4(v),
        since=IPV6_ADDRESSES,
    ),
    _mac_leaf(
        "vpc-ipv6-cidr-blocks",
        lambda v: lines(_cidrs(_port(v), 6)),
        present=lambda v: _in_vpc(v) and _has_ipv6(v),
        since=IPV6_ADDRESSES,
    ),
    Leaf(
        "user-data",
        lambda v: Answer(v.user_data.data or b""),
        USER_DATA,
        present=lambda v: v.user_data.data is not None,
        present_needs=USER_DATA,
        etag=True,
        waitable=True,
        boot_critical=True,
    ),
    Leaf("dynamic/instance-identity/document", identity_document, CORE | NETWORK, "2009-04-04"),
)


def _associated_public_ips(view: View) -> list[str]:
    # `ipv4-associations/<public ip>` answers the private address it maps to: the port's
    # first fixed IPv4, so a port without one has no associations.
    port = _port(view)
    return list(port.floating_ips) if _ips(port, 4) else []


PARAMS = (
    Param("bdm", CORE, lambda v: [name for name, _ in v.core.block_device_mapping]),
    # EC2 lists keys as `0=name`; the directory itself is `0/` holding `openssh-key`.
    Param(
        "key",
        KEYS,
        lambda v: [str(i) for i in range(len(v.keys.for_ec2))],
        label=lambda v, value: f"{value}={v.keys.for_ec2[int(value)].name}",
    ),
    Param("mac", NETWORK, lambda v: [p.mac for p in v.network.ports]),
    Param("public_ip", NETWORK, _associated_public_ips),
    Param("tag", CORE, _tag_keys),
)


def build_tree() -> Tree:
    return Tree(LEAVES, PARAMS, "/{version}", token_by_default=True)
