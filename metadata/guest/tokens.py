"""IMDSv2 session tokens: stateless and HMAC-signed, bound to the instance that asked, valid
on every replica that shares the keys; and the policy of which paths need one.

A token is `<key name>.<expiry, hex unix seconds>.<base64url HMAC-SHA256>`, about 56
characters like EC2's. The MAC covers the key name, the expiry and the instance uuid, so a
token presented by another instance, after its expiry, or cut short fails the same check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import string
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

log = logging.getLogger(__name__)

# Both spellings, as Firecracker's MMDS: the AWS name keeps SDKs working, the neutral one
# lets a vendor-neutral client skip pretending to be on AWS.
TTL_HEADERS = ("X-aws-ec2-metadata-token-ttl-seconds", "X-metadata-token-ttl-seconds")
TOKEN_HEADERS = ("X-aws-ec2-metadata-token", "X-metadata-token")
MIN_TTL, MAX_TTL = 1, 21600  # EC2's bounds: 1 s to 6 h
_HEX = frozenset(string.hexdigits)
_MAX_EXPIRY_DIGITS = 12  # hex seconds: far beyond any clock, short enough to parse cheaply


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TokenSigner:
    """Issues and verifies tokens. The first key signs; every key verifies, so a new key is
    rolled out by putting it first on all replicas, and the old one removed after the
    longest TTL (6 h)."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        if not keys:
            # Without configured keys a token is good on this process only: fine for one
            # replica, and a restart simply makes clients ask again (401 -> new PUT).
            log.warning("no token_keys configured: session tokens are valid on this process only")
            keys = {"process": secrets.token_urlsafe(32)}
        self._keys = {name: secret.encode() for name, secret in keys.items()}
        self._signing_name = next(iter(self._keys))

    def _mac(self, key: bytes, signed_part: str, instance_uuid: str) -> str:
        message = f"{signed_part}.{instance_uuid}".encode("utf-8", "surrogateescape")
        return _b64(hmac.new(key, message, hashlib.sha256).digest())

    def issue(self, instance_uuid: str, ttl: int, now: float) -> str:
        signed_part = f"{self._signing_name}.{int(now) + ttl:x}"
        mac = self._mac(self._keys[self._signing_name], signed_part, instance_uuid)
        return f"{signed_part}.{mac}"

    def is_valid(self, token: str, instance_uuid: str, now: float) -> bool:
        name, _, rest = token.partition(".")
        expiry, dot, mac = rest.partition(".")
        key = self._keys.get(name)
        if key is None or not dot or not 0 < len(expiry) <= _MAX_EXPIRY_DIGITS:
            return False
        if not _HEX.issuperset(expiry):
            return False
        expected = self._mac(key, f"{name}.{expiry}", instance_uuid)
        # Constant time, and on bytes: a non-ASCII header must not raise on the way.
        if not hmac.compare_digest(expected.encode(), mac.encode("utf-8", "surrogateescape")):
            return False
        return now < int(expiry, 16)


def parse_ttl(values: Iterable[str]) -> int | None:
    """The TTL a token PUT asks for, or None when missing, repeated or out of EC2's bounds."""
    given = list(values)
    if len(given) != 1:
        return None
    text = given[0].strip()
    # isdigit() alone accepts "²" and other Unicode digits that int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        return None
    ttl = int(text)
    return ttl if MIN_TTL <= ttl <= MAX_TTL else None


class TokenPolicy:
    """Which path templates need a session token, decided from the settings once.

    An explicit `required` pattern wins over everything; an `exempt` pattern wins over the
    mode; in `required` mode a path needs a token when its tree row says so by default
    (every EC2 path; the OpenStack tree only where a pattern says so: cloud-init's OpenStack
    reader never sends one).
    """

    def __init__(self, mode: str, required: Iterable[str] = (), exempt: Iterable[str] = ()) -> None:
        self.mode = mode
        self._required = tuple(required)
        self._exempt = tuple(exempt)
        # template -> decision; templates come from the path tree, so this stays small.
        self._decided: dict[str, bool] = {}

    def requires_token(self, template: str, by_default: bool) -> bool:
        decided = self._decided.get(template)
        if decided is None:
            decided = self._decide(template, by_default)
            self._decided[template] = decided
        return decided

    def _decide(self, template: str, by_default: bool) -> bool:
        if any(fnmatchcase(template, pattern) for pattern in self._required):
            return True
        if any(fnmatchcase(template, pattern) for pattern in self._exempt):
            return False
        return self.mode == "required" and by_default
