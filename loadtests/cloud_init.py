"""What cloud-init asks, in its order: the request sequences the benchmarks and the
statement-count tests replay."""

# cloud-init 22.4's OpenStack datasource (reference imds-peers §5.2): the version listing,
# its five files, then its reader's crawl of the EC2 meta-data tree: each listing, child
# directories first, then the leaves of the level. (The per-MAC leaves are left out: the
# MAC differs per instance, and so is public-ipv4: listed only with a floating IP.)
OPENSTACK_BOOT = (
    "/openstack",
    "/openstack/2018-08-27/meta_data.json",
    "/openstack/2018-08-27/user_data",
    "/openstack/2018-08-27/vendor_data.json",
    "/openstack/2018-08-27/vendor_data2.json",
    "/openstack/2018-08-27/network_data.json",
    "/latest/meta-data/",
    "/latest/meta-data/block-device-mapping/",
    "/latest/meta-data/block-device-mapping/ami",
    "/latest/meta-data/block-device-mapping/root",
    "/latest/meta-data/network/",
    "/latest/meta-data/network/interfaces/",
    "/latest/meta-data/network/interfaces/macs/",
    "/latest/meta-data/placement/",
    "/latest/meta-data/placement/availability-zone",
    "/latest/meta-data/public-keys/",
    "/latest/meta-data/public-keys/0/openssh-key",
    "/latest/meta-data/ami-id",
    "/latest/meta-data/ami-launch-index",
    "/latest/meta-data/ami-manifest-path",
    "/latest/meta-data/hostname",
    "/latest/meta-data/instance-action",
    "/latest/meta-data/instance-id",
    "/latest/meta-data/instance-type",
    "/latest/meta-data/local-hostname",
    "/latest/meta-data/local-ipv4",
    "/latest/meta-data/mac",
    "/latest/meta-data/public-hostname",
    "/latest/meta-data/reservation-id",
    "/latest/meta-data/security-groups",
)


def newer_than_2009(path: str) -> bool:
    # EC2 2009-04-04 has no `network/` directory and no `mac` (both 2011-01-01): its
    # listing does not offer them, so cloud-init's crawl does not ask.
    return "/meta-data/network/" in path or path.endswith("/meta-data/mac")


def _versioned(openstack: str, ec2: str) -> tuple[str, ...]:
    paths = (
        path.replace("/openstack/2018-08-27/", f"/openstack/{openstack}/").replace(
            "/latest/", f"/{ec2}/"
        )
        for path in OPENSTACK_BOOT
    )
    return tuple(p for p in paths if ec2 == "latest" or not newer_than_2009(p))


# The same boot on the `latest` trees, and on dated versions only (OpenStack 2018-08-27,
# EC2 2009-04-04, as cloud-init asks when it pins versions): each version is its own
# statistics key, so each sequence is learned on its own.
LATEST_BOOT = _versioned("latest", "latest")
DATED_BOOT = _versioned("2018-08-27", "2009-04-04")
