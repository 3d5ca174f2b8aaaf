"""The Nova notification consumer against the machine's real RabbitMQ, fed the bytes
oslo.messaging sends: callbacks, acknowledgements, reconnects, replicas, broker loss."""

from __future__ import annotations

import asyncio
import itertools
import logging
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from metadata.nova.notifications import NotificationConsumer
from metadata.nova.notifications_counters import NotificationCounters
from metadata.nova.notifications_events import ChangeKind
from tests import notifications_broker as broker
from tests.notifications_broker import NovaPublisher

WAIT = 30.0  # a generous bound for a test that went wrong, never a timing assertion


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    broker.require_rabbitmq()
    name = broker.new_vhost_name()
    broker.create_vhost(name)
    yield name
    broker.delete_vhost(name)


@dataclass
class Recorder:
    """What the consumer reported, with a way to wait for it."""

    changes: asyncio.Queue[tuple[str, ChangeKind, float]] = field(default_factory=asyncio.Queue)
    resyncs: int = 0
    resynced: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_change(self, instance_uuid: str, kind: ChangeKind) -> None:
        await self.changes.put((instance_uuid, kind, time.perf_counter()))

    async def on_resync(self) -> None:
        self.resyncs += 1
        self.resynced.set()

    async def next_change(self) -> tuple[str, ChangeKind, float]:
        return await asyncio.wait_for(self.changes.get(), WAIT)

    async def wait_resyncs(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while self.resyncs < count:
                self.resynced.clear()
                await self.resynced.wait()


async def received(counters: NotificationCounters, count: int) -> None:
    """Until the consumer has handled `count` messages (they are handled concurrently, so
    the last one reported is not always the last one finished)."""
    async with asyncio.timeout(WAIT):
        for _ in itertools.count():
            if counters.received >= count:
                return
            await asyncio.sleep(0.05)


@pytest.fixture
async def consumer(vhost: str) -> AsyncIterator[tuple[NotificationConsumer, Recorder]]:
    recorder = Recorder()
    consumer = NotificationConsumer(
        broker.transport_url(vhost),
        recorder.on_change,
        recorder.on_resync,
        NotificationCounters(),
        reconnect_interval=0.5,
    )
    await consumer.start()
    yield consumer, recorder
    await consumer.stop()


async def test_an_announced_change_reaches_on_change_with_its_uuid_and_kind(
    vhost: str, consumer: tuple[NotificationConsumer, Recorder]
) -> None:
    notifications, recorder = consumer
    assert notifications.is_connected and recorder.resyncs == 1
    cases = [
        ("instance.update", ChangeKind.CHANGED, "INFO"),
        ("instance.rebuild.end", ChangeKind.REBUILT, "INFO"),
        ("instance.rebuild_scheduled", ChangeKind.REBUILT, "INFO"),
        ("instance.interface_attach.end", ChangeKind.CHANGED, "INFO"),
        ("instance.volume_attach.error", ChangeKind.CHANGED, "ERROR"),
        ("instance.delete.end", ChangeKind.DELETED, "INFO"),
    ]
    delays = []
    async with NovaPublisher(vhost) as nova:
        for event_type, kind, priority in cases:
            instance = str(uuid.uuid4())
            sent = time.perf_counter()
            await nova.notify(event_type, instance, priority)
            assert (await recorder.next_change())[:2] == (instance, kind)
            delays.append(time.perf_counter() - sent)
    assert notifications.counters.applied == len(cases)
    assert notifications.counters.last_message_at is not None
    print(
        f"\npublish -> on_change: median {statistics.median(delays) * 1000:.1f} ms,"
        f" max {max(delays) * 1000:.1f} ms over {len(delays)} events"
    )


async def test_events_that_change_nothing_a_guest_sees_are_counted_not_reported(
    vhost: str, consumer: tuple[NotificationConsumer, Recorder]
) -> None:
    notifications, recorder = consumer
    instance = str(uuid.uuid4())
    async with NovaPublisher(vhost) as nova:
        await nova.notify("instance.power_off.end", instance)
        await nova.notify("instance.rebuild.start", instance)
        await nova.notify("instance.create.start", instance)
        await nova.notify("keypair.create.end", instance)
        await nova.notify("instance.create.end", instance)
    assert (await recorder.next_change())[:2] == (instance, ChangeKind.REBUILT)
    assert (await recorder.next_change())[:2] == (instance, ChangeKind.CHANGED)
    assert notifications.counters.ignored == 3
    assert notifications.counters.applied == 2


async def test_malformed_and_unknown_messages_are_counted_and_acknowledged(
    vhost: str, consumer: tuple[NotificationConsumer, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    notifications, recorder = consumer
    good = str(uuid.uuid4())
    bodies = [
        b"not json",
        b"[1, 2]",
        b'{"oslo.version": "3.0", "oslo.message": "{}"}',
        b'{"oslo.version": "2.0", "oslo.message": "{not json"}',
        b'{"oslo.version": "2.0", "oslo.message": 7}',
        broker.envelope_body(broker.oslo_message("instance.update", {"no": "nova_object"})),
        broker.envelope_body(
            broker.oslo_message("instance.update", broker.instance_payload("not-a-uuid"))
        ),
        broker.envelope_body({"publisher_id": "x"}),  # no event_type
    ]
    caplog.set_level(logging.INFO, "metadata.nova.notifications")
    async with NovaPublisher(vhost) as nova:
        for body in bodies:
            await nova.publish_body(body, "versioned_notifications.info")
        await nova.notify("instance.frobnicate.end", good)  # unknown to this consumer
        await nova.notify("instance.update", good)
    assert (await recorder.next_change())[:2] == (good, ChangeKind.CHANGED)
    await received(notifications.counters, len(bodies) + 2)
    counters = notifications.counters
    assert counters.outcomes() == {
        "applied": 1,
        "ignored": 0,
        "unknown": 1,
        "malformed": len(bodies),
        "failed": 0,
    }
    assert notifications.is_connected
    assert "instance.frobnicate.end" in caplog.text and "malformed" in caplog.text
    depths = await asyncio.to_thread(broker.queue_depths, vhost)
    assert depths[notifications.queue_name] == (0, 0)


async def test_a_failing_callback_is_counted_and_the_consumer_goes_on(vhost: str) -> None:
    seen: list[str] = []

    async def on_change(instance_uuid: str, kind: ChangeKind) -> None:
        seen.append(instance_uuid)
        if len(seen) == 1:
            raise RuntimeError("the cache is down")

    async def on_resync() -> None:
        pass

    consumer = NotificationConsumer(
        broker.transport_url(vhost), on_change, on_resync, NotificationCounters()
    )
    await consumer.start()
    try:
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        async with NovaPublisher(vhost) as nova:
            await nova.notify("instance.update", first)
            await nova.notify("instance.update", second)
        await received(consumer.counters, 2)
        assert sorted(seen) == sorted([first, second])
        assert (consumer.counters.failed, consumer.counters.applied) == (1, 1)
    finally:
        await consumer.stop()


async def test_every_replica_sees_every_event(vhost: str) -> None:
    replicas = [Recorder(), Recorder()]
    consumers = [
        NotificationConsumer(
            broker.transport_url(vhost), r.on_change, r.on_resync, NotificationCounters()
        )
        for r in replicas
    ]
    assert consumers[0].queue_name != consumers[1].queue_name
    for consumer in consumers:
        await consumer.start()
    try:
        instance = str(uuid.uuid4())
        async with NovaPublisher(vhost) as nova:
            await nova.notify("instance.resize_finish.end", instance)
        for recorder in replicas:
            assert (await recorder.next_change())[:2] == (instance, ChangeKind.CHANGED)
    finally:
        for consumer in consumers:
            await consumer.stop()


async def test_a_connection_closed_by_the_broker_reconnects_and_resyncs(
    vhost: str, consumer: tuple[NotificationConsumer, Recorder]
) -> None:
    notifications, recorder = consumer
    await asyncio.to_thread(broker.close_connections, vhost)
    await recorder.wait_resyncs(2)
    assert notifications.is_connected
    assert notifications.counters.connects == 2
    instance = str(uuid.uuid4())
    async with NovaPublisher(vhost) as nova:
        await nova.notify("instance.unshelve.end", instance)
    assert (await recorder.next_change())[:2] == (instance, ChangeKind.CHANGED)


async def test_a_broker_down_at_start_is_retried_in_the_background(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker.require_rabbitmq()
    later = broker.new_vhost_name()  # not there yet: the broker refuses the connection
    recorder = Recorder()
    consumer = NotificationConsumer(
        broker.transport_url(later),
        recorder.on_change,
        recorder.on_resync,
        NotificationCounters(),
        reconnect_interval=0.5,
    )
    caplog.set_level(logging.WARNING, "metadata.nova.notifications")
    await consumer.start()
    try:
        assert not consumer.is_connected and recorder.resyncs == 0
        assert "no broker answers" in caplog.text and later in caplog.text
        await asyncio.to_thread(broker.create_vhost, later)
        await recorder.wait_resyncs(1)
        assert consumer.is_connected
        instance = str(uuid.uuid4())
        async with NovaPublisher(later) as nova:
            await nova.notify("instance.live_migration_post.end", instance)
        assert (await recorder.next_change())[:2] == (instance, ChangeKind.CHANGED)
    finally:
        await consumer.stop()
        await asyncio.to_thread(broker.delete_vhost, later)


async def test_the_first_broker_that_answers_is_used(vhost: str) -> None:
    recorder = Recorder()
    url = f"rabbit://guest:guest@127.0.0.1:1,guest:guest@127.0.0.1:{broker.RABBIT_PORT}/{vhost}"
    consumer = NotificationConsumer(
        url, recorder.on_change, recorder.on_resync, NotificationCounters()
    )
    await consumer.start()
    try:
        assert consumer.is_connected
        assert consumer.counters.broker == f"amqp://guest@127.0.0.1:5672/{vhost}"
    finally:
        await consumer.stop()
    assert not consumer.is_connected


async def test_a_durable_nova_exchange_needs_exchange_durable(
    vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nova with amqp_durable_queues=True declares its exchange durable; declaring it
    otherwise is refused by the broker, and the warning says what to set."""
    import aio_pika

    name = f"nova-durable-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(
        host=broker.RABBIT_HOST, port=broker.RABBIT_PORT, virtualhost=vhost
    )
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        recorder = Recorder()
        url = broker.transport_url(vhost)
        caplog.set_level(logging.WARNING, "metadata.nova.notifications")
        mismatched = NotificationConsumer(
            url, recorder.on_change, recorder.on_resync, NotificationCounters(), exchange=name
        )
        await mismatched.start()
        await mismatched.stop()
        assert not mismatched.is_connected and recorder.resyncs == 0
        assert "amqp_durable_queues" in caplog.text
        matched = NotificationConsumer(
            url,
            recorder.on_change,
            recorder.on_resync,
            NotificationCounters(),
            exchange=name,
            exchange_durable=True,
        )
        await matched.start()
        try:
            assert matched.is_connected and recorder.resyncs == 1
        finally:
            await matched.stop()
    finally:
        await exchange.delete()
        await connection.close()


async def test_publish_to_callback_delay(
    vhost: str, consumer: tuple[NotificationConsumer, Recorder]
) -> None:
    """Not a timing assertion: prints the delay between Nova's publish and on_change."""
    _, recorder = consumer
    delays = []
    async with NovaPublisher(vhost) as nova:
        for _ in range(50):
            instance = str(uuid.uuid4())
            sent = time.perf_counter()
            await nova.notify("instance.update", instance)
            got, _kind, at = await recorder.next_change()
            assert got == instance
            delays.append(at - sent)
    delays.sort()
    print(
        f"\npublish -> on_change over {len(delays)} events: p50 {delays[24] * 1000:.1f} ms,"
        f" max {delays[-1] * 1000:.1f} ms"
    )
