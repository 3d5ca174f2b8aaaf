"""The two trees answer an identified guest end to end (quick sanity for the fixtures)."""

from __future__ import annotations

from typing import Any

from tests.documents import guest_headers, sample_document


async def test_instance_id_is_served_to_its_guest(guest: Any, put_instance: Any) -> None:
    doc = await put_instance(sample_document(3))
    response = await guest.get("/latest/meta-data/instance-id", headers=guest_headers(3))
    assert response.status == 200
    assert await response.text() == doc["ec2_id"]


async def test_any_backend_round_trip(
    any_database_url: str, aiohttp_client: Any, settings_overrides: dict[str, Any]
) -> None:
    from metadata.config import Settings
    from metadata.document import parse_document
    from metadata.services import Services

    async with Services.open(
        Settings(database_url=any_database_url, admin_tokens={"a": "x" * 20})
    ) as services:
        doc = parse_document(sample_document(4))
        assert await services.store.put_document(doc) is True
        assert await services.store.put_document(doc) is False
        stored = await services.store.get_document(doc.core.uuid)
        assert stored.network == doc.network
        assert stored.keys == doc.keys
        assert stored.user_data == doc.user_data
        [(uuid, _generation)] = await services.store.find_instances_by_address("10.0.0.4")
        assert uuid == doc.core.uuid
