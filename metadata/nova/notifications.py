"""Nova's versioned notifications, consumed to invalidate what the Nova source has cached.

Each process binds a queue of its own (exclusive, deleted with its connection, named after
the host and process) to Nova's `nova` topic exchange, so every replica sees every event:
consumers sharing a queue would split the events between them. Messages are acknowledged
by hand after they are handled, whatever their outcome: a message this consumer cannot use
is logged and counted, never redelivered in a loop, never fatal.

Several brokers in the transport URL (`rabbit://u:p@h1,u2:p2@h2/vhost`) are tried in turn
as oslo.messaging's rabbit driver does (its default `kombu_failover_strategy =
round-robin`): at start from the first, after a connection loss from the one after the host
that was lost, round and round every `reconnect_interval` until one answers. Each
connection declares the exchange, the queue and its bindings again. Events sent while it
was away are lost (Nova publishes at most once), so `on_resync` runs after every
(re)connect: the caller re-validates everything it cached. A broker that does not answer
at start does not stop the service: `start()` logs a warning and keeps trying in the
background. The host in use and the failovers are in the counters (/readyz, /metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.connection import make_url
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from metadata.nova.notifications_counters import NotificationCounters, Outcome
from metadata.nova.notifications_envelope import (
    MalformedNotification,
    decode_notification,
    instance_uuid,
)
from metadata.nova.notifications_events import ChangeKind, is_known, kind_of
from metadata.nova.notifications_url import BrokerAddress, parse_transport_url

log = logging.getLogger(__name__)

OnChange = Callable[[str, ChangeKind], Awaitable[None]]
OnResync = Callable[[], Awaitable[None]]

NOVA_EXCHANGE = "nova"  # nova/config.py: control_exchange
NOVA_TOPICS = ("versioned_notifications",)  # [notifications] versioned_notifications_topics
PRIORITIES = ("info", "error")  # routing key = <topic>.<priority>; `*.error` events are ERROR
_queue_numbers = itertools.count(1)


def default_queue_name() -> str:
    """`metadata-notifications.<host>.<pid>`, numbered from the second consumer of a process."""
    number = next(_queue_numbers)
    name = f"metadata-notifications.{socket.gethostname()}.{os.getpid()}"
    return name if number == 1 else f"{name}.{number}"


class NotificationConsumer:
    """Follows one Nova notification transport and reports instance changes."""

    def __init__(
        self,
        url: str,
        on_change: OnChange,
        on_resync: OnResync,
        counters: NotificationCounters,
        queue_name: str | None = None,
        *,
        exchange: str = NOVA_EXCHANGE,
        topics: Sequence[str] = NOVA_TOPICS,
        exchange_durable: bool = False,
        reconnect_interval: float = 5.0,
        connect_timeout: float = 5.0,
        prefetch: int = 64,
    ) -> None:
        """`url` is an oslo.messaging transport URL; a bad one raises InvalidSettings here.
        `exchange_durable` must match Nova's `[oslo_messaging_rabbit] amqp_durable_queues`:
        RabbitMQ refuses to declare an existing exchange with another durability."""
        self.brokers: list[BrokerAddress] = parse_transport_url(url)
        self.queue_name = queue_name or default_queue_name()
        self.routing_keys = [f"{topic}.{priority}" for topic in topics for priority in PRIORITIES]
        self.counters = counters
        self.counters.broker = str(self.brokers[0])
        self.counters.brokers = tuple(str(b) for b in self.brokers)
        self._on_change = on_change
        self._on_resync = on_resync
        self._exchange = exchange
        self._exchange_durable = exchange_durable
        self._reconnect_interval = reconnect_interval
        self._connect_timeout = connect_timeout
        self._prefetch = prefetch
        self._connection: AbstractConnection | None = None
        # Index in `brokers` of the broker in use, or last lost: failover starts after it.
        self._current = -1
        self._retrying: asyncio.Task[None] | None = None
        self._is_stopping = False
        self._unknown_types: set[str] = set()

    @property
    def is_connected(self) -> bool:
        """Whether events are arriving now (for /readyz); False while reconnecting."""
        return self.counters.connected

    async def start(self) -> None:
        """Connect and subscribe, or, with no broker answering, warn and keep trying in the
        background: returns after one attempt per broker either way."""
        self._is_stopping = False
        if self._connection is not None or self._retrying is not None:
            return
        error = await self._connect_once()
        if error is not None:
            log.warning(
                "Nova notifications: no broker answers (%s); serving without them, cached"
                " Nova data is bounded by the staleness limit; retrying every %.0f s",
                error,
                self._reconnect_interval,
            )
            self._retrying = asyncio.create_task(self._keep_trying(wait_first=True))

    async def stop(self) -> None:
        self._is_stopping = True
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
            self._retrying = None
        connection, self._connection = self._connection, None
        self.counters.connected = False
        if connection is not None:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await connection.close()

    async def _keep_trying(
        self, wait_first: bool, abandoned: AbstractConnection | None = None
    ) -> None:
        """Until subscribed: after a loss straight to the next broker (the lost one comes
        last in the round), then a round every `reconnect_interval`."""
        try:
            if abandoned is not None:
                # Its channel may be what closed: the connection must not linger.
                with contextlib.suppress(TimeoutError, *CONNECTION_EXCEPTIONS):
                    await asyncio.wait_for(abandoned.close(), self._connect_timeout)
            wait = wait_first
            while not self._is_stopping:
                if wait:
                    await asyncio.sleep(self._reconnect_interval)
                wait = True
                error = await self._connect_once()
                # Still connected: a loss while on_resync ran would have left it None.
                if self._connection is not None:
                    return
                log.debug("Nova notifications: still no broker: %s", error)
        finally:
            if self._retrying is asyncio.current_task():
                self._retrying = None

    def _rotation(self) -> list[int]:
        """The brokers' indexes in the order to try: from the one after the current."""
        count = len(self.brokers)
        return [(self._current + 1 + step) % count for step in range(count)]

    async def _connect_once(self) -> str | None:
        """One attempt per broker, in turn: None once subscribed, else the last error."""
        error = "no broker"
        for index in self._rotation():
            broker = self.brokers[index]
            self.counters.broker = str(broker)
            connection = self._new_connection(broker)
            try:
                await connection.connect(timeout=self._connect_timeout)
                channel = await self._subscribe(connection)
            except BaseException as exc:
                # Closed on every way out, cancellation included.
                with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                    await connection.close()
                if not isinstance(exc, (TimeoutError, *CONNECTION_EXCEPTIONS)):
                    raise
                error = f"{broker}: {type(exc).__name__}: {exc}{_hint(exc)}"
                # DEBUG: a broker down for an hour is retried every few seconds; the
                # WARNING at start or at the loss already names it.
                log.debug("Nova notifications: %s", error)
                continue
            if self._current >= 0 and index != self._current:
                self.counters.failovers += 1
            self._current = index
            self._connection = connection
            lost = self._lost_callback(connection)
            connection.close_callbacks.add(lost)
            channel.close_callbacks.add(lost)
            log.info("Nova notifications: consuming %s on %s", self.queue_name, broker)
            await self._connected()
            return None
        return error

    def _new_connection(self, broker: BrokerAddress) -> AbstractConnection:
        url = make_url(
            host=broker.host,
            port=broker.port,
            login=broker.login,
            password=broker.password,
            virtualhost=broker.virtual_host,
            ssl=broker.tls,
        )
        # Not aio-pika's robust connection: that one reconnects to the same host only.
        return aio_pika.Connection(url, client_properties={"connection_name": self.queue_name})

    async def _subscribe(self, connection: AbstractConnection) -> AbstractChannel:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        # The same arguments as Nova's publisher (impl_rabbit notify_send), so that whoever
        # declares it first, the other's declaration is accepted.
        exchange = await channel.declare_exchange(
            self._exchange,
            aio_pika.ExchangeType.TOPIC,
            durable=self._exchange_durable,
            auto_delete=False,
        )
        queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
        for routing_key in self.routing_keys:
            await queue.bind(exchange, routing_key)
        await queue.consume(self._on_message, no_ack=False)
        return channel

    async def _connected(self) -> None:
        self.counters.connected = True
        self.counters.connects += 1
        try:
            await self._on_resync()
        except Exception:
            log.exception("Nova notifications: on_resync failed after connecting")

    def _lost_callback(self, connection: AbstractConnection) -> Callable[..., Awaitable[None]]:
        """What runs when this connection or its channel closes (whichever comes first)."""

        async def lost(_sender: Any, exc: BaseException | None = None) -> None:
            if self._is_stopping or connection is not self._connection:
                return
            self._connection = None
            self.counters.connected = False
            self.counters.disconnects += 1
            log.warning(
                "Nova notifications: lost %s (%s); trying %s",
                self.counters.broker,
                exc,
                "the other brokers in turn" if len(self.brokers) > 1 else "it again",
            )
            if self._retrying is None:
                # Not awaited here: closing a connection from its own close callback waits
                # for this callback to finish.
                self._retrying = asyncio.create_task(
                    self._keep_trying(wait_first=False, abandoned=connection)
                )

        return lost

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            outcome = await self._handle(message.body)
        except Exception:  # never let one message stop the consumer
            log.exception("Nova notifications: a message could not be handled")
            outcome = Outcome.FAILED
        self.counters.count(outcome)
        try:
            await message.ack()
        except CONNECTION_EXCEPTIONS as exc:
            # The channel went away: the broker forgets unacknowledged deliveries of an
            # exclusive queue with it, and on_resync covers what they said.
            log.debug("Nova notifications: ack failed: %s", exc)

    async def _handle(self, body: bytes) -> Outcome:
        try:
            notification = decode_notification(body)
        except MalformedNotification as exc:
            log.warning("Nova notifications: malformed message dropped: %s", exc)
            return Outcome.MALFORMED
        event_type = notification.event_type
        if not is_known(event_type):
            if event_type not in self._unknown_types and len(self._unknown_types) < 1000:
                self._unknown_types.add(event_type)
                log.info("Nova notifications: unknown event type %r ignored", event_type[:200])
            return Outcome.UNKNOWN
        kind = kind_of(event_type)
        if kind is None:
            return Outcome.IGNORED
        try:
            uuid = instance_uuid(notification)
        except MalformedNotification as exc:
            log.warning("Nova notifications: malformed message dropped: %s", exc)
            return Outcome.MALFORMED
        try:
            await self._on_change(uuid, kind)
        except Exception:
            log.exception("Nova notifications: on_change(%s, %s) failed", uuid, kind)
            return Outcome.FAILED
        return Outcome.APPLIED


def _hint(exc: BaseException) -> str:
    if "inequivalent arg 'durable'" in str(exc):
        return " (the exchange's durability must match Nova's amqp_durable_queues)"
    return ""
