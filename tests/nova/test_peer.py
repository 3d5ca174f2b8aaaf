"""The Nova peer harness works: Nova's own app serves the instances Nova's objects made,
the read-only user can only read, and the statement counter sees Nova's SELECTs."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pymysql
import pytest

from loadtests.nova_peer import (
    NovaCloud,
    NovaMetadataApp,
    SeededInstance,
    StatementCounter,
    grant_read_only_user,
    run_in_nova,
    start_nova_metadata,
)
from loadtests.nova_peer.databases import MYSQL_HOST, MYSQL_PORT
from loadtests.nova_peer.parity import Identity
from loadtests.nova_peer.rabbitmq import queue_depths

SEEDED = ["web-1", "bare-2", "multi-3", "cell2-4", "kernel-5", "volume-6"]


def get(
    app: NovaMetadataApp, cloud: NovaCloud, instance: SeededInstance, path: str
) -> tuple[int, bytes]:
    identity = Identity(instance.uuid, instance.project_id, cloud.shared_secret, instance.address)
    request = urllib.request.Request(app.base_url + path, headers=identity.headers())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def meta_data(app: NovaMetadataApp, cloud: NovaCloud, instance: SeededInstance) -> dict[str, Any]:
    status, body = get(app, cloud, instance, "/openstack/latest/meta_data.json")
    assert status == 200, body
    document: dict[str, Any] = json.loads(body)
    return document


def test_the_cloud_has_the_six_varied_instances_in_two_cells(nova_cloud_mysql: NovaCloud) -> None:
    assert [i.name for i in nova_cloud_mysql.instances] == SEEDED
    assert {i.cell for i in nova_cloud_mysql.instances} == {"cell1", "cell2"}
    assert set(nova_cloud_mysql.database_urls) == {"api", "cell0", "cell1", "cell2"}
    assert "metadata_proxy_shared_secret" in nova_cloud_mysql.config_path.read_text()


@pytest.mark.parametrize("name", SEEDED)
def test_novas_app_answers_meta_data_json_with_the_seeded_values(
    nova_metadata_app: NovaMetadataApp, nova_cloud_mysql: NovaCloud, name: str
) -> None:
    instance = nova_cloud_mysql.instance(name)
    document = meta_data(nova_metadata_app, nova_cloud_mysql, instance)
    assert document["uuid"] == instance.uuid
    assert document["hostname"] == f"{instance.hostname}.{nova_cloud_mysql.dhcp_domain}"
    assert document["name"] == instance.name.upper()
    assert document["project_id"] == instance.project_id
    assert document["availability_zone"] == instance.availability_zone
    assert document.get("meta", {}) == instance.metadata
    if instance.key_names:  # Nova shows the first key pair only
        assert list(document["public_keys"]) == [instance.key_names[0]]
    else:
        assert "public_keys" not in document


def test_novas_app_serves_the_seeded_user_data_and_ec2_ids(
    nova_metadata_app: NovaMetadataApp, nova_cloud_mysql: NovaCloud
) -> None:
    for instance in nova_cloud_mysql.instances:
        status, body = get(
            nova_metadata_app, nova_cloud_mysql, instance, "/openstack/latest/user_data"
        )
        assert (status, body) == ((200, instance.user_data) if instance.user_data else (404, body))
        status, body = get(
            nova_metadata_app, nova_cloud_mysql, instance, "/latest/meta-data/instance-id"
        )
        assert (status, body.decode()) == (200, instance.ec2_id)
    # the cell2 instance's EC2 id is its instance_id_mappings row, not the instances row id
    assert nova_cloud_mysql.instance("cell2-4").ec2_id != "i-00000001"


def test_novas_app_shows_device_tags_dedicated_cpus_and_ipv6(
    nova_metadata_app: NovaMetadataApp, nova_cloud_mysql: NovaCloud
) -> None:
    multi = meta_data(nova_metadata_app, nova_cloud_mysql, nova_cloud_mysql.instance("multi-3"))
    assert sorted(d["tags"][0] for d in multi["devices"] if "tags" in d) == [
        "db-volume",
        "frontend",
    ]
    # Untagged NICs too (vf_trusted is always shown from 2018-08-27), and VLAN 0 is shown.
    assert [d.get("vlan") for d in multi["devices"] if d["type"] == "nic"] == [100, 0, None]
    volume = meta_data(nova_metadata_app, nova_cloud_mysql, nova_cloud_mysql.instance("volume-6"))
    assert volume["dedicated_cpus"] == [2, 3]
    status, body = get(
        nova_metadata_app,
        nova_cloud_mysql,
        nova_cloud_mysql.instance("multi-3"),
        "/openstack/latest/network_data.json",
    )
    types = {network["type"] for network in json.loads(body)["networks"]}
    assert status == 200 and {"ipv6_slaac", "ipv6_dhcpv6-stateful", "ipv4"} <= types


def test_a_wrong_signature_is_refused_by_nova(
    nova_metadata_app: NovaMetadataApp, nova_cloud_mysql: NovaCloud
) -> None:
    instance = nova_cloud_mysql.instance("web-1")
    headers = Identity(instance.uuid, instance.project_id, "not-the-secret").headers()
    request = urllib.request.Request(nova_metadata_app.base_url + "/openstack", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403


def test_the_read_only_user_reads_but_cannot_insert(nova_cloud_mysql: NovaCloud) -> None:
    user, password, urls = grant_read_only_user(nova_cloud_mysql)
    cell1 = nova_cloud_mysql.databases.names["cell1"]
    assert urls["cell1"].endswith(f"/{cell1}?charset=utf8")
    conn = pymysql.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user=user, password=password, database=cell1
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM instances")
            assert cursor.fetchone() == (5,)
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cursor.execute("INSERT INTO instance_id_mappings (uuid, deleted) VALUES ('x', 0)")
            assert denied.value.args[0] == 1142  # ER_TABLEACCESS_DENIED_ERROR
            cursor.execute("SELECT COUNT(*) FROM instance_id_mappings WHERE uuid = 'x'")
            assert cursor.fetchone() == (0,)
    finally:
        conn.close()


def test_the_counter_counts_novas_selects_cold_and_none_warm(nova_cloud_mysql: NovaCloud) -> None:
    assert nova_cloud_mysql.nova_user
    with start_nova_metadata(nova_cloud_mysql, cache_seconds=15) as app:
        instance = nova_cloud_mysql.instance("kernel-5")
        counter = StatementCounter(nova_cloud_mysql.nova_user)
        assert get(app, nova_cloud_mysql, instance, "/latest/meta-data/instance-id")[0] == 200
        cold = counter.delta()
        counter.reset()
        assert get(app, nova_cloud_mysql, instance, "/latest/meta-data/instance-id")[0] == 200
        warm = counter.delta()
    # Nova loads the whole instance for a leaf: the mapping, the instance with its joins,
    # metadata, system metadata, EC2 ids, block devices
    assert cold.selects >= 5 and cold.writes == 0
    assert warm.statements == 0


def test_the_sqlite_cloud_has_nova_rows_in_both_cells(nova_cloud_sqlite: NovaCloud) -> None:
    counts = {}
    for cell in ("cell1", "cell2"):
        path = nova_cloud_sqlite.database_urls[cell].removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            counts[cell] = conn.execute(
                "SELECT COUNT(*) FROM instances WHERE deleted = 0"
            ).fetchone()[0]
    assert counts == {"cell1": 5, "cell2": 1}
    with start_nova_metadata(nova_cloud_sqlite) as app:
        instance = nova_cloud_sqlite.instance("cell2-4")
        assert meta_data(app, nova_cloud_sqlite, instance)["uuid"] == instance.uuid


SAVE_METADATA = """
import sys
from nova import config, context, objects
objects.register_all()
config.parse_args([sys.argv[0], "--config-file", sys.argv[1]])
ctx = context.get_admin_context()
mapping = objects.InstanceMapping.get_by_instance_uuid(ctx, sys.argv[2])
with context.target_cell(ctx, mapping.cell_mapping) as cell:
    instance = objects.Instance.get_by_uuid(cell, sys.argv[2], expected_attrs=["metadata"])
    instance.metadata = dict(instance.metadata, changed="yes")
    instance.save()
"""


def test_novas_own_save_publishes_a_versioned_notification_on_the_clouds_vhost(
    new_nova_cloud: Callable[..., NovaCloud], nova_notification_url: str
) -> None:
    cloud = new_nova_cloud("mysql", notification_url=nova_notification_url)
    before = queue_depths(nova_notification_url).get("versioned_notifications.info", 0)
    run_in_nova(SAVE_METADATA, [str(cloud.config_path), cloud.instance("web-1").uuid])
    after = queue_depths(nova_notification_url)["versioned_notifications.info"]
    assert after == before + 1  # instance.update, as notify_on_state_change asks
