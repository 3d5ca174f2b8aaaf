"""Dynamic vendor data against real HTTP services on loopback: one that answers, one too
slow, one that fails with 500, one that answers something that is not JSON, one that
redirects. vendor_data2.json carries the good one's answer only, and the guest never fails.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from metadata import codec
from metadata.config import load_settings
from metadata.document import parse_document
from metadata.errors import InvalidSettings
from metadata.providers.dynamic_vendor_data import NovaContext, request_body
from metadata.records import DynamicVendorData, MetadataItems, Slice, UserData, VendorData
from metadata.services import Services
from tests.documents import guest_headers, sample_document

VENDOR_DATA2 = "/openstack/latest/vendor_data2.json"
SLOW_SECONDS = 30.0  # far beyond the timeout below; the server is closed long before


class VendorServices:
    """The external services, recording what each was sent."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.content_types: list[str] = []
        self.base = ""  # the server's URL, once started
        self.app = web.Application()
        for name in ("good", "slow", "fails", "not-json", "redirects"):
            self.app.router.add_post(f"/{name}", getattr(self, name.replace("-", "_")))

    async def _record(self, name: str, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(await request.read())
        self.received[name].append(body)
        self.content_types.append(request.headers.get("Content-Type", ""))
        return body

    async def good(self, request: web.Request) -> web.Response:
        body = await self._record("good", request)
        answer = {"greeting": "hello", "for": body["hostname"], "n": len(self.received["good"])}
        return web.json_response(answer)

    async def slow(self, request: web.Request) -> web.Response:
        await self._record("slow", request)
        await asyncio.sleep(SLOW_SECONDS)
        return web.json_response({"late": True})

    async def fails(self, request: web.Request) -> web.Response:
        await self._record("fails", request)
        return web.json_response({"error": "boom"}, status=500)

    async def not_json(self, request: web.Request) -> web.Response:
        await self._record("not-json", request)
        return web.Response(text="{this is not json", content_type="application/json")

    async def redirects(self, request: web.Request) -> web.Response:
        await self._record("redirects", request)
        raise web.HTTPTemporaryRedirect("/good")


@pytest.fixture
async def vendor() -> AsyncIterator[VendorServices]:
    services = VendorServices()
    server = TestServer(services.app, host="127.0.0.1")
    await server.start_server()
    services.base = str(server.make_url("")).rstrip("/")
    yield services
    await server.close()


@pytest.fixture
def settings_overrides(vendor: VendorServices) -> dict[str, Any]:
    targets = {
        name: f"{vendor.base}/{name}" for name in ("good", "slow", "fails", "not-json", "redirects")
    }
    # The default timeout (2 s): shorter ones fail the good service too on a loaded machine.
    return {"vendor_data_targets": targets, "vendor_data": {"region": "r1"}}


async def read_vendor_data2(guest: TestClient[Any, Any], n: int = 1) -> dict[str, Any]:
    response = await guest.get(VENDOR_DATA2, headers=guest_headers(n))
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    answer: dict[str, Any] = orjson.loads(await response.read())
    return answer


async def test_vendor_data2_carries_the_answering_service_and_leaves_failing_ones_out(
    guest: TestClient[Any, Any], put_instance: Any, vendor: VendorServices
) -> None:
    await put_instance(sample_document(1))
    answer = await read_vendor_data2(guest)
    assert list(answer) == ["static", "good"]
    assert answer["static"] == {"region": "r1", "cloud": "test"}
    assert answer["good"] == {"greeting": "hello", "for": "web-1", "n": 1}
    # Each failing service was asked, and is absent rather than an empty placeholder.
    for name in ("slow", "fails", "not-json", "redirects"):
        assert len(vendor.received[name]) == 1, name


async def test_services_are_posted_the_instance_context_as_nova_does(
    guest: TestClient[Any, Any], put_instance: Any, vendor: VendorServices
) -> None:
    doc = sample_document(1)
    await put_instance(doc)
    await read_vendor_data2(guest)
    [posted] = vendor.received["good"]
    assert posted["instance-id"] == doc["uuid"]
    assert posted["project-id"] == doc["project_id"]
    assert posted["image-id"] == doc["image_id"]
    assert posted["hostname"] == "web-1"
    assert posted["metadata"] == {"role": "web", "n": "1"}
    assert base64.b64decode(posted["user-data"]) == base64.b64decode(doc["user_data"])
    assert posted["boot-roles"] == ""
    assert set(posted) == {
        "project-id",
        "instance-id",
        "image-id",
        "user-data",
        "hostname",
        "metadata",
        "boot-roles",
    }
    assert set(vendor.content_types) == {"application/json"}


async def test_a_redirect_is_not_followed(
    guest: TestClient[Any, Any], put_instance: Any, vendor: VendorServices
) -> None:
    await put_instance(sample_document(1))
    answer = await read_vendor_data2(guest)
    assert "redirects" not in answer
    # The good service was POSTed by its own target only, not through the redirect.
    assert len(vendor.received["good"]) == 1


async def test_the_answer_is_cached_until_the_instance_is_written(
    guest: TestClient[Any, Any], put_instance: Any, vendor: VendorServices
) -> None:
    await put_instance(sample_document(1))
    first = await read_vendor_data2(guest)
    second = await read_vendor_data2(guest)
    assert first == second
    assert len(vendor.received["good"]) == 1

    await put_instance(sample_document(1, metadata={"role": "db"}))
    third = await read_vendor_data2(guest)
    assert len(vendor.received["good"]) == 2
    assert vendor.received["good"][1]["metadata"] == {"role": "db"}
    assert third["good"]["n"] == 2


async def test_each_instance_gets_its_own_answer(
    guest: TestClient[Any, Any], put_instance: Any, vendor: VendorServices
) -> None:
    await put_instance(sample_document(1))
    await put_instance(sample_document(2))
    one = await read_vendor_data2(guest, 1)
    two = await read_vendor_data2(guest, 2)
    assert (one["good"]["for"], two["good"]["for"]) == ("web-1", "web-2")


async def test_vendor_data_json_asks_no_service(
    guest: TestClient[Any, Any], put_instance: Any, vendor: VendorServices
) -> None:
    await put_instance(sample_document(1))
    response = await guest.get("/openstack/latest/vendor_data.json", headers=guest_headers(1))
    assert orjson.loads(await response.read()) == {"region": "r1", "cloud": "test"}
    assert not vendor.received


async def test_outcomes_are_counted_per_target_in_metrics(
    guest: TestClient[Any, Any],
    admin: TestClient[Any, Any],
    put_instance: Any,
    vendor: VendorServices,
) -> None:
    await put_instance(sample_document(1))
    await read_vendor_data2(guest)
    text = await (await admin.get("/metrics")).text()

    def count(target: str, outcome: str) -> float:
        prefix = f'metadata_vendor_data_requests_total{{outcome="{outcome}",target="{target}"}} '
        [line] = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(line[len(prefix) :])

    assert count("good", "ok") == 1
    assert count("slow", "timeout") == 1
    assert count("fails", "error") == 1
    assert count("redirects", "error") == 1
    assert count("not-json", "bad_json") == 1
    assert count("good", "timeout") == 0
    assert count("slow", "ok") == 0


async def test_concurrent_misses_of_one_instance_share_one_round_of_posts(
    services: Services, put_instance: Any, vendor: VendorServices
) -> None:
    await put_instance(sample_document(1))
    uuid = sample_document(1)["uuid"]
    provider = services.loader._providers[Slice.DYNAMIC_VENDOR_DATA]
    inputs, _ = await services.loader.fetch(uuid, provider.requires, None)
    results = await asyncio.gather(*(provider.derive(uuid, inputs) for _ in range(5)))
    assert len(vendor.received["good"]) == 1
    assert all(result == results[0] for result in results)
    assert list(results[0].answers) == ["good"]


def test_the_slice_survives_the_shared_cache_codec() -> None:
    value = DynamicVendorData({"good": {"a": [1, 2]}, "other": "text"})
    decoded = codec.decode(
        Slice.DYNAMIC_VENDOR_DATA, codec.encode(Slice.DYNAMIC_VENDOR_DATA, value)
    )
    assert decoded == value
    assert list(decoded.answers) == ["good", "other"]


def test_nova_boot_roles_survive_the_shared_cache_codec() -> None:
    value = VendorData({"a": 1}, boot_roles="member,reader")
    assert codec.decode(Slice.VENDOR_DATA, codec.encode(Slice.VENDOR_DATA, value)) == value
    # cached before the field existed: the default
    assert codec.decode(Slice.VENDOR_DATA, b'{"data": {}}') == VendorData({})


def test_nova_mode_posts_the_boot_roles_and_the_hostname_column() -> None:
    core = parse_document(sample_document(1, hostname="web-1.cloud.test")).core
    inputs = {
        Slice.CORE: core,
        Slice.METADATA: MetadataItems({}),
        Slice.USER_DATA: UserData(None),
        Slice.VENDOR_DATA: VendorData({}, boot_roles="member,reader"),
    }
    body = orjson.loads(request_body(inputs, NovaContext("cloud.test")))
    assert (body["hostname"], body["boot-roles"]) == ("web-1", "member,reader")
    # Only the domain Nova appended comes off: a column that itself ends so keeps it once.
    twice = dataclasses.replace(core, hostname="a.cloud.test.cloud.test")
    body = orjson.loads(request_body({**inputs, Slice.CORE: twice}, NovaContext("cloud.test")))
    assert body["hostname"] == "a.cloud.test"
    assert orjson.loads(request_body(inputs))["hostname"] == "web-1.cloud.test"


def test_targets_are_read_from_the_environment_in_order() -> None:
    settings = load_settings(
        environ={
            "METADATA_VENDOR_DATA_TARGETS": "b=http://127.0.0.1:1/x, a=https://vendor.example/",
            "METADATA_VENDOR_DATA_TIMEOUT": "1.5",
        }
    )
    assert list(settings.vendor_data_targets.items()) == [
        ("b", "http://127.0.0.1:1/x"),
        ("a", "https://vendor.example/"),
    ]
    assert settings.vendor_data_timeout == 1.5


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("a=ftp://vendor.example/", "http:// or https://"),
        ("a=http://", "http:// or https://"),
        ("static=http://vendor.example/", "reserved"),
        ("a=http://one.example/,a=http://two.example/", "given twice"),
        ("no name=http://vendor.example/", "name=url"),
    ],
)
def test_bad_targets_are_refused(value: str, complaint: str) -> None:
    with pytest.raises(InvalidSettings, match=complaint):
        load_settings(environ={"METADATA_VENDOR_DATA_TARGETS": value})


def test_a_url_password_is_masked_when_settings_are_shown() -> None:
    settings = load_settings(
        environ={
            "METADATA_VENDOR_DATA_TARGETS": "a=https://user:hunter2@vendor.example/",
        }
    )
    assert settings.masked()["vendor_data_targets"] == {"a": "https://user:***@vendor.example/"}


class TestWithoutTargets:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"vendor_data": {"region": "r1"}}

    async def test_vendor_data2_is_the_static_part_alone(
        self,
        guest: TestClient[Any, Any],
        admin: TestClient[Any, Any],
        put_instance: Any,
        services: Services,
    ) -> None:
        await put_instance(sample_document(1))
        assert await read_vendor_data2(guest) == {"static": {"region": "r1", "cloud": "test"}}
        # Nothing to ask: the slice requires no other slice and nothing is counted.
        assert not services.loader._providers[Slice.DYNAMIC_VENDOR_DATA].requires
        metrics = await (await admin.get("/metrics")).text()
        assert "metadata_vendor_data_requests" not in metrics
