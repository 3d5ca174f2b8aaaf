"""Malformed and hostile requests: traversal, encoded separators, oversize and duplicate
headers, long paths, non-UTF-8 bytes, and every method on every path. Each gets an exact
status and never a byte of the other instance's data."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.documents import instance_address
from tests.guest_http import crawl, raw_request
from tests.security.conftest import ATTACKER, VICTIM, as_attacker, assert_no_victim_data

FORWARDED = [("X-Forwarded-For", instance_address(ATTACKER))]


async def raw(
    guest: Any,
    method: str,
    target: bytes | str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Any:
    response = await raw_request(guest, method, target, FORWARDED + (headers or []), body)
    assert_no_victim_data(response.body)
    return response


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/latest/meta-data/../meta-data/instance-id", 404),
        ("/latest/meta-data/%2e%2e/user-data", 404),
        ("/latest/meta-data/%2E%2E/%2E%2E/openstack/latest/meta_data.json", 404),
        ("/openstack/latest/..%2fuser_data", 404),
        ("/openstack/latest%2fuser_data", 404),
        ("/latest/meta-data%5cinstance-id", 404),
        ("/latest/meta-data/instance-id%00", 404),
        ("/latest/meta-data/%252e%252e/user-data", 404),
        ("/latest/meta-data/%c0%ae%c0%ae/user-data", 400),  # overlong UTF-8 dots
        ("/latest/meta-data/%ff", 400),
        ("/..", 404),
        ("/latest/./meta-data//instance-id", 200),  # `.` and `//` fall away
    ],
)
async def test_traversal_and_encoded_separators_get_exact_statuses(
    guest: Any, two_instances: Any, target: str, status: int
) -> None:
    assert (await raw(guest, "GET", target)).status == status


async def test_a_raw_non_utf8_path_is_400(guest: Any, two_instances: Any) -> None:
    assert (await raw(guest, "GET", b"/latest/meta-data/\xff\xfe")).status == 400


async def test_non_utf8_header_bytes_are_refused_without_an_error(
    guest: Any, two_instances: Any
) -> None:
    # aiohttp hands undecodable bytes over as surrogates; each header must fail cleanly.
    for name in ("X-aws-ec2-metadata-token", "X-Forwarded-For", "X-Instance-ID"):
        response = await raw_request(
            guest,
            "GET",
            "/latest/meta-data/instance-id",
            [("X-Forwarded-For", instance_address(ATTACKER)), (name, "\udcff\udcfe")]
            if name != "X-Forwarded-For"
            else [(name, "\udcff\udcfe")],
        )
        expected = {"X-aws-ec2-metadata-token": 401, "X-Forwarded-For": 400, "X-Instance-ID": 403}[
            name
        ]
        assert response.status == expected, name
        assert_no_victim_data(response.body)


@pytest.mark.parametrize(
    ("length", "status"), [(1024, 404), (1025, 414), (4000, 414), (5000, 400), (70000, 400)]
)
async def test_very_long_paths_are_refused(
    guest: Any, two_instances: Any, length: int, status: int
) -> None:
    target = "/latest/meta-data/" + "a" * (length - len("/latest/meta-data/"))
    assert (await raw(guest, "GET", target)).status == status


async def test_an_oversize_header_is_400(guest: Any, two_instances: Any) -> None:
    response = await raw(guest, "GET", "/latest/meta-data/instance-id", [("X-Junk", "a" * 5000)])
    assert response.status == 400


async def test_too_many_headers_are_refused(guest: Any, two_instances: Any) -> None:
    many = [(f"X-Junk-{i}", "a") for i in range(60)]
    assert (await raw(guest, "GET", "/latest/meta-data/instance-id", many)).status == 431
    flood = [(f"X-Junk-{i}", "a") for i in range(200)]
    assert (await raw(guest, "GET", "/latest/meta-data/instance-id", flood)).status == 400


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("X-Instance-ID", 400),
        ("X-aws-ec2-metadata-token", 400),
        ("X-aws-ec2-metadata-token-ttl-seconds", 400),
    ],
)
async def test_duplicate_headers_are_400(
    guest: Any, two_instances: Any, header: str, status: int
) -> None:
    from tests.conftest import PROXY_SECRET
    from tests.guest_http import signed_headers

    headers = list(signed_headers(two_instances[0], PROXY_SECRET).items())
    headers += [(header, "1"), (header, "2")]
    method, path = (
        ("PUT", "/latest/api/token")
        if "ttl" in header
        else ("GET", "/latest/meta-data/instance-id")
    )
    if header == "X-Instance-ID":
        headers = [h for h in headers if h[0] != "X-Instance-ID"] + [
            ("X-Instance-ID", two_instances[0]["uuid"]),
            ("X-Instance-ID", two_instances[1]["uuid"]),
        ]
    assert (await raw(guest, method, path, headers)).status == status


async def test_duplicate_forwarded_for_cannot_pick_the_victim(
    guest: Any, two_instances: Any
) -> None:
    # Two X-Forwarded-For lines are one list; the rightmost untrusted entry (the attacker,
    # added by the trusted proxy) wins over the victim's address the guest put first.
    response = await raw_request(
        guest,
        "GET",
        "/latest/meta-data/instance-id",
        [
            ("X-Forwarded-For", instance_address(VICTIM)),
            ("X-Forwarded-For", instance_address(ATTACKER)),
        ],
    )
    assert (response.status, response.body) == (200, two_instances[0]["ec2_id"].encode())


async def test_a_password_body_over_the_limits_is_refused(guest: Any, two_instances: Any) -> None:
    path = "/openstack/latest/password"
    assert (await raw(guest, "POST", path, body=b"p" * 1021)).status == 400
    # A declared length over the limit is refused before a byte of it is read.
    assert (await raw(guest, "POST", path, body=b"p" * 5000)).status == 400
    assert await chunked_post_status(guest, path, b"p" * 5000) == 413
    assert (await raw(guest, "POST", path, body=b"\xff\xfe")).status == 400
    assert (
        await raw(
            guest,
            "PUT",
            "/latest/api/token",
            [("X-aws-ec2-metadata-token-ttl-seconds", "60")],
            body=b"t" * 2048,
        )
    ).status == 413


async def chunked_post_status(guest: Any, path: str, body: bytes) -> int:
    """A body with no declared length: only the bytes read can be counted."""
    reader, writer = await asyncio.open_connection(guest.host, guest.port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"X-Forwarded-For: {instance_address(ATTACKER)}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    writer.write(head.encode() + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"]


async def all_guest_paths(guest: Any) -> list[str]:
    headers = as_attacker()
    paths = ["/", "/openstack", "/openstack/latest/password", "/nope", "/latest/nope"]
    for root in ("/latest/", "/2009-04-04/", "/openstack/latest/", "/openstack/2012-08-10/"):
        found = await crawl(guest, root, headers)
        paths += [root, *found.leaves, *found.directories]
    return sorted(set(paths))


def expected_status(method: str, path: str) -> int:
    if path in ("/nope", "/latest/nope"):
        return 404
    if method in ("GET", "HEAD"):
        return 200
    if method == "POST" and path == "/openstack/latest/password":
        return 200  # the first POST sets it; later ones are 409
    return 405


async def test_every_method_on_every_path(guest: Any, two_instances: Any) -> None:
    paths = await all_guest_paths(guest)
    assert len(paths) > 60
    posted = False
    for path in paths:
        for method in METHODS:
            response = await raw(guest, method, path, body=b"secret" if method == "POST" else b"")
            expected = expected_status(method, path)
            if expected == 200 and method == "POST":
                expected, posted = (409 if posted else 200), True
            assert response.status == expected, (method, path, response.body[:200])
            if response.status == 405:
                assert response.headers["Allow"], (method, path)
