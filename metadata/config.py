"""One settings object, built once at start: defaults < TOML file < environment < flags.

No other module reads the environment; everything it needs is passed down from here.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from metadata.errors import InvalidSettings

ENV_PREFIX = "METADATA_"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MIN_ADMIN_TOKEN_LENGTH = 16
MAX_HOP_LIMIT = 64  # EC2's HttpPutResponseHopLimit: 1 to 64
# scheme://user:password@host... : the password is masked wherever a URL is shown.
_URL_PASSWORD = re.compile(r"^([\w+.-]+://[^:/@]*):(.*)@([^@]*)$", re.DOTALL)
_TOKEN_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})")


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Token bucket per instance: `rate` requests a second, bursts up to `burst`."""

    rate: float
    burst: int


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///metadata.db"
    cache_url: str = "memory://"
    cache_ttl: int = 300
    cache_max_entries: int = 100_000
    # The guest listeners: one socket each (an IPv4 and an IPv6 metadata address, say).
    listen: tuple[HostPort, ...] = (HostPort("127.0.0.1", 8775),)
    admin_listen: HostPort = HostPort("127.0.0.1", 9775)
    # name -> token; a single METADATA_ADMIN_TOKEN is named "admin".
    admin_tokens: Mapping[str, str] = field(default_factory=dict)
    admin_token_file: str = "admin-token"
    proxy_shared_secret: str | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    token_mode: str = "optional"
    # IP TTL / IPv6 hop limit of the token PUT's answer (EC2's HttpPutResponseHopLimit).
    token_hop_limit: int = 1
    rate_limit: RateLimit | None = RateLimit(50.0, 200)
    # Session-token signing keys, name -> secret, newest first: the first signs, every one
    # verifies (rotation without a flag day). None set: one random key per process.
    token_keys: Mapping[str, str] = field(default_factory=dict)
    # Path templates (globs, e.g. "/{version}/user-data") that need a session token even
    # in optional mode, and those readable without one even in required mode.
    token_required_paths: tuple[str, ...] = ()
    token_exempt_paths: tuple[str, ...] = ()
    # Guest requests served at once; beyond, boot-critical paths queue first, others get 503.
    guest_max_concurrent: int = 512
    # Seconds a guest gets to send a request body (the password POST) before 408.
    guest_body_timeout: float = 5.0
    user_data_max_bytes: int = 65536
    # Versions of user data kept for restore besides the current one.
    user_data_history: int = 10
    # `?wait_for_change=true`: seconds a guest waits when it names no timeout_sec, the most
    # it may ask for, and how many guests may wait per instance and in all (503 beyond).
    wait_timeout_default: float = 60.0
    wait_timeout_max: float = 300.0
    wait_max_per_instance: int = 16
    wait_max_total: int = 1024
    vendor_data: Mapping[str, Any] = field(default_factory=dict)
    # Dynamic vendor-data services, name -> http(s) URL (Nova's vendordata_dynamic_targets):
    # each is POSTed the instance's context on a miss; its answer is served under its name.
    vendor_data_targets: Mapping[str, str] = field(default_factory=dict)
    # Seconds one service gets in all (queueing, connect, answer) before it is left out:
    # shorter than Nova's 5 s + 5 s, since a guest's request waits for it.
    vendor_data_timeout: float = 2.0
    log_level: str = "INFO"
    # Seconds in-flight requests get to finish after SIGTERM before they are cut off.
    shutdown_grace: float = 10.0
    # Serving processes, each with its own event loop, sharing the ports (SO_REUSEPORT).
    # Each has its own memory:// cache: several workers want cache_url=redis://.
    workers: int = 1
    # Seconds the identity last resolved for an address (or a signed instance) may still be
    # used while the database does not answer, so that cached answers go on being served;
    # 0: never (uncached and cached alike get 503).
    stale_if_error: float = 300.0
    # Seconds to connect to the database, or to wait for a pooled connection, before a 503.
    database_timeout: float = 2.0
    # Seconds a database read may take before it is abandoned with a 503 (PostgreSQL).
    database_read_timeout: float = 10.0
    # One line per request on both listeners (logger `metadata.access`).
    access_log: bool = False
    # `json` (one object per line) or `text`, for `metadata serve`.
    log_format: str = "json"
    # Nova mode: Nova's own nova.conf files (later wins, as Nova's --config-file); set,
    # instances are read from Nova's databases instead of the service's own store.
    nova_config: tuple[str, ...] = ()
    # Seconds a slice read from Nova may be served without Nova announcing a change.
    nova_max_staleness: float = 15.0
    # Seconds Neutron's answer on an instance's security groups is reused without asking
    # again (0: asked once per generation of the instance).
    nova_neutron_max_staleness: float = 15.0
    # Seconds that answer may still be served while Neutron cannot answer (0: never).
    nova_neutron_stale_if_error: float = 300.0
    # The notification transport, instead of nova.conf's (rabbit:// or amqp://).
    nova_notification_url: str | None = None

    def masked(self) -> dict[str, Any]:
        """The effective settings with every secret replaced, for `metadata config show`."""
        shown: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("admin_tokens", "token_keys"):
                value = {name: "***" for name in value}
            elif f.name == "proxy_shared_secret" and value:
                value = "***"
            elif f.name in ("database_url", "cache_url", "nova_notification_url") and value:
                value = mask_url_password(value)
            elif f.name == "nova_config":
                value = list(value)
            elif f.name == "vendor_data_targets":
                value = {name: mask_url_password(url) for name, url in value.items()}
            elif isinstance(value, HostPort):
                value = str(value)
            elif f.name == "listen":
                value = ",".join(str(where) for where in value)
            elif isinstance(value, RateLimit):
                value = f"{value.rate:g}/{value.burst}"
            elif f.name == "rate_limit" and value is None:
                value = "off"
            elif f.name == "trusted_proxies":
                value = [str(n) for n in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            shown[f.name] = value
        return shown


def mask_url_password(url: str) -> str:
    """`postgresql+asyncpg://u:secret@db/x` -> `postgresql+asyncpg://u:***@db/x`; each host of
    an oslo.messaging multi-host URL (`rabbit://u:p@h1,u2:p2@h2/vhost`) masked on its own."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    entries = netloc.split(",")
    # An entry without `@` before one with it: a comma inside credentials (not a URL oslo
    # can read either); everything up to the last `@` is masked then.
    broken = any("@" not in e and "@" in "".join(entries[i + 1 :]) for i, e in enumerate(entries))
    if not sep or len(entries) == 1 or broken:
        return _URL_PASSWORD.sub(r"\1:***@\3", url)
    hosts = []
    for host in entries:
        credentials, at, address = host.rpartition("@")
        if at and ":" in credentials:
            credentials = credentials.partition(":")[0] + ":***"
        hosts.append(f"{credentials}{at}{address}")
    return f"{scheme}://{','.join(hosts)}{slash}{tail}"


def _text(value: Any) -> str:
    # TOML values arrive typed; the message names the type, never the value (it may be secret).
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def parse_host_port(value: Any) -> HostPort:
    text = _text(value)
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port with a port from 1 to 65535, got {text!r}")
    return HostPort(host, int(port))


def parse_listen_list(value: Any) -> tuple[HostPort, ...]:
    """`host:port` entries separated by commas (TOML: also an array), IPv6 as `[addr]:port`:
    one guest listener each, none twice."""
    items = value if isinstance(value, list) else _text(value).split(",")
    entries: list[HostPort] = []
    for number, item in enumerate(items, 1):
        text = _text(item).strip()
        if not text:
            raise ValueError(f"entry number {number} is empty")
        if text.startswith("["):
            bracketed, _, _ = text.partition("]")
            try:
                ipaddress.IPv6Address(bracketed[1:])
            except ValueError:
                raise ValueError(f"{text!r}: only an IPv6 address goes in brackets") from None
        where = parse_host_port(text)
        if not _is_host(where.host):
            raise ValueError(f"{text!r}: {where.host!r} is neither an IP address nor a host name")
        if where in entries:
            raise ValueError(f"{where} is given twice")
        entries.append(where)
    if not entries:
        raise ValueError("expected at least one host:port")
    return tuple(entries)


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return _HOST_NAME.fullmatch(text) is not None
    return True


def parse_hop_limit(value: Any) -> int:
    number = parse_positive_int(value)
    if number > MAX_HOP_LIMIT:
        raise ValueError(f"expected 1 to {MAX_HOP_LIMIT} (as EC2), got {value!r}")
    return number


def parse_rate_limit(value: Any) -> RateLimit | None:
    text = _text(value)
    if text.strip().lower() == "off":
        return None
    rate, sep, burst = text.partition("/")
    expected = f"expected RATE/BURST (both positive, e.g. 50/200) or off, got {text!r}"
    try:
        parsed = RateLimit(float(rate), int(burst))
    except ValueError:
        raise ValueError(expected) from None
    if not sep or not math.isfinite(parsed.rate) or parsed.rate <= 0 or parsed.burst < 1:
        raise ValueError(expected)
    return parsed


def parse_networks(value: Any) -> tuple[IPNetwork, ...]:
    items = _text(value).split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise TypeError(f"expected CIDRs separated by commas or a list, got {type(value).__name__}")
    networks = []
    for item in items:
        text = _text(item).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def parse_positive_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = _text(value).strip()
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"expected a positive integer, got {value!r}")
        number = int(text)
    if number < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number


def parse_seconds(value: Any) -> float:
    """A non-negative, finite number of seconds (integer or decimal)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        try:
            seconds = float(_text(value))
        except ValueError:
            raise ValueError(f"expected a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a finite, non-negative number of seconds, got {value!r}")
    return seconds


def parse_positive_seconds(value: Any) -> float:
    seconds = parse_seconds(value)
    if seconds == 0:
        raise ValueError(f"expected more than 0 seconds, got {value!r}")
    return seconds


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_log_format(value: Any) -> str:
    if _text(value).strip().lower() not in ("json", "text"):
        raise ValueError(f"expected 'json' or 'text', got {value!r}")
    return str(value).strip().lower()


def parse_token_mode(value: Any) -> str:
    if _text(value) not in ("optional", "required"):
        raise ValueError(f"expected 'optional' or 'required', got {value!r}")
    return str(value)


def parse_url(prefixes: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not _text(value).startswith(prefixes):
            shown = mask_url_password(value)
            raise ValueError(f"expected a URL starting {' or '.join(prefixes)}, got {shown!r}")
        return str(value)

    return parse


def parse_json_object(value: Any) -> Mapping[str, Any]:
    import orjson

    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = orjson.loads(_text(value))
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"expected a JSON object: {exc}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"expected a JSON object, got {type(parsed).__name__}")
    return parsed


def parse_log_level(value: Any) -> str:
    level = _text(value).strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise ValueError(f"expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL; got {value!r}")
    return level


def parse_file_name(value: Any) -> str:
    if not _text(value).strip():
        raise ValueError("expected a file name, got an empty string")
    return str(value)


def parse_optional_secret(value: Any) -> str | None:
    return _text(value) or None


def parse_admin_tokens(value: Any) -> dict[str, str]:
    """`secret` names the token "admin"; `name=secret,name2=secret2` names several; TOML may
    give a table. Messages name tokens, never show them."""
    if isinstance(value, Mapping):
        pairs = [(str(k), _text(v)) for k, v in value.items()]
    else:
        pairs = []
        for item in _text(value).split(","):
            name, sep, secret = item.strip().partition("=")
            # A bare base64 token ends in "=" padding: that is no name=secret pair.
            if not sep or not secret.strip("="):
                name, secret = "admin", item.strip()
            if secret:
                pairs.append((name, secret))
    tokens: dict[str, str] = {}
    for number, (name, secret) in enumerate(pairs, 1):
        label = repr(name) if _TOKEN_NAME.fullmatch(name) else f"number {number}"
        if not _TOKEN_NAME.fullmatch(name):
            raise ValueError(f"token {label}: a name uses only letters, digits, '_', '.', '-'")
        if name in tokens:
            raise ValueError(f"token {label} is given twice")
        if len(secret) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(f"token {label} is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters")
        tokens[name] = secret
    return tokens


def parse_token_keys(value: Any) -> dict[str, str]:
    """`name=secret,name2=secret2`, newest first (TOML: a table); each key is named so a
    token says which key signed it. Messages name keys, never show them."""
    if isinstance(value, Mapping):
        pairs = [(str(k), _text(v)) for k, v in value.items()]
    else:
        pairs = []
        for number, item in enumerate(_text(value).split(","), 1):
            name, sep, secret = item.strip().partition("=")
            if item.strip() and not sep:
                # A bare secret: say where, never what.
                raise ValueError(f"key number {number}: expected name=secret")
            if name or secret:
                pairs.append((name, secret))
    keys: dict[str, str] = {}
    for number, (name, secret) in enumerate(pairs, 1):
        if not _TOKEN_NAME.fullmatch(name):
            raise ValueError(
                f"key number {number}: expected name=secret, the name in letters, "
                "digits, '_', '.', '-'"
            )
        if name in keys:
            raise ValueError(f"key {name!r} is given twice")
        if len(secret) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(f"key {name!r} is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters")
        keys[name] = secret
    return keys


def parse_path_patterns(value: Any) -> tuple[str, ...]:
    items = _text(value).split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise TypeError(f"expected paths separated by commas or a list, got {type(value).__name__}")
    patterns = tuple(_text(item).strip() for item in items if _text(item).strip())
    for pattern in patterns:
        if not pattern.startswith("/"):
            raise ValueError(f"{pattern!r}: a path template starts with '/'")
    return patterns


def parse_vendor_data_targets(value: Any) -> dict[str, str]:
    """`name=url,name2=url2` (TOML: a table), each URL http(s) with a host. The names
    become keys of vendor_data2.json, beside the reserved `static`."""
    if isinstance(value, Mapping):
        pairs = [(str(k), _text(v)) for k, v in value.items()]
    else:
        pairs = [item.strip().partition("=")[::2] for item in _text(value).split(",")]
        pairs = [(name.strip(), url.strip()) for name, url in pairs if name or url]
    targets: dict[str, str] = {}
    for number, (name, url) in enumerate(pairs, 1):
        if not _TOKEN_NAME.fullmatch(name):
            raise ValueError(
                f"target number {number}: expected name=url, the name in letters, "
                "digits, '_', '.', '-'"
            )
        if name == "static" or name in targets:
            raise ValueError(f"target {name!r}: the name is reserved or given twice")
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(
                f"target {name!r}: expected an http:// or https:// URL with a "
                f"host, got {mask_url_password(url)!r}"
            )
        targets[name] = url
    return targets


def parse_file_list(value: Any) -> tuple[str, ...]:
    """`FILE1,FILE2` (TOML: a list too), each named once, in order."""
    items = _text(value).split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise TypeError(f"expected files separated by commas or a list, got {type(value).__name__}")
    files = tuple(_text(item).strip() for item in items if _text(item).strip())
    if not files:
        raise ValueError("expected at least one file name")
    return files


# setting name -> parser of its text (environment, flag) or TOML value.
PARSERS: dict[str, Callable[[Any], Any]] = {
    "database_url": parse_url(
        ("sqlite+aiosqlite://", "postgresql+asyncpg://", "mysql+aiomysql://")
    ),
    "cache_url": parse_url(("memory://", "redis://", "rediss://")),
    "cache_ttl": parse_positive_int,
    "cache_max_entries": parse_positive_int,
    "listen": parse_listen_list,
    "admin_listen": parse_host_port,
    "admin_tokens": parse_admin_tokens,
    "admin_token_file": parse_file_name,
    "proxy_shared_secret": parse_optional_secret,
    "trusted_proxies": parse_networks,
    "token_mode": parse_token_mode,
    "token_hop_limit": parse_hop_limit,
    "rate_limit": parse_rate_limit,
    "token_keys": parse_token_keys,
    "token_required_paths": parse_path_patterns,
    "token_exempt_paths": parse_path_patterns,
    "guest_max_concurrent": parse_positive_int,
    "guest_body_timeout": parse_seconds,
    "user_data_max_bytes": parse_positive_int,
    "user_data_history": parse_positive_int,
    "wait_timeout_default": parse_seconds,
    "wait_timeout_max": parse_seconds,
    "wait_max_per_instance": parse_positive_int,
    "wait_max_total": parse_positive_int,
    "vendor_data": parse_json_object,
    "vendor_data_targets": parse_vendor_data_targets,
    "vendor_data_timeout": parse_positive_seconds,
    "log_level": parse_log_level,
    "shutdown_grace": parse_seconds,
    "workers": parse_positive_int,
    "stale_if_error": parse_seconds,
    "database_timeout": parse_positive_seconds,
    "database_read_timeout": parse_positive_seconds,
    "access_log": parse_bool,
    "log_format": parse_log_format,
    "nova_config": parse_file_list,
    "nova_max_staleness": parse_positive_seconds,
    "nova_neutron_max_staleness": parse_seconds,
    "nova_neutron_stale_if_error": parse_seconds,
    "nova_notification_url": parse_url(("rabbit://", "rabbits://", "amqp://", "amqps://")),
}
# Other spellings of a setting: METADATA_ADMIN_TOKEN, --admin-token and TOML admin_token
# all set admin_tokens.
ALIASES = {"admin_token": "admin_tokens"}
# The names that have an environment variable and a flag (the alias replaces its setting).
FLAG_SETTINGS = [
    next((alias for alias, target in ALIASES.items() if target == name), name) for name in PARSERS
]


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _read_toml(config_file: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidSettings([f"config file {config_file}: {exc}"]) from exc


def _unknown(key: str, where: str) -> str:
    known = [*PARSERS, *ALIASES]
    guess = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {guess[0]!r}?" if guess else ""
    return f"{key}: unknown setting (from {where}){hint}"


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the layers and validate each value; every bad setting is reported at once."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    # setting -> (raw value, where it came from); a later layer replaces an earlier one.
    raw: dict[str, tuple[Any, str]] = {}
    if config_file is not None:
        for key, value in _read_toml(config_file).items():
            name = ALIASES.get(key, key)
            if name in PARSERS:
                raw[name] = (value, f"{config_file}: {key}")
            else:
                problems.append(_unknown(key, str(config_file)))
    for key in FLAG_SETTINGS:
        if (env_value := environ.get(env_name(key))) is not None:
            raw[ALIASES.get(key, key)] = (env_value, env_name(key))
    for key, value in (flags or {}).items():
        name, where = ALIASES.get(key, key), "--" + key.replace("_", "-")
        if name not in PARSERS:
            problems.append(_unknown(key, where))
        elif value is not None:
            raw[name] = (value, where)

    values: dict[str, Any] = {}
    for name, (value, where) in raw.items():
        try:
            values[name] = PARSERS[name](value)
        except (ValueError, TypeError) as exc:
            problems.append(f"{name}: {exc} (from {where})")
    defaults = Settings()
    admin_listen = values.get("admin_listen", defaults.admin_listen)
    if admin_listen in values.get("listen", defaults.listen):
        problems.append(f"admin_listen: must differ from listen ({admin_listen})")
    wait_default = values.get("wait_timeout_default", defaults.wait_timeout_default)
    if wait_default > values.get("wait_timeout_max", defaults.wait_timeout_max):
        problems.append("wait_timeout_default: must not exceed wait_timeout_max")
    if problems:
        raise InvalidSettings(problems)
    return Settings(**values)
