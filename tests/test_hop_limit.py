"""The IMDSv2 hop limit on loopback: the server's socket carries `token_hop_limit` as its IP
TTL (IPv6: unicast hop limit) while the token PUT's answer is sent, and its own value again
for the next answer on the same keep-alive connection. The effect on packets that cross a
router is tested in tests/test_netns.py."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest

from metadata.app import build_guest_app
from metadata.services import Services
from tests.documents import guest_headers, sample_document

TOKEN_TTL = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
LIMIT = 3


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"token_hop_limit": LIMIT}


def system_default(family: int, level: int, option: int) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as fresh:
        value: int = fresh.getsockopt(level, option)
        return value


def server_values(server: Any, level: int, option: int) -> list[int]:
    """The option on every connection the guest server holds."""
    handlers = server.runner.server.connections
    return [h.transport.get_extra_info("socket").getsockopt(level, option) for h in handlers]


async def one_connection_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, force_close=False))


@pytest.mark.parametrize(
    "host, family, level, option",
    [
        ("127.0.0.1", socket.AF_INET, socket.IPPROTO_IP, socket.IP_TTL),
        ("::1", socket.AF_INET6, socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS),
    ],
)
async def test_the_token_answer_leaves_with_the_hop_limit_and_later_answers_without(
    host: str,
    family: int,
    level: int,
    option: int,
    aiohttp_server: Any,
    services: Services,
    put_instance: Any,
) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    await put_instance(sample_document(7))
    server = await aiohttp_server(build_guest_app(services), host=host)
    default = system_default(family, level, option)
    assert default != LIMIT
    base = f"http://{'[::1]' if family == socket.AF_INET6 else host}:{server.port}"
    headers = guest_headers(7)
    async with await one_connection_session() as session:
        async with session.put(f"{base}/latest/api/token", headers=headers | TOKEN_TTL) as put:
            assert put.status == 200
            token = await put.text()
        # the answer has been sent with the limit, which stays until the next request
        assert server_values(server, level, option) == [LIMIT]
        headers["X-aws-ec2-metadata-token"] = token
        async with session.get(f"{base}/latest/meta-data/instance-id", headers=headers) as get:
            assert get.status == 200
        # the same connection (keep-alive), its own value again
        assert server_values(server, level, option) == [default]


async def test_a_refused_token_put_changes_nothing(
    aiohttp_server: Any, services: Services, put_instance: Any
) -> None:
    await put_instance(sample_document(7))
    server = await aiohttp_server(build_guest_app(services), host="127.0.0.1")
    default = system_default(socket.AF_INET, socket.IPPROTO_IP, socket.IP_TTL)
    async with await one_connection_session() as session:
        url = f"http://127.0.0.1:{server.port}/latest/api/token"
        async with session.put(url, headers=guest_headers(7)) as put:  # no TTL header: 400
            assert put.status == 400
        assert server_values(server, socket.IPPROTO_IP, socket.IP_TTL) == [default]
