"""The operator dashboard and the instance preview behind it.

The preview is checked against the guest listener byte for byte. The page is rendered in
headless Chromium after real guest traffic, and the figures in its DOM are checked against
`GET /v1/stats/paths`. Chromium only ever talks to the admin listener on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
from html.parser import HTMLParser
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests import backends
from tests.conftest import ADMIN_TOKEN
from tests.documents import guest_headers, sample_document

CHROMIUM_TIMEOUT = 90.0  # seconds; the page needs about one poll
# Chromium runs the page's timers on virtual time and waits for its fetches: enough for the
# first refresh and the preview, never more than CHROMIUM_TIMEOUT of real time.
VIRTUAL_TIME_MS = 8000
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--no-proxy-server",
    "--mute-audio",
)


def preview_url(uuid: str, guest_path: str) -> str:
    return f"/v1/instances/{uuid}/preview{guest_path}"


async def guest_get(guest: TestClient[Any, Any], path: str, n: int = 1) -> aiohttp.ClientResponse:
    response: aiohttp.ClientResponse = await guest.get(path, headers=guest_headers(n))
    await response.read()
    return response


@pytest.mark.parametrize(
    "guest_path",
    [
        "/latest/meta-data/instance-id",
        "/latest/meta-data/",
        "/2009-04-04/user-data",
        "/openstack/latest/network_data.json",
        "/openstack/latest/vendor_data2.json",
        "/openstack/latest/user_data",
        "/openstack/latest/",
        "/openstack",
        "/",
    ],
)
async def test_preview_serves_exactly_what_the_guest_gets(
    guest: TestClient[Any, Any],
    admin: TestClient[Any, Any],
    put_instance: Any,
    guest_path: str,
) -> None:
    doc = await put_instance(sample_document(1))
    served = await guest_get(guest, guest_path)
    previewed = await admin.get(preview_url(doc["uuid"], guest_path))
    assert served.status == 200
    assert previewed.status == 200
    assert previewed.headers["X-Metadata-Status"] == "200"
    assert await previewed.read() == await served.read()
    assert previewed.headers["Content-Type"] == served.headers["Content-Type"]


async def test_preview_of_meta_data_json_differs_from_the_guest_only_in_the_random_seed(
    guest: TestClient[Any, Any], admin: TestClient[Any, Any], put_instance: Any
) -> None:
    doc = await put_instance(sample_document(1))
    path = "/openstack/2018-08-27/meta_data.json"
    served = orjson.loads(await (await guest_get(guest, path)).read())
    previewed = orjson.loads(await (await admin.get(preview_url(doc["uuid"], path))).read())
    assert served.pop("random_seed") != previewed.pop("random_seed")
    assert previewed == served
    assert previewed["hostname"] == "web-1"


async def test_preview_names_the_instance_it_is_asked_for(
    admin: TestClient[Any, Any], put_instance: Any
) -> None:
    one = await put_instance(sample_document(1))
    two = await put_instance(sample_document(2))
    path = "/latest/meta-data/hostname"
    for doc, hostname in ((one, b"web-1"), (two, b"web-2")):
        assert await (await admin.get(preview_url(doc["uuid"], path))).read() == hostname


async def test_preview_shows_the_guest_error_for_a_path_the_guest_cannot_read(
    guest: TestClient[Any, Any], admin: TestClient[Any, Any], put_instance: Any
) -> None:
    doc = await put_instance(sample_document(1, user_data=None))
    for path in ("/openstack/latest/user_data", "/latest/meta-data/no-such-leaf"):
        served = await guest_get(guest, path)
        previewed = await admin.get(preview_url(doc["uuid"], path))
        assert served.status == 404
        assert previewed.status == 200
        assert previewed.headers["X-Metadata-Status"] == "404"
        assert await previewed.read() == await served.read()


async def test_preview_counts_as_no_guest_traffic(
    guest: TestClient[Any, Any], admin: TestClient[Any, Any], put_instance: Any
) -> None:
    doc = await put_instance(sample_document(1))
    await guest_get(guest, "/latest/meta-data/instance-id")
    before = await (await admin.get("/v1/stats/paths")).json()
    for _ in range(3):
        await admin.get(preview_url(doc["uuid"], "/latest/meta-data/instance-id"))
        await admin.get(preview_url(doc["uuid"], "/openstack/latest/meta_data.json"))
    after = await (await admin.get("/v1/stats/paths")).json()
    assert after == before


async def test_preview_of_an_unknown_instance_is_not_found(admin: TestClient[Any, Any]) -> None:
    unknown = sample_document(99)["uuid"]
    response = await admin.get(preview_url(unknown, "/latest/meta-data/instance-id"))
    assert response.status == 404
    assert "X-Metadata-Status" not in response.headers
    bad = await admin.get(preview_url("not-a-uuid", "/latest/meta-data/instance-id"))
    assert bad.status == 404


async def test_preview_needs_the_admin_token(
    admin: TestClient[Any, Any], put_instance: Any
) -> None:
    doc = await put_instance(sample_document(1))
    url = admin.make_url(preview_url(doc["uuid"], "/latest/meta-data/instance-id"))
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as response:
        assert response.status == 401
        assert b"i-" not in await response.read()


async def test_the_page_is_public_self_contained_and_locked_down(
    admin: TestClient[Any, Any],
) -> None:
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(admin.make_url("/dashboard")) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    [nonce] = set(re.findall(r"nonce-([\w-]+)", policy))
    assert page.count(f'nonce="{nonce}"') == 2  # the one style and the one script
    # No external asset: nothing is loaded from anywhere but the page itself.
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=", page)
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


class DashboardDom(HTMLParser):
    """The figures the rendered page shows: table rows by (path, version), a few ids."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], dict[str, str]] = {}
        self.texts: dict[str, str] = {}
        self.body_attrs: dict[str, str] = {}
        self._row: dict[str, str] | None = None
        self._cell: str | None = None
        self._id: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body_attrs = named
        if tag == "tr" and "data-path" in named:
            self._row = self.rows.setdefault((named["data-path"], named["data-version"]), {})
        elif tag == "td" and self._row is not None:
            self._cell = named.get("class", "")
            self._row[self._cell] = ""
        if "id" in named:
            self._id = named["id"]
            self.texts.setdefault(self._id, "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "tr":
            self._row = None
        self._id = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._cell is not None:
            self._row[self._cell] += data
        if self._id is not None:
            self.texts[self._id] += data


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    backends.unavailable("headless Chromium is not installed (Debian: apt-get install chromium)")
    raise AssertionError("unreachable")


async def dump_dom(url: str) -> str:
    """The page's DOM after its scripts ran, from headless Chromium."""
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(prefix="metadata-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={VIRTUAL_TIME_MS}",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), CHROMIUM_TIMEOUT)
        except TimeoutError:
            process.kill()
            with contextlib.suppress(Exception):
                await process.wait()
            pytest.fail(f"Chromium did not finish within {CHROMIUM_TIMEOUT:g} s")
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_the_rendered_dashboard_shows_the_figures_of_the_stats_api(
    guest: TestClient[Any, Any], admin: TestClient[Any, Any], put_instance: Any
) -> None:
    chromium_binary()
    one = await put_instance(sample_document(1))
    await put_instance(sample_document(2))
    # Traffic with distinct counts per path, so that a mixed-up row could not match.
    for _ in range(4):
        await guest_get(guest, "/latest/meta-data/instance-id", 1)
    for n in (1, 2):
        await guest_get(guest, "/openstack/latest/meta_data.json", n)
    await guest_get(guest, "/openstack/2018-08-27/network_data.json", 2)
    await guest_get(guest, "/latest/meta-data/no-such-leaf", 1)
    preview_path = "/openstack/latest/network_data.json"
    expected_preview = await (await guest_get(guest, preview_path, 1)).text()
    stats = (await (await admin.get("/v1/stats/paths")).json())["paths"]

    fragment = f"token={ADMIN_TOKEN}&instance={one['uuid']}&path={preview_path}"
    dom = DashboardDom()
    dom.feed(await dump_dom(str(admin.make_url("/dashboard")) + "#" + fragment))

    assert dom.body_attrs.get("data-state") == "ready", dom.texts.get("status")
    assert len(dom.rows) == len(stats)
    for row in stats:
        shown = dom.rows[row["path"], row["version"]]
        for field in ("hits", "cache_hits", "db_statements", "errors"):
            assert shown[field] == str(row[field]), (row["path"], field)
    assert dom.rows["/{version}/meta-data/instance-id", "latest"]["hits"] == "4"
    assert dom.texts["total-hits"] == str(sum(row["hits"] for row in stats))
    # View as instance: the preview pane holds exactly the guest's answer.
    assert dom.body_attrs.get("data-preview") == "done"
    assert dom.texts["preview-body"] == expected_preview
    assert dom.texts["preview-meta"].startswith("guest would get 200")
