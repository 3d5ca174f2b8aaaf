"""Who is asking: signed headers, the source address through trusted proxies only, and
refusals (never a guess) when the answer is not certain."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from metadata.app import build_guest_app
from metadata.config import Settings
from metadata.errors import BadRequest
from metadata.guest.identify import normalise_address, sign
from metadata.services import Services
from tests.conftest import PROXY_SECRET
from tests.documents import guest_headers, instance_address, sample_document
from tests.guest_http import crawl, raw_request, signed_headers

INSTANCE_ID = "/latest/meta-data/instance-id"
A, B = 31, 32


@pytest.fixture
async def guest_with(aiohttp_client: Any, settings: Settings) -> AsyncIterator[Callable[..., Any]]:
    """A second guest app on the same database with some settings changed."""
    opened: list[Any] = []

    async def make(**overrides: Any) -> Any:
        context = Services.open(dataclasses.replace(settings, **overrides))
        services = await context.__aenter__()
        opened.append(context)
        return await aiohttp_client(build_guest_app(services))

    yield make
    for context in reversed(opened):
        await context.__aexit__(None, None, None)


async def status_and_text(guest: Any, headers: Any, path: str = INSTANCE_ID) -> tuple[int, str]:
    response = await guest.get(path, headers=headers)
    return response.status, await response.text()


async def test_validly_signed_headers_identify_the_instance(guest: Any, put_instance: Any) -> None:
    doc = await put_instance(sample_document(A))
    # The forwarded address names another instance: signed headers take precedence.
    await put_instance(sample_document(B))
    headers = {**signed_headers(doc, PROXY_SECRET), **guest_headers(B)}
    assert await status_and_text(guest, headers) == (200, doc["ec2_id"])


@pytest.mark.parametrize(
    "signature",
    ["", "0" * 64, sign("another-secret", "x"), "TRUNCATED", "é" * 64],
    ids=["empty", "zeros", "other-secret", "truncated", "non-ascii"],
)
async def test_a_wrong_signature_is_403(guest: Any, put_instance: Any, signature: str) -> None:
    doc = await put_instance(sample_document(A))
    good = signed_headers(doc, PROXY_SECRET)
    if signature == "TRUNCATED":
        signature = good["X-Instance-ID-Signature"][:-1]
    headers = [(k, v) for k, v in good.items() if k != "X-Instance-ID-Signature"]
    headers.append(("X-Instance-ID-Signature", signature))
    response = await raw_request(guest, "GET", INSTANCE_ID, headers)
    assert response.status == 403
    assert doc["ec2_id"].encode() not in response.body


async def test_a_missing_signature_is_403(guest: Any, put_instance: Any) -> None:
    doc = await put_instance(sample_document(A))
    headers = signed_headers(doc, PROXY_SECRET)
    del headers["X-Instance-ID-Signature"]
    assert (await status_and_text(guest, headers))[0] == 403


async def test_a_non_utf8_instance_id_is_refused_not_an_error(guest: Any) -> None:
    target = INSTANCE_ID.encode()
    request = [
        ("X-Instance-ID", "i-\udcff\udcfe"),
        ("X-Tenant-ID", "p"),
        ("X-Instance-ID-Signature", "0" * 64),
    ]
    response = await raw_request(guest, "GET", target, request)
    assert 400 <= response.status < 500


async def test_a_validly_signed_unknown_instance_is_404(guest: Any) -> None:
    doc = sample_document(A)  # never stored
    assert (await status_and_text(guest, signed_headers(doc, PROXY_SECRET)))[0] == 404


async def test_a_tenant_that_is_not_the_instances_project_is_404(
    guest: Any, put_instance: Any
) -> None:
    doc = await put_instance(sample_document(A))
    headers = {**signed_headers(doc, PROXY_SECRET), "X-Tenant-ID": "someone-else"}
    status, text = await status_and_text(guest, headers)
    assert status == 404 and doc["ec2_id"] not in text


async def test_a_missing_tenant_is_400(guest: Any, put_instance: Any) -> None:
    doc = await put_instance(sample_document(A))
    headers = signed_headers(doc, PROXY_SECRET)
    del headers["X-Tenant-ID"]
    status, text = await status_and_text(guest, headers)
    assert status == 400 and "X-Tenant-ID" in text


@pytest.mark.parametrize("repeated", ["X-Instance-ID", "X-Tenant-ID", "X-Instance-ID-Signature"])
async def test_repeated_identity_headers_are_400(
    guest: Any, put_instance: Any, repeated: str
) -> None:
    doc = await put_instance(sample_document(A))
    headers = list(signed_headers(doc, PROXY_SECRET).items())
    headers += [(k, v) for k, v in headers if k == repeated]
    response = await raw_request(guest, "GET", INSTANCE_ID, headers)
    assert response.status == 400
    assert repeated.encode() in response.body


async def test_without_a_secret_signed_headers_are_ignored(
    guest_with: Any, put_instance: Any
) -> None:
    a = await put_instance(sample_document(A))
    b = await put_instance(sample_document(B))
    unsigned = await guest_with(proxy_shared_secret=None)
    # Headers that would name A, sent from B's address: B is who is asking.
    headers = {**signed_headers(a, PROXY_SECRET), **guest_headers(B)}
    assert await status_and_text(unsigned, headers) == (200, b["ec2_id"])


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    guest_with: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(A))
    untrusted = await guest_with(trusted_proxies=())
    assert (await status_and_text(untrusted, guest_headers(A)))[0] == 404
    # The peer address itself is what identifies: an instance on loopback is served.
    local = sample_document(B)
    local["ports"][0]["fixed_ips"] = [{"address": "127.0.0.1", "cidr": "127.0.0.0/8"}]
    local = await put_instance(local)
    assert await status_and_text(untrusted, guest_headers(A)) == (200, local["ec2_id"])


async def test_through_trusted_proxies_the_rightmost_untrusted_address_wins(
    guest: Any, put_instance: Any
) -> None:
    a = await put_instance(sample_document(A))
    await put_instance(sample_document(B))
    forged, real = instance_address(B), instance_address(A)
    for chain in (f"{forged}, {real}", f"{forged},{real}, 127.0.0.9", f"{real}, ::1"):
        assert await status_and_text(guest, {"X-Forwarded-For": chain}) == (200, a["ec2_id"])
    # The same chain split over two headers: the later header is nearer to us.
    headers = [("X-Forwarded-For", forged), ("X-Forwarded-For", f"{real}, 127.0.0.2")]
    response = await raw_request(guest, "GET", INSTANCE_ID, headers)
    assert (response.status, response.body) == (200, a["ec2_id"].encode())


@pytest.mark.parametrize(
    "value",
    ["not-an-ip", "10.0.0.1:8080", "10.0.0.1; rm", "1.2.3.4.5", ",".join(["10.0.0.1"] * 40)],
)
async def test_a_malformed_forwarded_for_is_400(guest: Any, value: str) -> None:
    status, text = await status_and_text(guest, {"X-Forwarded-For": value})
    assert status == 400
    assert "X-Forwarded-For" in text or "not an IP address" in text


async def test_an_address_shared_by_two_instances_is_refused(guest: Any, put_instance: Any) -> None:
    a = await put_instance(sample_document(A))
    twin = sample_document(B)
    twin["ports"][0]["fixed_ips"] = a["ports"][0]["fixed_ips"]
    b = await put_instance(twin)
    for path in (INSTANCE_ID, "/openstack/latest/meta_data.json"):
        status, text = await status_and_text(guest, guest_headers(A), path)
        assert status == 403
        assert not {a["uuid"], b["uuid"], a["hostname"], b["hostname"]} & set(text.split())


async def test_an_unknown_address_is_404(guest: Any, put_instance: Any) -> None:
    await put_instance(sample_document(A))
    assert (await status_and_text(guest, {"X-Forwarded-For": "10.200.200.200"}))[0] == 404


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("::ffff:10.0.0.5", "10.0.0.5"),
        ("10.0.0.5", "10.0.0.5"),
        (" 10.0.0.5 ", "10.0.0.5"),
        ("FD00::0005", "fd00::5"),
        ("::1", "::1"),
        ("fe80::5%eth0", "fe80::5"),
    ],
)
def test_addresses_have_one_spelling(text: str, expected: str) -> None:
    assert normalise_address(text) == expected


async def test_a_guest_is_identified_by_an_ipv6_fixed_ip_of_its_port(
    guest: Any, put_instance: Any
) -> None:
    doc = sample_document(A)
    doc["ports"][0]["fixed_ips"].append({"address": "fd00:ec2:0:1::a", "cidr": "fd00:ec2:0:1::/64"})
    stored = await put_instance(doc)
    for spelling in ("fd00:ec2:0:1::a", "FD00:EC2:0:1:0:0:0:A"):
        response = await guest.get(
            "/latest/meta-data/instance-id", headers={"X-Forwarded-For": spelling}
        )
        assert (response.status, await response.text()) == (200, stored["ec2_id"])
    response = await guest.get(
        "/latest/meta-data/instance-id", headers={"X-Forwarded-For": "fd00:ec2:0:1::b"}
    )
    assert response.status == 404


def test_a_non_address_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        normalise_address("10.0.0")


async def test_a_guest_never_sees_another_instances_data(guest: Any, put_instance: Any) -> None:
    a = await put_instance(sample_document(A))
    b = await put_instance(sample_document(B, name="other-vm", hostname="other-vm"))
    secrets = [
        b["uuid"],
        b["hostname"],
        b["keys"][0]["data"],
        b["ec2_id"],
        instance_address(B),
        b["ports"][0]["mac"],
    ]
    for root in ("/latest/", "/openstack/latest/"):
        found = await crawl(guest, root, guest_headers(A))
        bodies = b"\n".join(
            [*found.leaves.values(), *("\n".join(n).encode() for n in found.directories.values())]
        )
        assert a["uuid"].encode() in bodies or a["ec2_id"].encode() in bodies
        for secret in secrets:
            assert secret.encode() not in bodies, (root, secret)
