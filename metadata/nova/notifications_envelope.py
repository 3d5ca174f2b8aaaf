"""Unwrapping what oslo.messaging puts on the wire for a notification.

With the `messagingv2` driver the AMQP body is the envelope of
`oslo_messaging/_drivers/common.py serialize_msg`: `{"oslo.version": "2.0", "oslo.message":
"<JSON text>"}`, whose inner object has `event_type`, `publisher_id`, `priority`,
`timestamp`, `payload` and the sender's `_context_*` keys. Nova's versioned payload is a
nova_object primitive: the instance uuid is `payload["nova_object.data"]["uuid"]`. The older
`messaging` driver sends the inner object bare, and is accepted too, as oslo.messaging's own
`deserialize_msg` accepts it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

VERSION_KEY, MESSAGE_KEY = "oslo.version", "oslo.message"
SUPPORTED_MAJOR = 2  # oslo's version_is_compatible("2.0", …): same major, minor 0


class MalformedNotification(ValueError):
    """A message that is not a notification this consumer can read; the text says why."""


@dataclass(frozen=True, slots=True)
class Notification:
    event_type: str
    publisher_id: str | None
    payload: Any


def decode_notification(body: bytes) -> Notification:
    """The notification in one AMQP message body."""
    message = _unwrap(_json_object(body, "the message body"))
    event_type = message.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedNotification("no event_type")
    publisher = message.get("publisher_id")
    return Notification(
        event_type=event_type,
        publisher_id=publisher if isinstance(publisher, str) else None,
        payload=message.get("payload"),
    )


def instance_uuid(notification: Notification) -> str:
    """The uuid of the instance a versioned `instance.*` notification is about."""
    payload = notification.payload
    data = payload.get("nova_object.data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise MalformedNotification(f"{notification.event_type}: payload is not a nova_object")
    value = data.get("uuid")
    if not isinstance(value, str):
        raise MalformedNotification(f"{notification.event_type}: payload has no instance uuid")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise MalformedNotification(
            f"{notification.event_type}: instance uuid {value[:64]!r} is not a UUID"
        ) from None


def _unwrap(message: dict[str, Any]) -> dict[str, Any]:
    if VERSION_KEY not in message:
        return message  # the v1 `messaging` driver: no envelope
    version = message[VERSION_KEY]
    if not isinstance(version, str) or not _is_compatible(version):
        raise MalformedNotification(f"unsupported envelope version {str(version)[:16]!r}")
    inner = message.get(MESSAGE_KEY)
    if not isinstance(inner, str):
        raise MalformedNotification(f"envelope without a {MESSAGE_KEY} string")
    return _json_object(inner, MESSAGE_KEY)


def _is_compatible(version: str) -> bool:
    major, _, minor = version.partition(".")
    return major == str(SUPPORTED_MAJOR) and minor.split(".")[0] in ("", "0")


def _json_object(text: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise MalformedNotification(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedNotification(f"{what} is not a JSON object")
    return value
