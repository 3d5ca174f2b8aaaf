"""Guests waiting for their user data to change: woken by a write in this process or, across
replicas, through Redis; bounded; holding no database connection. Events are ordered (the
waiter is seen registered before the write), never timed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from metadata.errors import BadRequest
from metadata.guest.waiting import Waiters, WaitRequest, parse_wait, wait_for_change
from metadata.user_data_versions import etag_of
from tests.documents import guest_headers, instance_uuid, sample_document
from tests.servers import ServerProcess, redis_replicas

WAIT = "/openstack/latest/user_data?wait_for_change=true&timeout_sec=300"
# A waiter that is not woken would hang this long before the test fails (not a measurement).
SAFETY = 30.0


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"wait_max_per_instance": 2, "wait_max_total": 3}


def url(n: int) -> str:
    return f"/v1/instances/{instance_uuid(n)}/user-data"


async def until(condition: Any) -> None:
    """Yield to the loop until `condition()` holds (the order of events, not a duration)."""
    async with asyncio.timeout(SAFETY):
        # polls state that other tasks change; they offer no event to wait on
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def current_etag(guest: Any, n: int) -> str:
    response = await guest.get("/openstack/latest/user_data", headers=guest_headers(n))
    etag: str = response.headers["ETag"]
    return etag


async def test_a_waiting_guest_is_answered_by_the_next_user_data_write(
    admin: Any, guest: Any, put_instance: Any, services: Any
) -> None:
    await put_instance(sample_document(1))
    etag = await current_etag(guest, 1)
    waiting = asyncio.ensure_future(guest.get(f"{WAIT}&last_etag={etag}", headers=guest_headers(1)))
    await until(lambda: services.waiters.waiting(instance_uuid(1)) == 1)
    assert not waiting.done()
    assert (await admin.put(url(1), data=b"#cloud-config\nchanged: true\n")).status == 204
    async with asyncio.timeout(SAFETY):
        response = await waiting
    assert response.status == 200
    assert await response.read() == b"#cloud-config\nchanged: true\n"
    assert response.headers["ETag"] == etag_of(b"#cloud-config\nchanged: true\n")
    assert services.waiters.total == 0


async def test_a_stale_last_etag_is_answered_at_once_with_the_current_value(
    guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(1))
    for last_etag in ("0", '"an-old-etag"'):
        async with asyncio.timeout(SAFETY):  # timeout_sec=300: only an immediate answer passes
            response = await guest.get(
                f"/latest/user-data?wait_for_change=true&last_etag={last_etag}&timeout_sec=300",
                headers=guest_headers(1),
            )
        assert response.status == 200
        assert await response.read() == b"#cloud-config\nhostname: web-1\n"


async def test_timeout_answers_with_the_unchanged_value_and_its_etag(
    guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(1))
    etag = await current_etag(guest, 1)
    response = await guest.get(
        f"/latest/user-data?wait_for_change=true&last_etag={etag}&timeout_sec=0",
        headers=guest_headers(1),
    )
    assert (response.status, response.headers["ETag"]) == (200, etag)


async def test_a_change_to_other_fields_does_not_end_the_wait(
    admin: Any, guest: Any, put_instance: Any, services: Any
) -> None:
    await put_instance(sample_document(1))
    etag = await current_etag(guest, 1)
    waiting = asyncio.ensure_future(guest.get(f"{WAIT}&last_etag={etag}", headers=guest_headers(1)))
    await until(lambda: services.waiters.waiting(instance_uuid(1)) == 1)
    doc = sample_document(1, hostname="renamed")
    del doc["user_data"]
    await admin.put(f"/v1/instances/{instance_uuid(1)}", json=doc)
    assert (await admin.put(url(1), data=b"second")).status == 204
    async with asyncio.timeout(SAFETY):
        response = await waiting
    # Woken by the hostname change, the waiter saw the same ETag and waited on.
    assert await response.read() == b"second"


async def test_the_wait_loop_returns_only_when_the_etag_differs() -> None:
    waiters = Waiters(4, 4)
    etags = iter(['"a"', '"a"', '"b"'])
    reads: list[str] = []

    async def read() -> str:
        reads.append(next(etags))
        return reads[-1]

    task = asyncio.ensure_future(wait_for_change(waiters, "u", WaitRequest('"a"', 300), read))
    await until(lambda: len(reads) == 1)
    waiters.notify("u")  # something else changed: read again, still "a"
    await until(lambda: len(reads) == 2)
    await asyncio.sleep(0)
    assert not task.done()
    waiters.notify("u")
    async with asyncio.timeout(SAFETY):
        await task
    assert reads == ['"a"', '"a"', '"b"']
    assert waiters.total == 0


async def test_a_waiting_guest_holds_no_database_connection(
    admin: Any, guest: Any, put_instance: Any, services: Any
) -> None:
    await put_instance(sample_document(1))
    etag = await current_etag(guest, 1)
    waiting = asyncio.ensure_future(guest.get(f"{WAIT}&last_etag={etag}", headers=guest_headers(1)))
    pools = (services.db.reader.pool, services.db.writer.pool)
    # The waiter reads once after registering; a waiter that kept its connection would
    # never let this state come (and `until` would fail).
    await until(
        lambda: (
            services.waiters.waiting(instance_uuid(1)) == 1
            and all(pool.checkedout() == 0 for pool in pools)
        )
    )
    assert not waiting.done()
    await admin.put(url(1), data=b"done")
    async with asyncio.timeout(SAFETY):
        assert (await waiting).status == 200


async def test_waiters_beyond_the_bounds_get_503_with_retry_after(
    admin: Any, guest: Any, put_instance: Any, services: Any
) -> None:
    for n in (1, 2):
        await put_instance(sample_document(n))
    held = [asyncio.ensure_future(guest.get(WAIT, headers=guest_headers(n))) for n in (1, 1, 2)]
    await until(lambda: services.waiters.total == 3)
    per_instance = await guest.get(WAIT, headers=guest_headers(1))  # 2 per instance
    assert per_instance.status == 503
    assert per_instance.headers["Retry-After"] == "1"
    await put_instance(sample_document(3))
    in_total = await guest.get(WAIT, headers=guest_headers(3))  # 3 in all
    assert in_total.status == 503
    for n in (1, 2):
        await admin.put(url(n), data=b"release")
    async with asyncio.timeout(SAFETY):
        assert [r.status for r in await asyncio.gather(*held)] == [200, 200, 200]
    assert services.waiters.total == 0


async def test_a_deleted_instance_ends_the_wait_with_404(
    admin: Any, guest: Any, put_instance: Any, services: Any
) -> None:
    await put_instance(sample_document(1))
    waiting = asyncio.ensure_future(guest.get(WAIT, headers=guest_headers(1)))
    await until(lambda: services.waiters.waiting(instance_uuid(1)) == 1)
    assert (await admin.delete(f"/v1/instances/{instance_uuid(1)}")).status == 204
    async with asyncio.timeout(SAFETY):
        assert (await waiting).status == 404


@pytest.mark.parametrize(
    "query",
    [
        "/latest/user-data?wait_for_change=true&timeout_sec=soon",
        "/latest/user-data?wait_for_change=true&timeout_sec=-1",
        "/latest/meta-data/hostname?wait_for_change=true",
    ],
)
async def test_bad_waits_are_400(guest: Any, put_instance: Any, query: str) -> None:
    await put_instance(sample_document(1))
    assert (await guest.get(query, headers=guest_headers(1))).status == 400


def test_timeout_defaults_and_is_cut_to_the_maximum() -> None:
    assert parse_wait({}, 60, 300) is None
    assert parse_wait({"wait_for_change": "true"}, 60, 300) == WaitRequest(None, 60)
    assert parse_wait({"wait_for_change": "true", "timeout_sec": "9999"}, 60, 300) == (
        WaitRequest(None, 300)
    )
    assert parse_wait({"wait_for_change": "true", "last_etag": "abc"}, 60, 300) == (
        WaitRequest('"abc"', 60)
    )
    with pytest.raises(BadRequest):
        parse_wait({"wait_for_change": "true", "timeout_sec": "nan"}, 60, 300)


# -- two processes sharing one database and one Redis -------------------------------------


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with redis_replicas(tmp_path_factory.mktemp("wait-replicas"), 1) as pair:
        yield pair


def guest_read(
    server: ServerProcess, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.guest_port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=SAFETY) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.redis
def test_a_guest_waiting_on_one_replica_is_woken_by_a_write_through_the_other(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    writer, reader = replicas
    doc = sample_document(51)
    assert writer.admin("PUT", f"/v1/instances/{doc['uuid']}", doc)[0] == 201
    status, headers, body = guest_read(reader, "/latest/user-data", guest_headers(51))
    assert status == 200
    etag = headers["ETag"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(guest_read, reader, f"{WAIT}&last_etag={etag}", guest_headers(51))
        for _ in range(int(SAFETY / 0.01)):  # until the reader reports the waiter
            if b'"total":1' in reader.admin("GET", "/v1/waiters")[1]:
                break
            assert not concurrent.futures.wait([waiting], timeout=0.01).done
        else:
            pytest.fail("the waiter never registered on the reader")
        assert not waiting.done()
        new = b"#cloud-config\nwritten: elsewhere\n"
        assert writer.admin("PUT", f"/v1/instances/{doc['uuid']}/user-data", raw=new)[0] == 204
        status, headers, body = waiting.result(timeout=SAFETY)
    assert (status, body, headers["ETag"]) == (200, new, etag_of(new))
    # and the very next plain read on the reader agrees, with the same ETag
    status, headers, body = guest_read(
        reader, "/openstack/latest/user_data", {**guest_headers(51), "If-None-Match": etag}
    )
    assert (status, body, headers["ETag"]) == (200, new, etag_of(new))
