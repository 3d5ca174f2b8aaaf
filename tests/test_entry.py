"""The guest entry point: waiting guests hold no slot of the concurrency gate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from metadata.services import Services
from tests.documents import guest_headers, instance_uuid, sample_document
from tests.test_wait_for_change import WAIT, current_etag, until


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"guest_max_concurrent": 2, "wait_max_per_instance": 8, "wait_max_total": 8}


async def test_guests_waiting_for_user_data_do_not_crowd_out_others(
    services: Services, guest: Any, admin: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(1))
    await put_instance(sample_document(2))
    etag = await current_etag(guest, 1)
    waiting = [
        asyncio.ensure_future(guest.get(f"{WAIT}&last_etag={etag}", headers=guest_headers(1)))
        for _ in range(4)
    ]
    await until(lambda: services.waiters.waiting(instance_uuid(1)) == 4)
    # four waiters and a gate of two slots: an ordinary request is still served
    response = await guest.get("/openstack/latest/meta_data.json", headers=guest_headers(2))
    assert response.status == 200
    put = await admin.put(f"/v1/instances/{instance_uuid(1)}/user-data", data=b"changed")
    assert put.status == 204
    answers = await asyncio.gather(*waiting)
    assert [(r.status, await r.read()) for r in answers] == [(200, b"changed")] * 4
