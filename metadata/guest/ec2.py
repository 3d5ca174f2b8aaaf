"""The EC2-compatible tree: one row per leaf, each rendered from the slices it declares.

Values carry no trailing newline: cloud-init reads a newline in a leaf as a list.
"""

from __future__ import annotations

import orjson

from metadata.guest.tree import Answer, Leaf, Param, Present, Render, Tree, View
from metadata.records import FixedIP, Port, Slice

# The versions Nova lists, oldest first; `latest` serves every leaf we know.
VERSIONS = (
    "1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
    "2008-02-01", "2008-09-01", "2009-04-04",
)  # fmt: skip
LATEST = "9999-12-31"
# Leaves AWS added after Nova's newest version: served under `latest` only.
AWS_2011 = "2011-01-01"

CORE = frozenset({Slice.CORE})
KEYS = frozenset({Slice.KEYS})
NETWORK = frozenset({Slice.NETWORK})
USER_DATA = frozenset({Slice.USER_DATA})


def text(value: str | int) -> Answer:
    return Answer(str(value).encode())


def lines(values: list[str]) -> Answer:
    return Answer("\n".join(values).encode())


def _port(view: View) -> Port:
    mac = view.params["mac"]
    return next(p for p in view.network.ports if p.mac == mac)


def _ips(port: Port, version: int) -> list[FixedIP]:
    return [ip for ip in port.fixed_ips if ip.version == version]


def _has_floating(view: View) -> bool:
    return view.network.first_floating_ip is not None


def _has_fixed_ipv4(view: View) -> bool:
    return view.network.first_fixed_ipv4 is not None


def identity_document(view: View) -> Answer:
    core = view.core
    zone = core.availability_zone or ""
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
        # botocore derives the region by dropping the zone's last letter; so do we.
        "region": zone[:-1] if len(zone) > 1 and zone[-1].isalpha() else zone,
        "version": "2017-09-30",
    }
    return Answer(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def _mac_leaf(
    name: str, render: Render, present: Present | None = None, needs: frozenset[Slice] = NETWORK
) -> Leaf:
    return Leaf(
        f"meta-data/network/interfaces/macs/{{mac}}/{name}",
        render,
        needs,
        AWS_2011,
        present=present,
        present_needs=NETWORK if present else frozenset(),
    )


LEAVES = (
    Leaf("meta-data/ami-id", lambda v: text(v.core.ami_id), CORE),
    Leaf("meta-data/ami-launch-index", lambda v: text(v.core.launch_index), CORE),
    Leaf("meta-data/ami-manifest-path", lambda v: text("FIXME"), frozenset()),
    Leaf("meta-data/block-device-mapping/{bdm}",
         lambda v: text(dict(v.core.block_device_mapping)[v.params["bdm"]]), CORE,
         "2007-12-15"),
    Leaf("meta-data/hostname", lambda v: text(v.core.hostname), CORE),
    Leaf("meta-data/instance-action", lambda v: text("none"), frozenset(), "2008-09-01"),
    Leaf("meta-data/instance-id", lambda v: text(v.core.ec2_id), CORE, boot_critical=True),
    Leaf("meta-data/instance-type", lambda v: text(v.core.flavor.name), CORE, "2007-08-29"),
    Leaf("meta-data/kernel-id", lambda v: text(v.core.kernel_id or ""), CORE, "2007-12-15",
         present=lambda v: bool(v.core.kernel_id), present_needs=CORE),
    Leaf("meta-data/ramdisk-id", lambda v: text(v.core.ramdisk_id or ""), CORE, "2007-12-15",
         present=lambda v: bool(v.core.ramdisk_id), present_needs=CORE),
    Leaf("meta-data/local-hostname", lambda v: text(v.core.hostname), CORE, "2007-01-19"),
    Leaf("meta-data/local-ipv4", lambda v: text(v.network.first_fixed_ipv4 or ""), NETWORK,
         present=_has_fixed_ipv4, present_needs=NETWORK),
    Leaf("meta-data/mac", lambda v: text(v.network.ports[0].mac), NETWORK, AWS_2011,
         present=lambda v: bool(v.network.ports), present_needs=NETWORK),
    Leaf("meta-data/placement/availability-zone", lambda v: text(str(v.core.availability_zone)),
         CORE, "2008-02-01"),
    # Nova serves the hostname here whether or not there is a floating IP.
    Leaf("meta-data/public-hostname", lambda v: text(v.core.hostname), CORE, "2007-01-19"),
    # AWS leaves public-ipv4 out when there is none (Nova serves an empty body): an empty
    # 200 counts as a failure for botocore, so we follow AWS.
    Leaf("meta-data/public-ipv4", lambda v: text(v.network.first_floating_ip or ""), NETWORK,
         "2007-01-19", present=_has_floating, present_needs=NETWORK),
    Leaf("meta-data/public-keys/{key}/openssh-key",
         lambda v: text(v.keys.for_ec2[int(v.params["key"])].data), KEYS),
    Leaf("meta-data/reservation-id", lambda v: text(v.core.reservation_id), CORE),
    Leaf("meta-data/security-groups", lambda v: lines(list(v.core.security_groups)), CORE),
    _mac_leaf("device-number",
              lambda v: text([p.mac for p in v.network.ports].index(v.params["mac"]))),
    _mac_leaf("interface-id", lambda v: text(_port(v).id)),
    _mac_leaf("local-hostname", lambda v: text(v.core.hostname), needs=CORE | NETWORK),
    _mac_leaf("local-ipv4s", lambda v: lines([ip.address for ip in _ips(_port(v), 4)]),
              present=lambda v: bool(_ips(_port(v), 4))),
    _mac_leaf("mac", lambda v: text(v.params["mac"])),
    _mac_leaf("public-ipv4s", lambda v: lines(list(_port(v).floating_ips)),
              present=lambda v: bool(_port(v).floating_ips)),
    _mac_leaf("subnet-ipv4-cidr-block", lambda v: text(_ips(_port(v), 4)[0].cidr),
              present=lambda v: bool(_ips(_port(v), 4))),
    _mac_leaf("ipv6s", lambda v: lines([ip.address for ip in _ips(_port(v), 6)]),
              present=lambda v: bool(_ips(_port(v), 6))),
    _mac_leaf("subnet-ipv6-cidr-blocks",
              lambda v: lines(sorted({ip.cidr for ip in _ips(_port(v), 6)})),
              present=lambda v: bool(_ips(_port(v), 6))),
    Leaf("user-data", lambda v: Answer(v.user_data.data or b""), USER_DATA,
         present=lambda v: v.user_data.data is not None, present_needs=USER_DATA,
         etag=True, waitable=True, boot_critical=True),
    Leaf("dynamic/instance-identity/document", identity_document, CORE | NETWORK,
         "2009-04-04"),
)  # fmt: skip

PARAMS = (
    Param("bdm", CORE, lambda v: [name for name, _ in v.core.block_device_mapping]),
    # EC2 lists keys as `0=name`; the directory itself is `0/` holding `openssh-key`.
    Param("key", KEYS, lambda v: [str(i) for i in range(len(v.keys.for_ec2))],
          label=lambda v, value: f"{value}={v.keys.for_ec2[int(value)].name}"),
    Param("mac", NETWORK, lambda v: [p.mac for p in v.network.ports]),
)  # fmt: skip


def build_tree() -> Tree:
    return Tree(LEAVES, PARAMS, "/{version}", token_by_default=True)


def served_version(name: str) -> str | None:
    """The version to match leaves against, or None for one we do not serve."""
    if name == "latest":
        return LATEST
    return name if name in VERSIONS else None


def version_listing() -> bytes:
    return "\n".join([*VERSIONS, "latest"]).encode()
