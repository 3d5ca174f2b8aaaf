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
from pathlib import Path

import pytest

from metadata.nova.notifications import NotificationConsumer
from metadata.nova.notifications_counters import NotificationCounters
from metadata.nova.notifications_events import ChangeKind
from tests import notifications_broker as broker
from tests.backends import unavailable
from tests.notifications_broker import NovaPublisher
from tests.tcp_proxy import TcpProxy

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
        await self.changes.put((instance_uuid, kind, time.time()))

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
            sent = time.time()
            await nova.notify(event_type, instance, priority)
            assert (await recorder.next_change())[:2] == (instance, kind)
            delays.append(time.time() - sent)
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
    assert (notifications.counters.connects, notifications.counters.disconnects) == (2, 1)
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


async def test_a_lost_broker_fails_over_to_the_next_host_of_the_url(
    vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Three hosts: one refusing, one that goes away mid-run (a proxy to the real broker,
    killed), and the broker itself. Tried in turn at start, then round-robin after a loss,
    as oslo.messaging's rabbit driver does; every (re)connect resyncs."""
    caplog.set_level(logging.INFO, "metadata.nova.notifications")
    recorder = Recorder()
    async with TcpProxy(broker.RABBIT_HOST, broker.RABBIT_PORT) as proxy:
        ports = (1, proxy.port, broker.RABBIT_PORT)
        hosts = ",".join(f"guest:guest@127.0.0.1:{port}" for port in ports)
        consumer = NotificationConsumer(
            f"rabbit://{hosts}/{vhost}",
            recorder.on_change,
            recorder.on_resync,
            NotificationCounters(),
            reconnect_interval=0.5,
        )
        names = [f"amqp://guest@127.0.0.1:{port}/{vhost}" for port in ports]
        await consumer.start()
        try:
            counters = consumer.counters
            assert counters.brokers == tuple(names)
            assert (counters.broker, counters.failovers, recorder.resyncs) == (names[1], 0, 1)
            assert f"consuming {consumer.queue_name} on {names[1]}" in caplog.text
            await proxy.kill()  # the second host goes away
            await recorder.wait_resyncs(2)
            assert consumer.is_connected
            assert (counters.broker, counters.failovers, counters.disconnects) == (names[2], 1, 1)
            assert f"lost {names[1]}" in caplog.text
            instance = str(uuid.uuid4())
            async with NovaPublisher(vhost) as nova:
                await nova.notify("instance.interface_detach.end", instance)
            assert (await recorder.next_change())[:2] == (instance, ChangeKind.CHANGED)
            # Closed from the broker's side now: the others refuse, so round the URL and
            # back to the same host (not a failover), resynced again.
            await asyncio.to_thread(broker.close_connections, vhost)
            await recorder.wait_resyncs(3)
            assert (counters.broker, counters.failovers, counters.connects) == (names[2], 1, 3)
        finally:
            await consumer.stop()


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
            sent = time.time()
            await nova.notify("instance.update", instance)
            got, _kind, at = await recorder.next_change()
            assert got == instance
            delays.append(at - sent)
    delays.sort()
    print(
        f"\npublish -> on_change over {len(delays)} events: p50 {delays[24] * 1000:.1f} ms,"
        f" max {delays[-1] * 1000:.1f} ms"
    )


EMITTER = Path(__file__).parent / "nova_side" / "emit_notifications.py"


def nova_python() -> Path:
    from loadtests.nova_peer.venv import NovaVenvError, ensure_nova_venv, venv_python

    try:
        return venv_python(ensure_nova_venv())
    except NovaVenvError as exc:
        unavailable(f"no Nova {exc}")
        raise


async def test_notifications_from_novas_own_code_reach_the_consumer(
    vhost: str, consumer: tuple[NotificationConsumer, Recorder]
) -> None:
    """Nova 34.0.0's notifier (nova.rpc, nova.notifications, nova.compute.utils, through
    oslo.messaging's messagingv2 driver) publishes; the consumer reports each change."""
    notifications, recorder = consumer
    python = await asyncio.to_thread(nova_python)
    instance = str(uuid.uuid4())
    events = ["update", "rebuild", "shelve", "interface_attach", "delete"]
    process = await asyncio.create_subprocess_exec(
        str(python),
        "-W",
        "ignore",
        str(EMITTER),
        broker.transport_url(vhost),
        instance,
        *events,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    emitted = [line.split("\t") for line in out.decode().splitlines()]
    assert [event_type for event_type, _ in emitted] == [
        "instance.update",
        "instance.rebuild.end",
        "instance.shelve.end",
        "instance.interface_attach.end",
        "instance.delete.start",
        "instance.delete.end",
    ]
    expected = [
        ChangeKind.CHANGED,
        ChangeKind.REBUILT,
        ChangeKind.CHANGED,
        ChangeKind.CHANGED,
        ChangeKind.DELETED,
    ]
    reported = [await recorder.next_change() for _ in expected]
    assert [(got, kind) for got, kind, _ in reported] == [(instance, k) for k in expected]
    await received(notifications.counters, len(emitted))
    assert notifications.counters.ignored == 1  # instance.delete.start
    assert notifications.counters.malformed == notifications.counters.unknown == 0
    asked = [float(at) for event_type, at in emitted if event_type != "instance.delete.start"]
    delays = [at - sent for (_, _, at), sent in zip(reported, asked, strict=True)]
    print(
        f"\nNova's notify call -> on_change: median {statistics.median(delays) * 1000:.1f} ms,"
        f" max {max(delays) * 1000:.1f} ms over {len(delays)} events"
    )


async def test_a_broker_gone_mid_run_is_waited_for_then_resynced() -> None:
    """The virtual host disappears (every connection closed, reconnects refused) and comes
    back: meanwhile the consumer says it is not connected; afterwards it resyncs."""
    broker.require_rabbitmq()
    name = broker.new_vhost_name()
    await asyncio.to_thread(broker.create_vhost, name)
    recorder = Recorder()
    consumer = NotificationConsumer(
        broker.transport_url(name),
        recorder.on_change,
        recorder.on_resync,
        NotificationCounters(),
        reconnect_interval=0.5,
    )
    await consumer.start()
    try:
        assert consumer.is_connected and recorder.resyncs == 1
        await asyncio.to_thread(broker.delete_vhost, name)
        async with asyncio.timeout(WAIT):
            for _ in itertools.count():
                if not consumer.is_connected:
                    break
                await asyncio.sleep(0.05)
        assert consumer.counters.disconnects == 1
        await asyncio.to_thread(broker.create_vhost, name)
        await recorder.wait_resyncs(2)
        assert consumer.is_connected
        instance = str(uuid.uuid4())
        async with NovaPublisher(name) as nova:
            await nova.notify("instance.resize_revert.end", instance)
        assert (await recorder.next_change())[:2] == (instance, ChangeKind.CHANGED)
    finally:
        await consumer.stop()
        await asyncio.to_thread(broker.delete_vhost, name)


def other_tasks() -> set[asyncio.Task[object]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


@pytest.mark.parametrize("reachable", [True, False])
async def test_stop_leaves_nothing_running(vhost: str, reachable: bool) -> None:
    """Connected or still retrying, stop() ends every task the consumer started."""
    before = other_tasks()
    recorder = Recorder()
    port = broker.RABBIT_PORT if reachable else 1
    consumer = NotificationConsumer(
        f"rabbit://guest:guest@127.0.0.1:{port}/{vhost}",
        recorder.on_change,
        recorder.on_resync,
        NotificationCounters(),
        reconnect_interval=0.2,
    )
    await consumer.start()
    assert consumer.is_connected is reachable
    assert other_tasks() - before
    await consumer.stop()
    await asyncio.sleep(0)
    assert not consumer.is_connected
    assert {task for task in other_tasks() - before if not task.done()} == set()
