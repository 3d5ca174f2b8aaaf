"""Two server processes sharing one database and one Redis: a write through one is served by
the other on the very next request, however warm the other's caches were."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.documents import guest_headers, instance_uuid, sample_document
from tests.servers import ServerProcess, redis_replicas

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with redis_replicas(tmp_path_factory.mktemp("replicas"), 0) as pair:
        yield pair


def put(server: ServerProcess, doc: dict[str, object]) -> None:
    status, body = server.admin("PUT", f"/v1/instances/{doc['uuid']}", doc)
    assert status in (200, 201), body


def test_a_write_through_one_replica_is_served_by_the_other_at_once(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    writer, reader = replicas
    put(writer, sample_document(41))
    path = "/openstack/latest/meta_data.json"
    for _ in range(3):  # warm every cache tier of the reader
        status, body = reader.guest(path, guest_headers(41))
        assert status == 200 and b'"hostname":"web-41"' in body
    put(writer, sample_document(41, hostname="after-41"))
    status, body = reader.guest(path, guest_headers(41))
    assert status == 200
    assert b'"hostname":"after-41"' in body


def test_user_data_replaced_on_one_replica_is_read_back_from_the_other(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    writer, reader = replicas
    put(writer, sample_document(42))
    assert reader.guest("/latest/user-data", guest_headers(42))[0] == 200
    new = b"#!/bin/sh\necho replaced\n\x00\xff"
    status, _ = writer.admin("PUT", f"/v1/instances/{instance_uuid(42)}/user-data", raw=new)
    assert status == 204
    assert reader.guest("/latest/user-data", guest_headers(42)) == (200, new)
    assert reader.guest("/openstack/latest/user_data", guest_headers(42)) == (200, new)


def test_an_instance_deleted_on_one_replica_is_gone_on_the_other(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    writer, reader = replicas
    put(writer, sample_document(43))
    assert reader.guest("/latest/meta-data/instance-id", guest_headers(43))[0] == 200
    assert writer.admin("DELETE", f"/v1/instances/{instance_uuid(43)}")[0] == 204
    assert reader.guest("/latest/meta-data/instance-id", guest_headers(43))[0] == 404


def test_an_address_moved_between_instances_follows_on_the_other_replica(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    writer, reader = replicas
    put(writer, sample_document(44))
    status, before = reader.guest("/latest/meta-data/hostname", guest_headers(44))
    assert (status, before) == (200, b"web-44")
    put(writer, sample_document(44, ports=[]))
    put(writer, sample_document(45, ports=sample_document(44)["ports"]))
    assert reader.guest("/latest/meta-data/hostname", guest_headers(44)) == (200, b"web-45")


def test_statistics_add_up_across_replicas(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = replicas
    put(first, sample_document(46))
    for server, count in ((first, 3), (second, 4)):
        for _ in range(count):
            assert server.guest("/latest/meta-data/ami-id", guest_headers(46))[0] == 200
    status, body = first.admin("GET", "/v1/stats/paths")
    assert status == 200
    rows = {(r["path"], r["version"]): r for r in json.loads(body)["paths"]}
    # the second replica flushes once a second: allow it to land
    deadline = time.monotonic() + 5
    while rows[("/{version}/meta-data/ami-id", "latest")]["hits"] < 7:
        assert time.monotonic() < deadline, (rows, second.log.read_text()[-3000:])
        time.sleep(0.2)
        rows = {
            (r["path"], r["version"]): r
            for r in json.loads(first.admin("GET", "/v1/stats/paths")[1])["paths"]
        }
    assert rows[("/{version}/meta-data/ami-id", "latest")]["hits"] == 7
