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
