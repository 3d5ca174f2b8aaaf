"""The pure parts of the Nova notification consumer: transport URLs as oslo.messaging reads
them, the oslo.messaging 2.0 envelope, and which events change what a guest sees."""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadata.errors import InvalidSettings
from metadata.nova.notifications_envelope import (
    MalformedNotification,
    decode_notification,
    instance_uuid,
)
from metadata.nova.notifications_events import EVENT_KINDS, ChangeKind, is_known, kind_of
from metadata.nova.notifications_url import BrokerAddress, parse_transport_url, redact
from tests.notifications_broker import envelope_body, instance_payload, oslo_message


def test_a_nova_conf_transport_url_names_its_broker() -> None:
    assert parse_transport_url("rabbit://nova:s3cret@mq-1:5672/nova") == [
        BrokerAddress("mq-1", 5672, "nova", "s3cret", "nova", tls=False)
    ]


def test_several_hosts_each_keep_their_own_credentials_and_share_the_vhost() -> None:
    brokers = parse_transport_url("rabbit://a:pa@h1:5673,b:pb@h2,h3:5674/")
    assert [(b.host, b.port, b.login, b.password, b.virtual_host) for b in brokers] == [
        ("h1", 5673, "a", "pa", "/"),
        ("h2", 5672, "b", "pb", "/"),
        ("h3", 5674, "guest", "guest", "/"),
    ]


def test_escapes_ipv6_tls_and_the_default_vhost() -> None:
    (broker,) = parse_transport_url("rabbit://us%40r:p%3Ass@[fd00::5]:5671/?ssl=1")
    assert (broker.host, broker.login, broker.password) == ("fd00::5", "us@r", "p:ss")
    assert broker.tls and broker.virtual_host == "/"
    (plain,) = parse_transport_url("amqp://mq")
    assert (plain.port, plain.virtual_host, plain.tls) == (5672, "/", False)
    (secure,) = parse_transport_url("amqps://mq/%2Fcloud")
    assert (secure.port, secure.virtual_host, secure.tls) == (5671, "/cloud", True)
    assert str(broker) == "amqps://us@r@[fd00::5]:5671//"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("kafka://k:9092/", "unsupported transport 'kafka'"),
        ("rabbit:///vhost", "names no host"),
        ("rabbit://u:p@h:port/", "port 'port' of host 'h' is not a number"),
        ("rabbit://u:p@h:70000/", "out of range"),
        ("no url at all", "unsupported transport"),
    ],
)
def test_a_bad_transport_url_is_a_clear_start_up_error(url: str, problem: str) -> None:
    with pytest.raises(InvalidSettings) as raised:
        parse_transport_url(url)
    assert problem in str(raised.value)


def test_errors_never_show_a_password() -> None:
    with pytest.raises(InvalidSettings) as raised:
        parse_transport_url("rabbit://nova:hunter2@h:x/")
    assert "hunter2" not in str(raised.value)
    assert redact("rabbit://a:p1@h1,b:p2@h2/v") == "rabbit://a:***@h1,b:***@h2/v"


def test_the_envelope_oslo_messaging_sends_is_unwrapped() -> None:
    instance = str(uuid.uuid4())
    message = oslo_message("instance.update", instance_payload(instance))
    notification = decode_notification(envelope_body(message))
    assert notification.event_type == "instance.update"
    assert notification.publisher_id == "nova-compute:compute-1"
    assert instance_uuid(notification) == instance


def test_a_message_of_the_v1_messaging_driver_has_no_envelope() -> None:
    instance = str(uuid.uuid4())
    body = json.dumps(oslo_message("instance.delete.end", instance_payload(instance))).encode()
    assert instance_uuid(decode_notification(body)) == instance


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b'"a string"', "not a JSON object"),
        (b'{"oslo.version": "2.1", "oslo.message": "{}"}', "unsupported envelope version"),
        (b'{"oslo.version": "1.0", "oslo.message": "{}"}', "unsupported envelope version"),
        (b'{"oslo.version": "2.0"}', "without a oslo.message string"),
        (b'{"oslo.version": "2.0", "oslo.message": "{\\"event_type\\": 3}"}', "no event_type"),
    ],
)
def test_malformed_messages_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedNotification, match=reason):
        decode_notification(body)


def test_an_instance_event_without_a_usable_uuid_is_malformed() -> None:
    for payload in (None, {"nova_object.data": {}}, instance_payload("vm-1")):
        notification = decode_notification(envelope_body(oslo_message("instance.update", payload)))
        with pytest.raises(MalformedNotification):
            instance_uuid(notification)


@given(st.binary(max_size=200))
def test_no_body_makes_decoding_fail_other_than_as_malformed(body: bytes) -> None:
    try:
        notification = decode_notification(body)
    except MalformedNotification:
        return
    with contextlib.suppress(MalformedNotification):
        instance_uuid(notification)


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("instance.update", ChangeKind.CHANGED),
        ("instance.create.end", ChangeKind.CHANGED),
        ("instance.rebuild_scheduled", ChangeKind.REBUILT),
        ("instance.rebuild.start", ChangeKind.REBUILT),
        ("instance.rebuild.end", ChangeKind.REBUILT),
        ("instance.rebuild.error", ChangeKind.CHANGED),
        ("instance.evacuate", ChangeKind.CHANGED),
        ("instance.delete.end", ChangeKind.DELETED),
        ("instance.resize_finish.end", ChangeKind.CHANGED),
        ("instance.resize_revert.end", ChangeKind.CHANGED),
        ("instance.interface_detach.end", ChangeKind.CHANGED),
        ("instance.volume_swap.end", ChangeKind.CHANGED),
        ("instance.shelve_offload.end", ChangeKind.CHANGED),
        ("instance.live_migration_rollback_dest.end", ChangeKind.CHANGED),
        ("instance.share_attach.end", ChangeKind.CHANGED),
    ],
)
def test_events_that_change_what_a_guest_sees(event_type: str, kind: ChangeKind) -> None:
    assert kind_of(event_type) is kind


@pytest.mark.parametrize(
    "event_type",
    [
        "instance.delete.start",
        "instance.resize_finish.start",
        "instance.power_off.end",
        "instance.rescue.end",
        "instance.exists",
        "keypair.import.end",
        "flavor.update",
        "service.update",
    ],
)
def test_events_that_change_nothing_a_guest_sees(event_type: str) -> None:
    assert is_known(event_type) and kind_of(event_type) is None


def test_every_action_with_an_end_announces_a_change_only_after_it_started() -> None:
    actions = {event.rsplit(".", 1)[0] for event in EVENT_KINDS if event.endswith(".end")}
    for action in actions:
        if kind_of(f"{action}.end") is ChangeKind.CHANGED:
            assert kind_of(f"{action}.start") is None, action
    assert not is_known("instance.frobnicate.end")
