"""The admin API against its own OpenAPI document: schemathesis generates requests for
every operation; none may get a 5xx, and every response must match the document."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from metadata.admin.openapi import build_document
from metadata.admin.routes import build_admin_app
from metadata.config import Settings
from metadata.services import Services
from tests.conftest import ADMIN_TOKEN
from tests.documents import sample_document

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The admin app on a real socket in its own thread and loop: schemathesis calls block."""
    tmp = tmp_path_factory.mktemp("openapi")
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp}/metadata.db",
        admin_tokens={"admin": ADMIN_TOKEN},
        admin_token_file=str(Path(tmp) / "token"),
        rate_limit=None,
    )
    started = threading.Event()
    url: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def run() -> None:
        from aiohttp import web

        async with Services.open(settings) as services:
            await services.store.put_document(_document())
            runner = web.AppRunner(build_admin_app(services))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            url.append(f"http://127.0.0.1:{port}")
            started.set()
            await stop.wait()
            await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(30)
    yield url[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


def _document() -> Any:
    from metadata.document import parse_document

    doc = sample_document(1)
    return parse_document(doc, uuid=doc["uuid"], user_data_max_bytes=65536)


def test_the_served_document_is_the_built_one(admin_url: str) -> None:
    import requests

    response = requests.get(f"{admin_url}/v1/openapi.json", headers=AUTH, timeout=5)
    assert response.status_code == 200
    assert response.json() == build_document()
    assert requests.get(f"{admin_url}/v1/openapi.json", timeout=5).status_code == 401


def test_every_admin_operation_conforms_and_never_fails(admin_url: str) -> None:
    # The served document is the built one (checked above); loading it from the dict keeps
    # every operation (from_url leaves out the document's own route).
    schema = schemathesis.openapi.from_dict(build_document())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(
        len([m for m in item if m != "parameters"]) for item in build_document()["paths"].values()
    )
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def call(case: Any) -> None:
            response = case.call(base_url=admin_url, headers=AUTH, timeout=10)
            case.validate_response(response, checks=CHECKS)

        call()
