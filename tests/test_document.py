"""parse_document and document_to_json: defaults, field names in errors, round trips."""

from __future__ import annotations

import base64
import uuid as uuid_module
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metadata.document import KNOWN_FIELDS, document_to_json, parse_document
from metadata.errors import InvalidDocument
from metadata.records import UserData
from tests.documents import instance_uuid, sample_document


def minimal(**fields: Any) -> dict[str, Any]:
    return {"uuid": instance_uuid(1), "hostname": "h1", "project_id": "p1", **fields}


def test_ec2_id_is_i_and_the_first_17_hex_digits_of_the_uuid() -> None:
    uuid = str(uuid_module.uuid4())
    doc = parse_document(minimal(uuid=uuid))
    assert doc.core.ec2_id == "i-" + uuid_module.UUID(uuid).hex[:17]
    assert len(doc.core.ec2_id) == 19


def test_given_ec2_id_wins_over_the_derived_one() -> None:
    assert parse_document(minimal(ec2_id="i-0123abcd")).core.ec2_id == "i-0123abcd"


def test_defaults_of_a_minimal_document() -> None:
    doc = parse_document(minimal())
    assert doc.core.name == "h1"  # the name defaults to the hostname
    assert doc.core.security_groups == ("default",)
    assert doc.core.launch_index == 0
    assert doc.keys.keys == ()
    assert doc.network.ports == ()
    assert doc.user_data is None  # absent: a replace leaves stored user data alone


def test_explicit_empty_security_groups_stay_empty() -> None:
    assert parse_document(minimal(security_groups=[])).core.security_groups == ()


def test_uuid_is_normalised_and_url_uuid_used_when_the_body_has_none() -> None:
    uuid = instance_uuid(5)
    assert parse_document(minimal(uuid=uuid.upper())).core.uuid == uuid
    body = minimal()
    del body["uuid"]
    assert parse_document(body, uuid=uuid).core.uuid == uuid
    with pytest.raises(InvalidDocument) as caught:
        parse_document(body)
    assert caught.value.field == "uuid"


def test_uuid_that_differs_from_the_url_is_refused() -> None:
    with pytest.raises(InvalidDocument) as caught:
        parse_document(minimal(), uuid=instance_uuid(2))
    assert caught.value.field == "uuid"


def test_user_data_is_decoded_and_limited() -> None:
    data = bytes(range(256))
    doc = parse_document(minimal(user_data=base64.b64encode(data).decode()))
    assert doc.user_data == UserData(data)
    with pytest.raises(InvalidDocument) as caught:
        parse_document(minimal(user_data=base64.b64encode(data).decode()), user_data_max_bytes=255)
    assert caught.value.field == "user_data"
    assert parse_document(minimal(user_data=None)).user_data == UserData(None)


def test_nested_errors_name_the_full_path() -> None:
    doc = sample_document(1)
    doc["ports"][0]["fixed_ips"].append({"address": "10.0.0.7", "cidr": "10.0.0.0/24"})
    doc["ports"][0]["fixed_ips"][1]["dns"] = ["nine"]
    with pytest.raises(InvalidDocument) as caught:
        parse_document(doc)
    assert caught.value.field == "ports[0].fixed_ips[1].dns[0]"


@pytest.mark.parametrize("n", [1, 2, 300])
def test_sample_documents_round_trip(n: int) -> None:
    parsed = parse_document(sample_document(n))
    assert parse_document(document_to_json(parsed)) == parsed


@pytest.mark.parametrize(
    "fields",
    [
        {"user_data": None},
        {"kernel_id": ""},
        {"ramdisk_id": "r"},
        {"devices": [{"type": "disk"}]},
        {"dedicated_cpus": [0, 3]},
        {"block_device_mapping": {}},
        {"flavor": {}},
        {"ec2_id": ""},
        {
            "ports": [
                {
                    "id": "p",
                    "mac": "FA:16:3E:00:00:0A",
                    "fixed_ips": [
                        {
                            "address": "2001:db8::0001",
                            "cidr": "2001:db8::/64",
                            "mode": "slaac",
                            "routes": [{"cidr": "::/0", "gateway": "2001:db8::1"}],
                        }
                    ],
                }
            ]
        },
    ],
)
def test_edge_documents_round_trip(fields: dict[str, Any]) -> None:
    parsed = parse_document(minimal(**fields))
    assert parse_document(document_to_json(parsed)) == parsed


def test_exported_document_without_user_data_says_so() -> None:
    # An export restored over an instance that has gained user data since must remove it:
    # an absent field would mean "leave it alone".
    stored = parse_document(minimal(user_data=None))
    assert document_to_json(stored)["user_data"] is None


# -- random documents ----------------------------------------------------------------------

# Mostly valid values, so that a good share of the documents get through to the round trip.
names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
addresses = st.sampled_from(["10.0.0.5", "10.0.0.300", "2001:db8::5", "", "x", "10.1.0.5"])
fixed_ips = st.fixed_dictionaries(
    {"address": addresses, "cidr": st.sampled_from(["10.0.0.0/24", "2001:db8::/64", "bad"])},
    optional={
        "gateway": addresses | st.none(),
        "dns": st.lists(addresses, max_size=2),
        "mode": st.sampled_from(["static", "dhcp", "slaac", "x"]),
        "routes": st.lists(
            st.fixed_dictionaries(
                {
                    "cidr": st.sampled_from(["0.0.0.0/0", "10.1.0.0/16", "nope"]),
                    "gateway": addresses,
                }
            ),
            max_size=2,
        ),
    },
)
ports = st.fixed_dictionaries(
    {
        "id": names | st.text(max_size=6),
        "mac": st.sampled_from(["fa:16:3e:00:00:01", "FA:16:3E:00:00:02", "fa:16", ""]),
    },
    optional={
        "mtu": st.none() | st.integers(0, 70000),
        "network_id": st.text(max_size=4),
        "fixed_ips": st.lists(fixed_ips, max_size=2),
        "floating_ips": st.lists(addresses, max_size=2),
        "type": st.text(max_size=4),
    },
)
keys = st.fixed_dictionaries(
    {"name": names | st.text(max_size=6), "data": names | st.text(max_size=12)},
    optional={"type": st.sampled_from(["ssh", "x509", "pgp"])},
)
field_values: dict[str, st.SearchStrategy[Any]] = {
    "uuid": st.sampled_from([instance_uuid(1), instance_uuid(1).upper(), instance_uuid(2), "nope"]),
    "hostname": names | st.text(max_size=10),
    "name": st.text(max_size=10),
    "project_id": names | st.text(max_size=6),
    "launch_index": st.integers(-2, 3) | st.booleans(),
    "ec2_id": st.sampled_from(["", "i-0123abcd", "i-XYZ", "ami-1"]),
    "kernel_id": st.none() | st.text(max_size=4),
    "flavor": st.fixed_dictionaries(
        {"name": st.text(max_size=4)}, optional={"vcpus": st.integers(-1, 4)}
    ),
    "security_groups": st.lists(st.text(max_size=4), max_size=3),
    "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    "keys": st.lists(keys, max_size=3),
    "ports": st.lists(ports, max_size=3),
    "user_data": st.none()
    | st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())
    | st.text(max_size=6),
    "vendor_data": st.dictionaries(st.text(max_size=4), json_values, max_size=3),
    "dedicated_cpus": st.lists(st.integers(-1, 8), max_size=3),
    "devices": st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["nic", "disk", "tv"])}, optional={"bus": st.text(max_size=3)}
        ),
        max_size=2,
    ),
}
shaped_documents = st.fixed_dictionaries(
    {
        "uuid": field_values["uuid"],
        "hostname": field_values["hostname"],
        "project_id": field_values["project_id"],
    },
    optional={
        name: value
        for name, value in field_values.items()
        if name not in ("uuid", "hostname", "project_id")
    },
)
# Shaped documents three times out of four; any JSON under the known field names otherwise.
documents = st.one_of(
    shaped_documents,
    shaped_documents,
    shaped_documents,
    st.dictionaries(st.sampled_from([*sorted(KNOWN_FIELDS), "extra"]), json_values, max_size=6),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents_are_refused_by_name_or_round_trip(raw: dict[str, Any]) -> None:
    try:
        parsed = parse_document(raw)
    except InvalidDocument as exc:
        # The field it names is where the problem is: a top-level field of this document,
        # or "document" itself.
        top = exc.field.split(".")[0].split("[")[0]
        assert top in raw or top in ("uuid", "hostname", "project_id", "document"), exc
        return
    again = parse_document(document_to_json(parsed))
    assert again == parsed
    assert document_to_json(again) == document_to_json(parsed)
