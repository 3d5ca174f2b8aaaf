"""Seed a harness cloud with Nova's own objects. Runs in the Nova venv, not ours:

    python nova_seed.py --config-file nova.conf < cells.json > instances.json

stdin: {"cells": {"cell0": {"database": url}, "cell1": {...}, "cell2": {...}}, "secret": s}.
First points the cell mappings (copied from a schema template) at this cloud's databases,
then creates six instances that differ in every way a metadata path can see, and prints
what it made as JSON. Everything goes through nova.objects, as nova-api and nova-compute
write it; the EC2 id rows Nova would otherwise INSERT on first read are made up front.
"""

import argparse
import base64
import gzip
import json
import sys
import uuid as uuidlib

from nova import config, objects
from nova import context as nova_context
from nova.api.metadata import password as nova_password
from nova.network import model as netmodel
from oslo_utils import timeutils

IMAGE = "1e0a1b2c-0000-4000-8000-0000000000aa"
IMAGE_2 = "1e0a1b2c-0000-4000-8000-0000000000bb"
KERNEL = "1e0a1b2c-0000-4000-8000-0000000000cc"
RAMDISK = "1e0a1b2c-0000-4000-8000-0000000000dd"
KEY_ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBlZXJwZWVycGVlcnBlZXJwZWVycGVlcnBlZXI alpha@cloud.test"
)
KEY_RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7cGVlcnBlZXJwZWVycGVlcnBlZXJwZWVy beta@cloud.test"
KEY_SECOND = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNlY29uZHNlY29uZHNlY29uZHNlY29uZHNlYw beta2@cloud.test"
)
CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUcGVlcg==\n-----END CERTIFICATE-----\n"


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config-file", action="append", required=True)
    args = ap.parse_args()
    argv = [sys.argv[0]]
    for path in args.config_file:
        argv += ["--config-file", path]
    config.parse_args(argv)
    return json.load(sys.stdin)


def point_cells_at_this_cloud(ctx, cells):
    found = {}
    for mapping in objects.CellMappingList.get_all(ctx):
        wanted = cells[mapping.name]
        mapping.database_connection = wanted["database"]
        mapping.transport_url = wanted.get("transport_url", mapping.transport_url)
        mapping.save()
        found[mapping.name] = mapping
    return found


def flavors(ctx):
    made = {}
    for name, flavorid, memory, vcpus, root in (
        ("m1.small", "101", 2048, 1, 20),
        ("m1.large", "102", 8192, 4, 80),
    ):
        flavor = objects.Flavor(
            ctx,
            name=name,
            flavorid=flavorid,
            memory_mb=memory,
            vcpus=vcpus,
            root_gb=root,
            ephemeral_gb=0,
            swap=0,
            rxtx_factor=1.0,
            vcpu_weight=0,
            disabled=False,
            is_public=True,
            extra_specs={},
            projects=[],
        )
        flavor.create()
        made[name] = flavor
    return made


def keypair(ctx, user_id, name, public_key, kind="ssh"):
    uctx = nova_context.RequestContext(user_id=user_id, project_id="p", is_admin=True)
    try:  # one user's key pair, shared by several instances as in a real cloud
        return objects.KeyPair.get_by_name(uctx, user_id, name)
    except Exception:
        pass
    kp = objects.KeyPair(
        uctx,
        user_id=user_id,
        name=name,
        public_key=public_key,
        fingerprint="00:11:22:%02x" % (len(name) % 256),
        type=kind,
    )
    kp.create()
    return kp


def ip(address, kind="fixed", floating=()):
    version = 6 if ":" in address else 4
    fixed = netmodel.FixedIP(
        address=address,
        type=kind,
        version=version,
        floating_ips=[netmodel.IP(address=f, type="floating", version=4) for f in floating],
    )
    return fixed


def subnet(cidr, ips, gateway=None, dns=(), routes=(), **meta):
    version = 6 if ":" in cidr else 4
    return netmodel.Subnet(
        cidr=cidr,
        version=version,
        gateway=netmodel.IP(address=gateway, type="gateway", version=version) if gateway else None,
        dns=[netmodel.IP(address=d, type="dns", version=6 if ":" in d else 4) for d in dns],
        routes=[
            netmodel.Route(cidr=c, gateway=netmodel.IP(address=g, type="gateway"))
            for c, g in routes
        ],
        ips=ips,
        meta=meta,
    )


def vif(
    port_id, mac, network_id, label, subnets, mtu=1450, vif_type="ovs", details=None, profile=None
):
    return netmodel.VIF(
        id=port_id,
        address=mac,
        type=vif_type,
        devname=("tap" + port_id)[:14],
        ovs_interfaceid=port_id,
        active=True,
        vnic_type="normal",
        details=details or {"port_filter": True},
        profile=profile or {},
        network=netmodel.Network(
            id=network_id,
            bridge="br-int",
            label=label,
            meta={"mtu": mtu, "tunneled": True, "injected": False},
            subnets=subnets,
        ),
    )


def port_id(n):
    return f"0b0b0b0b-0000-4000-8000-{n:012d}"


def specs():
    """The six instances: what each has, in Nova's own shapes."""
    cloud_config = b"#cloud-config\nhostname: web-1\npackages: [htop]\n"
    return [
        {
            "name": "web-1",
            "cell": "cell1",
            "project": "p-alpha",
            "user": "u-alpha",
            "flavor": "m1.small",
            "image": IMAGE,
            "user_data": cloud_config,
            "metadata": {"role": "web", "env": "prod"},
            "keys": [("alpha-key", KEY_ED25519, "ssh")],
            "network": [
                vif(
                    port_id(1),
                    "fa:16:3e:00:01:01",
                    "net-private",
                    "private",
                    [
                        subnet(
                            "10.0.0.0/24",
                            [ip("10.0.0.11", floating=["172.24.4.11"])],
                            gateway="10.0.0.1",
                            dns=["10.0.0.2"],
                            dhcp_server="10.0.0.2",
                        )
                    ],
                )
            ],
            "bdms": [("image", "local", "/dev/vda", 0, None)],
            "security_groups": ["default", "web"],
            "boot_roles": "member",
            "features": ["user_data", "metadata", "keypair", "floating_ip", "ipv4_dhcp"],
        },
        {
            "name": "bare-2",
            "cell": "cell1",
            "project": "p-alpha",
            "user": "u-alpha",
            "flavor": "m1.small",
            "image": IMAGE,
            "user_data": None,
            "metadata": {},
            "keys": [],
            "network": [
                vif(
                    port_id(2),
                    "fa:16:3e:00:02:01",
                    "net-static",
                    "static",
                    [
                        subnet(
                            "192.168.50.0/24",
                            [ip("192.168.50.20")],
                            gateway="192.168.50.1",
                            dns=["192.168.50.3", "9.9.9.9"],
                            routes=[("10.20.0.0/16", "192.168.50.254")],
                            enable_dhcp=False,
                        )
                    ],
                    mtu=9000,
                )
            ],
            "bdms": [("image", "local", "/dev/vda", 0, None)],
            "security_groups": ["default"],
            "features": ["no_user_data", "no_metadata", "no_key", "ipv4_static", "host_route"],
        },
        {
            "name": "multi-3",
            "cell": "cell1",
            "project": "p-beta",
            "user": "u-beta",
            "flavor": "m1.large",
            "image": IMAGE_2,
            "user_data": b"#!/bin/sh\necho multi\n",
            "metadata": {"role": "db", "tier": "backend", "owner": "team-b"},
            "keys": [("beta-key", KEY_RSA, "ssh"), ("beta-second", KEY_SECOND, "ssh")],
            "network": [
                vif(
                    port_id(31),
                    "fa:16:3e:00:03:01",
                    "net-dual",
                    "dual",
                    [
                        subnet(
                            "10.1.0.0/24",
                            [ip("10.1.0.5")],
                            gateway="10.1.0.1",
                            dns=["10.1.0.2"],
                            enable_dhcp=True,
                        ),
                        subnet(
                            "2001:db8:1::/64",
                            [ip("2001:db8:1::5")],
                            gateway="2001:db8:1::1",
                            dns=["2001:db8:1::2"],
                            ipv6_address_mode="slaac",
                        ),
                    ],
                ),
                vif(
                    port_id(32),
                    "fa:16:3e:00:03:02",
                    "net-v6",
                    "v6only",
                    [
                        subnet(
                            "2001:db8:2::/64",
                            [ip("2001:db8:2::7")],
                            gateway="2001:db8:2::1",
                            ipv6_address_mode="dhcpv6-stateful",
                        )
                    ],
                    mtu=1400,
                ),
                vif(
                    port_id(33),
                    "fa:16:3e:00:03:03",
                    "net-private",
                    "private",
                    [
                        subnet(
                            "10.0.0.0/24",
                            [ip("10.0.0.33", floating=["172.24.4.33"])],
                            gateway="10.0.0.1",
                            enable_dhcp=False,
                        )
                    ],
                    vif_type="vhostuser",
                ),
            ],
            # The second NIC has no tags field and VLAN 0; the third neither tags nor VLAN,
            # which Nova shows only from 2018-08-27 (vf_trusted is then always there).
            "devices": [
                ("nic", "fa:16:3e:00:03:01", "0000:00:03.0", ["frontend"], 100),
                ("disk", "/dev/vdb", "0:0:0:1", ["db-volume"], None),
                ("nic", "fa:16:3e:00:03:02", "0000:00:04.0", None, 0),
                ("nic", "fa:16:3e:00:03:03", "0000:00:05.0", None, None),
            ],
            # What the compute manager stores at boot: ','.join(context.roles).
            "boot_roles": "member,reader,load-balancer_member",
            "bdms": [
                ("image", "local", "/dev/vda", 0, None),
                ("volume", "volume", "/dev/vdb", None, None),
                ("blank", "local", "/dev/vdc", -1, None),
                ("blank", "local", "/dev/vdd", -1, "swap"),
            ],
            "ephemeral": "/dev/vdc",
            "swap": "/dev/vdd",
            "security_groups": ["default", "db", "backend"],
            "features": [
                "three_ports",
                "ipv6_slaac",
                "ipv6_dhcpv6",
                "device_tags",
                "volume_bdm",
                "ephemeral_swap_bdm",
                "two_keypairs",
                "floating_ip",
                "untagged_nics",
                "boot_roles",
            ],
        },
        {
            "name": "cell2-4",
            "cell": "cell2",
            "project": "p-gamma",
            "user": "u-gamma",
            "flavor": "m1.small",
            "image": IMAGE,
            "user_data": b"#cloud-config\nruncmd: [[touch, /cell2]]\n",
            "metadata": {"cell": "two"},
            "keys": [("gamma-cert", CERT, "x509")],
            "network": [
                vif(
                    port_id(4),
                    "fa:16:3e:00:04:01",
                    "net-gamma",
                    "gamma",
                    [
                        subnet(
                            "10.4.0.0/24",
                            [ip("10.4.0.9", floating=["172.24.4.49"])],
                            gateway="10.4.0.1",
                            dhcp_server="10.4.0.2",
                        )
                    ],
                )
            ],
            "bdms": [("image", "local", "/dev/vda", 0, None)],
            "ec2_offset": 6,
            "security_groups": ["default"],
            "features": ["cell2", "x509_keypair", "ec2_id_not_row_id"],
        },
        {
            "name": "kernel-5",
            "cell": "cell1",
            "project": "p-beta",
            "user": "u-beta",
            "flavor": "m1.small",
            "image": IMAGE,
            "kernel": KERNEL,
            "ramdisk": RAMDISK,
            "user_data": gzip.compress(b"#cloud-config\n# gzipped user data\n", mtime=0),
            "metadata": {"greeting": "grüß dich", "empty": ""},
            "keys": [("beta-key", KEY_RSA, "ssh")],
            "launch_index": 2,
            "availability_zone": "az-east",
            "network": [
                vif(
                    port_id(5),
                    "fa:16:3e:00:05:01",
                    "net-private",
                    "private",
                    [
                        subnet(
                            "10.0.0.0/24",
                            [ip("10.0.0.55")],
                            gateway="10.0.0.1",
                            dhcp_server="10.0.0.2",
                        )
                    ],
                )
            ],
            "bdms": [("image", "local", "/dev/vda", 0, None)],
            "security_groups": ["default"],
            "features": ["kernel_ramdisk", "binary_user_data", "unicode_metadata", "launch_index"],
        },
        {
            "name": "volume-6",
            "cell": "cell1",
            "project": "p-delta",
            "user": "u-delta",
            "flavor": "m1.large",
            "image": "",
            "user_data": b"plain text user data\n",
            "metadata": {"boot": "volume"},
            "keys": [],
            "availability_zone": None,
            "password": "c2VjcmV0LXBhc3N3b3JkLWVuY3J5cHRlZC1ibG9i" * 10,
            "dedicated_cpus": [2, 3],
            "network": [],
            "bdms": [("volume", "volume", "/dev/vda", 0, None)],
            "security_groups": [],
            "features": [
                "boot_from_volume",
                "no_network",
                "password",
                "dedicated_cpus",
                "no_availability_zone",
            ],
        },
    ]


def ensure_s3_ids(cctx, images, dummies):
    for _ in range(dummies):  # so that EC2 image ids are not simply 1, 2, 3
        objects.S3ImageMapping(cctx, uuid=str(uuidlib.uuid4())).create()
    for image in images:
        try:
            objects.S3ImageMapping.get_by_uuid(cctx, image)
        except Exception:
            objects.S3ImageMapping(cctx, uuid=image).create()


def device_metadata(devices):
    found = []
    for kind, key, address, tags, vlan in devices:
        if kind == "nic":
            # As the libvirt driver builds them: tags only when the NIC has some, vlan only
            # when the VIF's details carry one.
            nic = objects.NetworkInterfaceMetadata(
                mac=key, bus=objects.PCIDeviceBus(address=address), vf_trusted=False
            )
            if tags is not None:
                nic.tags = tags
            if vlan is not None:
                nic.vlan = vlan
            found.append(nic)
        else:
            found.append(
                objects.DiskMetadata(
                    bus=objects.SCSIDeviceBus(address=address),
                    path=key,
                    serial="serial-" + key[-3:],
                    tags=tags,
                )
            )
    return objects.InstanceDeviceMetadata(devices=found)


def numa(instance_uuid, pcpus):
    cell = objects.InstanceNUMACell(
        id=0,
        cpuset=set(),
        pcpuset=set(pcpus),
        memory=8192,
        pagesize=None,
        cpu_pinning_raw={str(c): 10 + c for c in pcpus},
        cpu_policy="dedicated",
        cpu_thread_policy=None,
        cpuset_reserved=None,
    )
    return objects.InstanceNUMATopology(instance_uuid=instance_uuid, cells=[cell])


def create_instance(ctx, cells, made_flavors, spec, number):
    cell = cells[spec["cell"]]
    inst_uuid = str(uuidlib.UUID(int=0x5EED0000_0000_4000_8000_000000000000 + number))
    with nova_context.target_cell(ctx, cell) as cctx:
        for _ in range(spec.get("ec2_offset", 0)):
            objects.EC2InstanceMapping(cctx, uuid=str(uuidlib.uuid4())).create()
        ensure_s3_ids(
            cctx,
            [i for i in (spec["image"], spec.get("kernel"), spec.get("ramdisk")) if i],
            dummies=2 if number == 1 else 0,
        )
        keypairs = [keypair(ctx, spec["user"], name, key, kind) for name, key, kind in spec["keys"]]
        flavor = made_flavors[spec["flavor"]]
        system_metadata = {
            "image_base_image_ref": spec["image"],
            "image_os_distro": "ubuntu",
            "image_min_disk": "1",
        }
        if spec.get("boot_roles"):
            system_metadata["boot_roles"] = spec["boot_roles"]
        if spec.get("password"):
            system_metadata.update(nova_password.convert_password(None, spec["password"]))
        user_data = spec["user_data"]
        inst = objects.Instance(
            context=cctx,
            uuid=inst_uuid,
            project_id=spec["project"],
            user_id=spec["user"],
            hostname=spec["name"],
            display_name=spec["name"].upper(),
            display_description="harness instance {}".format(spec["name"]),
            user_data=base64.b64encode(user_data).decode() if user_data is not None else None,
            metadata=spec["metadata"],
            system_metadata=system_metadata,
            key_name=keypairs[0].name if keypairs else None,
            key_data=keypairs[0].public_key if keypairs else None,
            keypairs=objects.KeyPairList(objects=keypairs),
            availability_zone=spec.get("availability_zone", "nova"),
            image_ref=spec["image"],
            kernel_id=spec.get("kernel", ""),
            ramdisk_id=spec.get("ramdisk", ""),
            flavor=flavor,
            instance_type_id=flavor.id,
            memory_mb=flavor.memory_mb,
            vcpus=flavor.vcpus,
            root_gb=flavor.root_gb,
            ephemeral_gb=flavor.ephemeral_gb,
            launch_index=spec.get("launch_index", 0),
            reservation_id="r-%08x" % (0xABC000 + number),
            vm_state="active",
            power_state=1,
            task_state=None,
            host="compute-{}".format(spec["cell"]),
            node="compute-{}".format(spec["cell"]),
            compute_id=1,
            launched_at=timeutils.utcnow(),
            root_device_name="/dev/vda",
            default_ephemeral_device=spec.get("ephemeral"),
            default_swap_device=spec.get("swap"),
            config_drive="",
            info_cache=objects.InstanceInfoCache(
                network_info=netmodel.NetworkInfo(spec["network"])
            ),
        )
        if spec.get("devices"):
            inst.device_metadata = device_metadata(spec["devices"])
        if spec.get("dedicated_cpus"):
            inst.numa_topology = numa(inst_uuid, spec["dedicated_cpus"])
        inst.create()
        for source, destination, device, boot_index, guest_format in spec["bdms"]:
            objects.BlockDeviceMapping(
                cctx,
                instance_uuid=inst_uuid,
                source_type=source,
                destination_type=destination,
                image_id=spec["image"] if source == "image" else None,
                volume_id=str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, inst_uuid + device))
                if source == "volume"
                else None,
                volume_size=10 if source != "image" else None,
                boot_index=boot_index,
                device_name=device,
                delete_on_termination=True,
                device_type="disk",
                disk_bus="virtio",
                guest_format=guest_format,
                no_device=False,
            ).create()
        ec2_id = objects.EC2InstanceMapping.get_by_uuid(cctx, inst_uuid).id
    objects.InstanceMapping(
        ctx,
        instance_uuid=inst_uuid,
        cell_mapping=cell,
        project_id=spec["project"],
        user_id=spec["user"],
        queued_for_delete=False,
    ).create()
    fixed = [str(i["address"]) for v in spec["network"] for i in v.fixed_ips()]
    floating = [str(f["address"]) for v in spec["network"] for f in v.floating_ips()]
    return {
        "uuid": inst_uuid,
        "name": spec["name"],
        "hostname": spec["name"],
        "cell": spec["cell"],
        "project_id": spec["project"],
        "user_id": spec["user"],
        "fixed_addresses": fixed,
        "floating_addresses": floating,
        "ec2_id": f"i-{ec2_id:08x}",
        "user_data": base64.b64encode(user_data).decode() if user_data is not None else None,
        "metadata": spec["metadata"],
        "key_names": [k[0] for k in spec["keys"]],
        "security_groups": spec["security_groups"],
        "availability_zone": spec.get("availability_zone", "nova"),
        "features": spec["features"],
    }


def main():
    objects.register_all()
    request = parse()
    ctx = nova_context.get_admin_context()
    cells = point_cells_at_this_cloud(ctx, request["cells"])
    made_flavors = flavors(ctx)
    created = [
        create_instance(ctx, cells, made_flavors, spec, n) for n, spec in enumerate(specs(), 1)
    ]
    json.dump({"instances": created}, sys.stdout)


if __name__ == "__main__":
    main()
