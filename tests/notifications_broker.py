"""The machine's RabbitMQ for notification tests, and a publisher that sends what Nova sends.

Each test module gets a virtual host of its own (made and removed with `rabbitmqctl`), so
the `nova` exchange and the queues of parallel sessions never meet. The publisher writes
the bytes oslo.messaging's rabbit driver writes for the `messagingv2` notification driver:
`Notifier._notify` builds the message, `amqpdriver._send` adds `_unique_id` and the
flattened `_context_*` keys, `common.serialize_msg` wraps it in the 2.0 envelope, and kombu
encodes that dict with `json.dumps` (content type application/json, utf-8, persistent,
priority 0, no headers: as captured from Nova's own notifier).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika

from tests.backends import port_open, unavailable

RABBIT_HOST, RABBIT_PORT = "127.0.0.1", 5672
RABBITMQCTL_TIMEOUT = 120


def rabbitmqctl(*args: str) -> str:
    completed = subprocess.run(
        ["rabbitmqctl", "-q", *args],
        capture_output=True,
        text=True,
        timeout=RABBITMQCTL_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {completed.stderr.strip()}")
    return completed.stdout


def require_rabbitmq() -> None:
    if not port_open(RABBIT_HOST, RABBIT_PORT):
        unavailable(f"RabbitMQ is not answering on {RABBIT_HOST}:{RABBIT_PORT}")
    if shutil.which("rabbitmqctl") is None:
        unavailable("rabbitmqctl is not installed: these tests make a virtual host of their own")


def new_vhost_name() -> str:
    return f"metadata-test-{os.getpid()}-{secrets.token_hex(3)}"


def create_vhost(name: str) -> None:
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")


def delete_vhost(name: str) -> None:
    rabbitmqctl("delete_vhost", name)


def close_connections(vhost: str) -> None:
    """Close every client connection of the vhost from the server side, as a broker restart
    or a failover would."""
    rabbitmqctl("close_all_connections", "-p", vhost, "closed by a metadata test")


def queue_depths(vhost: str) -> dict[str, tuple[int, int]]:
    """queue name -> (ready, unacknowledged) messages."""
    depths = {}
    output = rabbitmqctl(
        "list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged"
    )
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[1].isdigit():
            depths[fields[0]] = (int(fields[1]), int(fields[2]))
    return depths


def transport_url(vhost: str) -> str:
    """The URL as it stands in nova.conf."""
    return f"rabbit://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/{vhost}"


def instance_payload(instance_uuid: str, name: str = "InstanceActionPayload") -> dict[str, Any]:
    """A versioned payload as Nova's notification objects serialize it (trimmed fields)."""
    return {
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": "1.9",
        "nova_object.data": {
            "uuid": instance_uuid,
            "tenant_id": "project-a",
            "user_id": "user-a",
            "display_name": "vm-1",
            "host_name": "vm-1",
            "metadata": {"role": "web"},
            "state": "active",
        },
    }


def oslo_message(
    event_type: str,
    payload: Any,
    priority: str = "INFO",
    publisher_id: str = "nova-compute:compute-1",
) -> dict[str, Any]:
    """The inner message, keys in oslo.messaging's order, context flattened as pack_context
    does with a redacted RequestContext."""
    message: dict[str, Any] = {
        "message_id": str(uuid.uuid4()),
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": priority,
        "payload": payload,
        "timestamp": str(datetime.now(UTC).replace(tzinfo=None)),
        "_unique_id": uuid.uuid4().hex,
    }
    context = {
        "user": "user-a",
        "project_id": "project-a",
        "user_id": "user-a",
        "roles": ["member", "reader"],
        "request_id": f"req-{uuid.uuid4()}",
        "auth_token": None,
        "is_admin": False,
        "read_deleted": "no",
        "timestamp": datetime.now(UTC).replace(tzinfo=None).isoformat(),
    }
    message.update({f"_context_{key}": value for key, value in context.items()})
    return message


def envelope_body(message: dict[str, Any]) -> bytes:
    """`serialize_msg` (jsonutils.dumps of the message), then kombu's json encoding."""
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)}).encode()


class NovaPublisher:
    """Publishes on `nova` as impl_rabbit's notify_send does."""

    def __init__(self, vhost: str) -> None:
        self.vhost = vhost
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._declared: set[str] = set()

    async def __aenter__(self) -> NovaPublisher:
        self._connection = await aio_pika.connect(
            host=RABBIT_HOST, port=RABBIT_PORT, virtualhost=self.vhost
        )
        channel = await self._connection.channel()
        self._channel = channel
        self._exchange = await channel.declare_exchange(
            "nova", aio_pika.ExchangeType.TOPIC, durable=False, auto_delete=False
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def publish_body(self, body: bytes, routing_key: str) -> None:
        assert self._exchange is not None
        if routing_key not in self._declared:
            # _publish_and_creates_default_queue: the publisher's own queue, named after
            # the routing key, bound on the first publish of a connection.
            queue = await self._channel.declare_queue(routing_key, durable=False)
            await queue.bind(self._exchange, routing_key)
            self._declared.add(routing_key)
        await self._exchange.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                priority=0,
            ),
            routing_key=routing_key,
        )

    async def notify(
        self, event_type: str, instance_uuid: str, priority: str = "INFO"
    ) -> dict[str, Any]:
        message = oslo_message(event_type, instance_payload(instance_uuid), priority)
        routing_key = f"versioned_notifications.{priority.lower()}"
        await self.publish_body(envelope_body(message), routing_key)
        return message
