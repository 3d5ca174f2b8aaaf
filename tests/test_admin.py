"""The operator API: token, documents, paging, user data, and what it must refuse."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_TOKEN
from tests.documents import instance_uuid, sample_document

Client = TestClient[Any, Any]
PutInstance = Callable[..., Any]
UNKNOWN = instance_uuid(999_999)


def url(n: int, suffix: str = "") -> str:
    return f"/v1/instances/{instance_uuid(n)}{suffix}"


# -- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"Basic {ADMIN_TOKEN}",
        f"bearer{ADMIN_TOKEN}",
        f"Bearer {ADMIN_TOKEN}x",
        "Bearer ",
        "Bearer é",
    ],
)
async def test_requests_without_the_right_bearer_token_get_401(
    admin: Client, put_instance: PutInstance, authorization: str | None
) -> None:
    await put_instance(sample_document(1))
    # The fixture client sends the right token by default: replace it (or drop it).
    headers = {"Authorization": authorization} if authorization is not None else {}
    session_headers = admin.session.headers
    saved = session_headers.pop("Authorization")
    try:
        for method, path in [
            ("GET", url(1)),
            ("GET", "/v1/instances"),
            ("DELETE", url(1)),
            ("GET", url(1, "/user-data")),
            ("PUT", url(2)),
        ]:
            response = await admin.request(method, path, headers=headers, json={})
            assert response.status == 401, (method, path)
            assert "error" in await response.json()
    finally:
        session_headers["Authorization"] = saved
    # Nothing was deleted or created by the refused requests.
    assert (await admin.get(url(1))).status == 200
    assert (await admin.get(url(2))).status == 404


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_endpoints_need_no_token(admin: Client, path: str) -> None:
    response = await admin.get(path, headers={"Authorization": "Bearer nope"})
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_admin_app_never_serves_guest_paths(admin: Client, put_instance: PutInstance) -> None:
    await put_instance(sample_document(1))
    for path in ["/latest/meta-data/instance-id", "/openstack/latest/meta_data.json", "/"]:
        response = await admin.get(path, headers={"X-Forwarded-For": "10.0.0.1"})
        assert response.status == 404, path
        assert instance_uuid(1) not in await response.text()


# -- documents ------------------------------------------------------------------------------


async def test_put_creates_201_then_replaces_200_and_returns_the_stored_document(
    admin: Client,
) -> None:
    doc = sample_document(1)
    created = await admin.put(url(1), json=doc)
    assert created.status == 201
    body = await created.json()
    assert body["hostname"] == "web-1"
    assert body["ports"][0]["fixed_ips"][0]["address"] == doc["ports"][0]["fixed_ips"][0]["address"]

    replaced = await admin.put(url(1), json=sample_document(1, hostname="web-1b", metadata={}))
    assert replaced.status == 200
    body = await replaced.json()
    assert body["hostname"] == "web-1b"
    assert body["metadata"] == {}
    # The response is what a later GET reads, not an echo of the request.
    assert body == await (await admin.get(url(1))).json()


async def test_put_without_uuid_in_body_takes_the_url_uuid(admin: Client) -> None:
    doc = sample_document(1)
    del doc["uuid"]
    response = await admin.put(url(1), json=doc)
    assert response.status == 201
    assert (await response.json())["uuid"] == instance_uuid(1)


async def test_put_with_uppercase_url_uuid_stores_the_canonical_form(admin: Client) -> None:
    response = await admin.put(f"/v1/instances/{instance_uuid(1).upper()}", json=sample_document(1))
    assert response.status == 201
    assert (await admin.get(url(1))).status == 200


async def test_delete_answers_204_then_the_instance_is_gone(
    admin: Client, put_instance: PutInstance
) -> None:
    await put_instance(sample_document(1))
    response = await admin.delete(url(1))
    assert response.status == 204
    assert (await admin.get(url(1))).status == 404
    assert (await admin.get(url(1, "/user-data"))).status == 404
    assert (await admin.delete(url(1))).status == 404


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("DELETE", ""),
        ("GET", "/user-data"),
        ("PUT", "/user-data"),
        ("DELETE", "/user-data"),
    ],
)
async def test_unknown_instance_is_404_on_every_route(
    admin: Client, method: str, suffix: str
) -> None:
    response = await admin.request(method, f"/v1/instances/{UNKNOWN}{suffix}", data=b"x")
    assert response.status == 404
    assert "error" in await response.json()


async def test_non_uuid_in_url_is_404(admin: Client) -> None:
    assert (await admin.get("/v1/instances/not-a-uuid")).status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/instances"),
        ("PATCH", url(1)),
        ("POST", url(1)),
        ("POST", url(1, "/user-data")),
        ("POST", "/healthz"),
        ("DELETE", "/v1/instances"),
    ],
)
async def test_wrong_methods_get_405(admin: Client, method: str, path: str) -> None:
    response = await admin.request(method, path, json={})
    assert response.status == 405
    assert response.headers.get("Allow")


# -- paging ---------------------------------------------------------------------------------


async def test_list_pages_through_every_instance_once(
    admin: Client, put_instance: PutInstance
) -> None:
    expected = sorted(instance_uuid(n) for n in range(1, 8))
    for n in range(1, 8):
        await put_instance(sample_document(n))
    seen: list[str] = []
    marker: str | None = None
    pages = 0
    while True:
        params = {"limit": "3"} | ({"marker": marker} if marker else {})
        response = await admin.get("/v1/instances", params=params)
        assert response.status == 200
        body = await response.json()
        assert len(body["instances"]) <= 3
        seen.extend(doc["uuid"] for doc in body["instances"])
        pages += 1
        marker = body["next_marker"]
        if marker is None:
            break
    assert seen == expected
    assert pages == 3


async def test_a_full_last_page_has_a_null_next_marker(
    admin: Client, put_instance: PutInstance
) -> None:
    for n in range(1, 5):
        await put_instance(sample_document(n))
    body = await (await admin.get("/v1/instances", params={"limit": "4"})).json()
    assert len(body["instances"]) == 4
    assert body["next_marker"] is None
    empty = await (
        await admin.get(
            "/v1/instances", params={"marker": max(doc["uuid"] for doc in body["instances"])}
        )
    ).json()
    assert empty == {"instances": [], "next_marker": None}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"limit": "1001"},
        {"limit": ""},
        {"limit": "1.5"},
        {"marker": "not-a-uuid"},
        {"marker": ""},
    ],
)
async def test_bad_limit_or_marker_is_400(admin: Client, params: dict[str, str]) -> None:
    response = await admin.get("/v1/instances", params=params)
    assert response.status == 400
    assert next(iter(params)) in (await response.json())["error"]


# -- validation -----------------------------------------------------------------------------


def _ports(**fixed_ip: Any) -> list[dict[str, Any]]:
    port = sample_document(1)["ports"][0]
    port["fixed_ips"][0].update(fixed_ip)
    return [port]


def _port(**changes: Any) -> list[dict[str, Any]]:
    port = sample_document(1)["ports"][0]
    port.update(changes)
    return [port]


BAD_DOCUMENTS: list[tuple[str, dict[str, Any], str]] = [
    ("hostname wrong type", {"hostname": 5}, "hostname"),
    ("hostname missing", {"hostname": None}, "hostname"),
    ("hostname empty", {"hostname": ""}, "hostname"),
    ("hostname newline", {"hostname": "web\nroot"}, "hostname"),
    ("hostname NUL", {"hostname": "web\x00"}, "hostname"),
    ("hostname too long", {"hostname": "h" * 256}, "hostname"),
    ("name control", {"name": "a\tb"}, "name"),
    ("project missing", {"project_id": None}, "project_id"),
    ("launch_index string", {"launch_index": "0"}, "launch_index"),
    ("launch_index bool", {"launch_index": True}, "launch_index"),
    ("launch_index negative", {"launch_index": -1}, "launch_index"),
    ("bad uuid", {"uuid": "1234"}, "uuid"),
    ("uuid of another instance", {"uuid": instance_uuid(2)}, "uuid"),
    ("unknown field", {"colour": "blue"}, "colour"),
    ("flavor not object", {"flavor": "m1.small"}, "flavor"),
    ("flavor vcpus zero", {"flavor": {"name": "x", "vcpus": 0}}, "flavor.vcpus"),
    ("ec2_id bad", {"ec2_id": "instance-1"}, "ec2_id"),
    ("metadata not object", {"metadata": ["a"]}, "metadata"),
    ("metadata value int", {"metadata": {"a": 1}}, "metadata.a"),
    ("metadata key NUL", {"metadata": {"a\x00b": "x"}}, "metadata"),
    ("keys not list", {"keys": {"name": "k"}}, "keys"),
    ("key not object", {"keys": ["ssh-rsa AAA"]}, "keys[0]"),
    ("key without data", {"keys": [{"name": "k1"}]}, "keys[0].data"),
    ("key data NUL", {"keys": [{"name": "k1", "data": "ssh-rsa A\x00"}]}, "keys[0].data"),
    ("key bad type", {"keys": [{"name": "k", "type": "gpg", "data": "x"}]}, "keys[0].type"),
    (
        "duplicate key names",
        {"keys": [{"name": "k", "data": "a"}, {"name": "k", "data": "b"}]},
        "keys",
    ),
    ("ports not list", {"ports": "eth0"}, "ports"),
    ("bad mac", {"ports": _port(mac="fa:16:3e:00:00")}, "ports[0].mac"),
    ("mac wrong type", {"ports": _port(mac=1)}, "ports[0].mac"),
    ("mtu too small", {"ports": _port(mtu=10)}, "ports[0].mtu"),
    ("port type too long", {"ports": _port(type="x" * 40)}, "ports[0].type"),
    (
        "floating ip bad",
        {"ports": _port(floating_ips=["203.0.113.300"])},
        "ports[0].floating_ips[0]",
    ),
    (
        "address outside cidr",
        {"ports": _ports(address="10.9.9.9")},
        "ports[0].fixed_ips[0].address",
    ),
    ("address not ip", {"ports": _ports(address="web")}, "ports[0].fixed_ips[0].address"),
    ("cidr missing", {"ports": _ports(cidr=None)}, "ports[0].fixed_ips[0].cidr"),
    ("dns not list", {"ports": _ports(dns="10.0.0.2")}, "ports[0].fixed_ips[0].dns"),
    (
        "routes not list",
        {"ports": _ports(routes={"cidr": "0.0.0.0/0"})},
        "ports[0].fixed_ips[0].routes",
    ),
    ("ipv4 slaac", {"ports": _ports(mode="slaac")}, "ports[0].fixed_ips[0].mode"),
    ("bad base64 user_data", {"user_data": "not base64!"}, "user_data"),
    ("user_data wrong type", {"user_data": 12}, "user_data"),
    ("vendor_data not object", {"vendor_data": [1, 2]}, "vendor_data"),
    ("security group int", {"security_groups": [1]}, "security_groups[0]"),
]


@pytest.mark.parametrize(
    ("changes", "field"),
    [pytest.param(changes, field, id=name) for name, changes, field in BAD_DOCUMENTS],
)
async def test_bad_document_is_400_naming_the_field(
    admin: Client, changes: dict[str, Any], field: str
) -> None:
    doc = sample_document(1)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    response = await admin.put(url(1), json=doc)
    assert response.status == 400, await response.text()
    message = (await response.json())["error"]
    assert message.startswith(field + ":"), message
    # Nothing was half-written.
    assert (await admin.get(url(1))).status == 404


@pytest.mark.parametrize(
    "changes",
    [
        {"keys": 0},
        {"metadata": ""},
        {"ports": False},
        {"flavor": []},
        {"vendor_data": 0},
        {"security_groups": 0},
    ],
)
async def test_falsy_values_of_the_wrong_type_are_refused(
    admin: Client, changes: dict[str, Any]
) -> None:
    response = await admin.put(url(1), json=sample_document(1, **changes))
    assert response.status == 400, await response.text()
    assert (await response.json())["error"].startswith(next(iter(changes)))


@pytest.mark.parametrize("body", [b"{", b"not json", b"\xff\xfe", b"", b"[]", b"null", b'"x"'])
async def test_body_that_is_not_a_json_object_is_400(admin: Client, body: bytes) -> None:
    response = await admin.put(url(1), data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"]
    assert (await admin.get(url(1))).status == 404


async def test_rejected_replace_leaves_the_old_document(
    admin: Client, put_instance: PutInstance
) -> None:
    await put_instance(sample_document(1))
    before = await (await admin.get(url(1))).json()
    bad = sample_document(1, hostname="new-name", metadata={"x": "y"})
    bad["ports"][0]["fixed_ips"][0]["address"] = "192.0.2.1"  # outside its cidr
    response = await admin.put(url(1), json=bad)
    assert response.status == 400
    assert await (await admin.get(url(1))).json() == before


async def test_replace_of_another_instance_address_does_not_touch_the_first(
    admin: Client, put_instance: PutInstance
) -> None:
    await put_instance(sample_document(1))
    await put_instance(sample_document(2))
    first = await (await admin.get(url(1))).json()
    await put_instance(sample_document(2, hostname="two"))
    assert await (await admin.get(url(1))).json() == first


# -- user data ------------------------------------------------------------------------------

RAW_USER_DATA = [
    b"\x00\x01\xff\xfe binary \x80\x81 not utf-8 \x00",
    gzip.compress(b"#cloud-config\npackages: [nginx]\n" * 50),
    b"",
]


@pytest.mark.parametrize("data", RAW_USER_DATA, ids=["binary", "gzip", "empty"])
async def test_user_data_put_raw_bytes_reads_back_identical(
    admin: Client, put_instance: PutInstance, data: bytes
) -> None:
    await put_instance(sample_document(1))
    response = await admin.put(url(1, "/user-data"), data=data)
    assert response.status == 204
    got = await admin.get(url(1, "/user-data"))
    assert got.status == 200
    assert await got.read() == data
    # The document view carries the same bytes, base64.
    import base64

    assert base64.b64decode((await (await admin.get(url(1))).json())["user_data"]) == data


async def test_user_data_delete_removes_it(admin: Client, put_instance: PutInstance) -> None:
    await put_instance(sample_document(1))
    assert (await admin.get(url(1, "/user-data"))).status == 200
    assert (await admin.delete(url(1, "/user-data"))).status == 204
    assert (await admin.get(url(1, "/user-data"))).status == 404
    assert (await admin.get(url(1))).status == 200


async def test_oversize_user_data_is_413_and_the_old_bytes_stay(
    admin: Client, put_instance: PutInstance, services: Any
) -> None:
    await put_instance(sample_document(1))
    limit = services.settings.user_data_max_bytes
    assert (await admin.put(url(1, "/user-data"), data=b"a" * limit)).status == 204
    response = await admin.put(url(1, "/user-data"), data=b"b" * (limit + 1))
    assert response.status == 413
    assert await (await admin.get(url(1, "/user-data"))).read() == b"a" * limit


async def test_oversize_chunked_user_data_is_413(
    admin: Client, put_instance: PutInstance, services: Any
) -> None:
    await put_instance(sample_document(1))
    limit = services.settings.user_data_max_bytes

    async def chunks() -> Any:
        for _ in range(limit // 1000 + 2):
            yield b"c" * 1000

    response = await admin.put(url(1, "/user-data"), data=chunks())
    assert response.status == 413
    assert (await admin.get(url(1, "/user-data"))).status == 200


async def test_replace_without_user_data_keeps_it_and_with_null_removes_it(
    admin: Client, put_instance: PutInstance
) -> None:
    await put_instance(sample_document(1))
    await admin.put(url(1, "/user-data"), data=b"kept")
    doc = sample_document(1, hostname="other")
    del doc["user_data"]
    await put_instance(doc)
    assert await (await admin.get(url(1, "/user-data"))).read() == b"kept"
    await put_instance(sample_document(1, user_data=None))
    assert (await admin.get(url(1, "/user-data"))).status == 404
