"""Session tokens without a server: signing and rotation, TTL parsing, per-path policy and
the settings that configure them."""

from __future__ import annotations

import pytest

from metadata.config import load_settings
from metadata.errors import InvalidSettings
from metadata.guest.match import build_matcher, path_segments
from metadata.guest.tokens import TokenPolicy, TokenSigner, parse_ttl

UUID_A = "0e5b4f4e-6d1c-4f6a-9a57-3c3f1c2b9d10"
UUID_B = "0e5b4f4e-6d1c-4f6a-9a57-3c3f1c2b9d11"
NOW = 1_700_000_000.0


def test_a_token_verifies_for_its_instance_until_it_expires() -> None:
    signer = TokenSigner({"k": "k" * 16})
    token = signer.issue(UUID_A, 60, NOW)
    assert 40 <= len(token) <= 64
    assert signer.is_valid(token, UUID_A, NOW + 59.9)
    assert not signer.is_valid(token, UUID_A, NOW + 60)
    assert not signer.is_valid(token, UUID_B, NOW)


def test_the_first_key_signs_and_every_key_verifies() -> None:
    old = TokenSigner({"old": "o" * 16})
    rotated = TokenSigner({"new": "n" * 16, "old": "o" * 16})
    assert rotated.is_valid(old.issue(UUID_A, 60, NOW), UUID_A, NOW)
    assert rotated.issue(UUID_A, 60, NOW).startswith("new.")
    retired = TokenSigner({"new": "n" * 16})
    assert not retired.is_valid(old.issue(UUID_A, 60, NOW), UUID_A, NOW)


def test_without_keys_each_process_signs_with_its_own() -> None:
    token = TokenSigner({}).issue(UUID_A, 60, NOW)
    assert not TokenSigner({}).is_valid(token, UUID_A, NOW)


@pytest.mark.parametrize(
    ("values", "ttl"),
    [
        (["1"], 1),
        (["21600"], 21600),
        ([" 60 "], 60),
        (["0"], None),
        (["21601"], None),
        ([], None),
        (["60", "60"], None),
        (["٣"], None),
        (["1e3"], None),
        (["+5"], None),
    ],
)
def test_ttl_bounds_are_ec2s(values: list[str], ttl: int | None) -> None:
    assert parse_ttl(values) == ttl


def test_policy_explicit_required_beats_exempt_beats_the_mode() -> None:
    exempt = ["/{version}/meta-data/instance-id", "/{version}/user-data"]
    policy = TokenPolicy("required", required=["/{version}/user-data"], exempt=exempt)
    assert policy.requires_token("/{version}/user-data", True)
    assert not policy.requires_token("/{version}/meta-data/instance-id", True)
    assert policy.requires_token("/{version}/meta-data/hostname", True)
    assert not policy.requires_token("/openstack/{version}/meta_data.json", False)
    optional = TokenPolicy("optional", required=["/openstack/*/password"])
    assert optional.requires_token("/openstack/{version}/password", False)
    assert not optional.requires_token("/{version}/meta-data/hostname", True)


def test_the_token_default_of_each_path_is_its_tree_rows() -> None:
    # `token_mode=required` asks a token on every EC2 path, on no OpenStack one by default
    matcher = build_matcher({})
    for path, expected in [
        ("/latest/meta-data/instance-id", True),
        ("/latest/meta-data/", True),
        ("/2009-04-04/user-data", True),
        ("/openstack/latest/meta_data.json", False),
        ("/openstack/latest/", False),
    ]:
        match = matcher.match(path_segments(path)).match
        assert match is not None and match.token_by_default is expected, path


def test_token_keys_are_masked_and_validated() -> None:
    settings = load_settings(environ={"METADATA_TOKEN_KEYS": f"b={'s' * 16},a={'t' * 16}"})
    assert list(settings.token_keys) == ["b", "a"]
    assert settings.masked()["token_keys"] == {"b": "***", "a": "***"}
    for bad in ("short=abc", f"{'s' * 16}", f"a={'s' * 16},a={'t' * 16}"):
        with pytest.raises(InvalidSettings) as raised:
            load_settings(environ={"METADATA_TOKEN_KEYS": bad})
        assert "s" * 16 not in str(raised.value)
