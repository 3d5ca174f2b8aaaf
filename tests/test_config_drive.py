"""The config drive: an ISO 9660 image labelled config-2 holding what the live trees serve,
the same bytes from the admin route and the CLI, read back by pycdlib and by Debian's real
cloud-init ConfigDrive datasource."""

from __future__ import annotations

import base64
import gzip
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pycdlib
import pytest
from aiohttp.test_utils import TestClient

from metadata.config import Settings
from metadata.configdrive import drive_seed
from metadata.guest import openstack
from metadata.iso_image import FIXED_TIME, build_iso, read_iso
from metadata.services import Services
from tests import backends
from tests.clients import client_output
from tests.clients.conftest import SYSTEM_PYTHON
from tests.documents import guest_headers, sample_document

Client = TestClient[Any, Any]
HERE = Path(__file__).resolve().parent
# Not UTF-8, as users often send it: only a byte-exact path gets it through.
USER_DATA = gzip.compress(b"#cloud-config\nhostname: drive-test\n", mtime=0)
# The newest OpenStack version Debian 12's cloud-init (22.4) knows: it reads that
# directory, not `latest`, whenever the drive has it.
CLOUD_INIT_NEWEST_KNOWN = "2018-08-27"


def drive_document(n: int = 41) -> dict[str, Any]:
    doc = sample_document(
        n,
        user_data=base64.b64encode(USER_DATA).decode(),
        security_groups=["default", "web"],
        block_device_mapping={"ami": "vda", "root": "/dev/vda", "ephemeral0": "/dev/vdb"},
    )
    doc["keys"].append({"name": "k2", "type": "ssh", "data": "ssh-rsa AAAAB3Nza k2"})
    return doc


async def fetch_drive(admin: Client, uuid: str) -> bytes:
    response = await admin.get(f"/v1/instances/{uuid}/config-drive")
    assert response.status == 200, await response.text()
    assert response.content_type == "application/x-iso9660-image"
    return await response.read()


def without_seed(body: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(body)
    doc.pop("random_seed", None)
    return doc


async def test_the_drive_holds_every_openstack_version_and_ec2_as_the_live_trees_serve_them(
    admin: Client, guest: Client, put_instance: Any
) -> None:
    doc = drive_document()
    await put_instance(doc)
    files = read_iso(await fetch_drive(admin, doc["uuid"]))

    names = [*openstack.served_versions(), "latest"]
    assert {p.split("/")[1] for p in files if p.startswith("openstack/")} == set(names)
    assert not any(p.endswith("/password") for p in files)
    headers = guest_headers(41)
    for name in names:
        listing = await guest.get(f"/openstack/{name}/", headers=headers)
        served = (await listing.text()).splitlines()
        on_drive = sorted(p.rsplit("/", 1)[1] for p in files if p.startswith(f"openstack/{name}/"))
        assert on_drive == sorted(f for f in served if f != "password"), name
        for file in on_drive:
            live = await (await guest.get(f"/openstack/{name}/{file}", headers=headers)).read()
            drive = files[f"openstack/{name}/{file}"]
            if file == "meta_data.json":
                assert without_seed(drive) == without_seed(live)
            else:
                assert drive == live, (name, file)
    assert files["openstack/latest/user_data"] == USER_DATA

    for name in ("2009-04-04", "latest"):
        assert files[f"ec2/{name}/user-data"] == USER_DATA
        meta = orjson.loads(files[f"ec2/{name}/meta-data.json"])
        live_id = await (await guest.get(f"/{name}/meta-data/instance-id", headers=headers)).text()
        assert meta["instance-id"] == live_id
        placement = {"availability-zone": doc["availability_zone"]}
        if name == "latest":  # the live tree's latest: every leaf, region (2020-08-24) too
            live_region = await guest.get("/latest/meta-data/placement/region", headers=headers)
            placement["region"] = await live_region.text()
        assert meta["placement"] == placement
        assert meta["block-device-mapping"] == doc["block_device_mapping"]
        # Nova's dict: several lines are a list, public keys nested by index
        assert meta["security-groups"] == ["default", "web"]
        assert meta["public-keys"] == {
            "0": {"openssh-key": doc["keys"][0]["data"]},
            "1": {"openssh-key": doc["keys"][1]["data"]},
        }
    assert {p.split("/")[1] for p in files if p.startswith("ec2/")} == {"2009-04-04", "latest"}


async def test_the_image_is_iso9660_with_joliet_and_rock_ridge_labelled_config_2(
    admin: Client, put_instance: Any
) -> None:
    doc = drive_document()
    await put_instance(doc)
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(await fetch_drive(admin, doc["uuid"])))
    try:
        assert iso.pvd.volume_identifier.rstrip(b" ") == b"config-2"
        assert iso.has_joliet() and iso.has_rock_ridge()
        joliet = io.BytesIO()
        iso.get_file_from_iso_fp(joliet, joliet_path="/openstack/latest/user_data")
        assert joliet.getvalue() == USER_DATA
    finally:
        iso.close()


async def test_the_same_instance_gives_the_same_bytes_with_fixed_timestamps(
    admin: Client, put_instance: Any
) -> None:
    doc = drive_document()
    await put_instance(doc)
    first = await fetch_drive(admin, doc["uuid"])
    assert await fetch_drive(admin, doc["uuid"]) == first
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(first))
    try:
        created = iso.pvd.volume_creation_date
        assert (created.year, created.month, created.dayofmonth, created.gmtoffset) == (
            2000,
            1,
            1,
            0,
        )
    finally:
        iso.close()
    # A change to the instance is a new drive.
    response = await admin.put(f"/v1/instances/{doc['uuid']}/user-data", data=b"#!/bin/sh\n")
    assert response.status == 204
    changed = read_iso(await fetch_drive(admin, doc["uuid"]))
    assert changed["openstack/latest/user_data"] == b"#!/bin/sh\n"


def test_the_image_writer_refuses_paths_that_escape_the_drive() -> None:
    for bad in ("/abs", "a/../b", "a//b", "./a"):
        with pytest.raises(ValueError, match="relative path"):
            build_iso({bad: b"x"}, "config-2")
    assert read_iso(build_iso({"a/b/c.txt": b"x"}, "config-2")) == {"a/b/c.txt": b"x"}
    assert FIXED_TIME == 946684800.0


async def test_an_unknown_instance_has_no_config_drive(admin: Client) -> None:
    response = await admin.get(f"/v1/instances/{sample_document(404)['uuid']}/config-drive")
    assert response.status == 404
    assert "no instance" in (await response.json())["error"]
    assert (await admin.get("/v1/instances/not-a-uuid/config-drive")).status == 404


async def test_the_route_needs_the_admin_token(
    aiohttp_client: Any, services: Services, put_instance: Any
) -> None:
    from metadata.admin.routes import build_admin_app

    doc = drive_document()
    await put_instance(doc)
    anonymous = await aiohttp_client(build_admin_app(services))
    assert (await anonymous.get(f"/v1/instances/{doc['uuid']}/config-drive")).status == 401


async def test_user_data_over_the_limit_is_a_clear_error_and_no_drive(
    settings: Settings, put_instance: Any, aiohttp_client: Any
) -> None:
    """User data stored under a larger limit than the one in force now."""
    from dataclasses import replace

    from metadata.admin.routes import build_admin_app
    from tests.conftest import ADMIN_TOKEN

    doc = drive_document()
    await put_instance(doc)
    async with Services.open(replace(settings, user_data_max_bytes=16)) as smaller:
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        client = await aiohttp_client(build_admin_app(smaller), headers=auth)
        response = await client.get(f"/v1/instances/{doc['uuid']}/config-drive")
    assert response.status == 409
    message = (await response.json())["error"]
    assert f"{len(USER_DATA)} bytes" in message and "user_data_max_bytes" in message


async def test_the_cli_writes_the_same_bytes_as_the_admin_route(
    admin: Client, put_instance: Any, settings: Settings, tmp_path: Path
) -> None:
    doc = drive_document()
    await put_instance(doc)
    from_route = await fetch_drive(admin, doc["uuid"])
    output = tmp_path / "disk.config"
    done = await _cli(
        "config-drive", doc["uuid"], "-o", str(output), "--database-url", settings.database_url
    )
    assert done.returncode == 0, done.stderr
    assert output.read_bytes() == from_route

    missing = tmp_path / "missing.iso"
    done = await _cli(
        "config-drive",
        sample_document(404)["uuid"],
        "-o",
        str(missing),
        "--database-url",
        settings.database_url,
    )
    assert done.returncode == 1
    assert "no instance" in done.stderr
    assert not missing.exists()


async def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """`metadata …` as an operator runs it, in its own process."""
    import asyncio
    import os
    import sys

    environ = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_")}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "metadata", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )


def test_the_drive_seed_is_per_instance_and_generation() -> None:
    assert len(drive_seed("u", 1)) == 512
    assert drive_seed("u", 1) == drive_seed("u", 1) != drive_seed("u", 2)


# -- read back by cloud-init ------------------------------------------------------------


def cloud_init_python() -> str:
    probe = (
        subprocess.run(
            [SYSTEM_PYTHON, "-c", "import cloudinit.sources.DataSourceConfigDrive"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if Path(SYSTEM_PYTHON).exists()
        else None
    )
    if probe is None or probe.returncode != 0:
        backends.unavailable("cloud-init is not installed (apt-get install cloud-init)")
    return SYSTEM_PYTHON


def extract(files: dict[str, bytes], into: Path) -> Path:
    for path, data in files.items():
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return into


def read_with_cloud_init(directory: Path, nics: dict[str, str], tmp_path: Path) -> Any:
    output = tmp_path / "cloud-init.json"
    completed = subprocess.run(
        [
            cloud_init_python(),
            str(HERE / "clients" / "read_config_drive.py"),
            str(directory),
            json.dumps(nics),
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(HERE / "clients"),
        },
    )
    assert completed.returncode == 0, completed.stderr[-6000:]
    return client_output.loads(output.read_text())


async def test_cloud_init_reads_the_extracted_drive_from_the_newest_version_it_knows(
    admin: Client, put_instance: Any, tmp_path: Path
) -> None:
    doc = drive_document()
    doc["ports"][0]["fixed_ips"].append(
        {"address": "fd00:41::5", "cidr": "fd00:41::/64", "gateway": "fd00:41::1"}
    )
    await put_instance(doc)
    files = read_iso(await fetch_drive(admin, doc["uuid"]))
    mac = doc["ports"][0]["mac"]
    read = read_with_cloud_init(extract(files, tmp_path / "drive"), {mac: "eth0"}, tmp_path)

    # The trap: cloud-init reads the newest dated directory it knows, not `latest`; that
    # directory must hold everything, or the guest boots without user or network data.
    assert read["version_dir"] == CLOUD_INIT_NEWEST_KNOWN
    results = read["results"]
    assert results["version"] == 2
    assert results["metadata"]["instance-id"] == doc["uuid"]
    assert results["metadata"]["local-hostname"] == doc["hostname"]
    assert results["metadata"]["public_keys"] == {k["name"]: k["data"] for k in doc["keys"]}
    assert results["userdata"] == USER_DATA
    assert results["vendordata"] == doc["vendor_data"]
    assert results["ec2-metadata"]["block-device-mapping"]["root"] == "/dev/vda"
    dated = f"openstack/{CLOUD_INIT_NEWEST_KNOWN}/"
    assert results["networkdata"] == orjson.loads(files[dated + "network_data.json"])
    # and the guest's network as cloud-init would write it
    config = read["network_config"]["config"]
    physical = next(c for c in config if c["type"] == "physical")
    assert (physical["mac_address"], physical["name"], physical["mtu"]) == (mac, "eth0", 1450)
    addresses = {s.get("address") for s in physical["subnets"]}
    assert {doc["ports"][0]["fixed_ips"][0]["address"], "fd00:41::5"} <= addresses
