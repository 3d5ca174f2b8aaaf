"""One settings object, built once at start: defaults < TOML file < environment < flags.

No other module reads the environment; everything it needs is passed down from here.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metadata.errors import InvalidSettings

ENV_PREFIX = "METADATA_"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    listen: HostPort = HostPort("127.0.0.1", 8775)
    admin_listen: HostPort = HostPort("127.0.0.1", 9775)
    # name -> token; a single METADATA_ADMIN_TOKEN is named "admin".
    admin_tokens: Mapping[str, str] = field(default_factory=dict)
    admin_token_file: str = "admin-token"
    proxy_shared_secret: str | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    token_mode: str = "optional"
    rate_limit: RateLimit | None = RateLimit(50.0, 200)
    user_data_max_bytes: int = 65536
    vendor_data: Mapping[str, Any] = field(default_factory=dict)
    log_level: str = "INFO"

    def masked(self) -> dict[str, Any]:
        """The effective settings with every secret replaced, for `metadata config show`."""
        shown: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "admin_tokens":
                value = {name: "***" for name in value}
            elif f.name == "proxy_shared_secret" and value:
                value = "***"
            elif isinstance(value, HostPort):
                value = str(value)
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


def parse_host_port(text: str) -> HostPort:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {text!r}")
    host = host.strip("[]")
    if not host:
        raise ValueError(f"expected host:port, got {text!r}")
    return HostPort(host, int(port))


def parse_rate_limit(text: str) -> RateLimit | None:
    if text.strip().lower() == "off":
        return None
    rate, sep, burst = text.partition("/")
    try:
        parsed = RateLimit(float(rate), int(burst))
    except ValueError:
        raise ValueError(f"expected RATE/BURST or off, got {text!r}") from None
    if not sep or parsed.rate <= 0 or parsed.burst < 1:
        raise ValueError(f"expected RATE/BURST (both positive) or off, got {text!r}")
    return parsed


def parse_networks(
    value: str | list[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    items = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def parse_positive_int(value: str | int) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return number


def parse_token_mode(value: str) -> str:
    if value not in ("optional", "required"):
        raise ValueError(f"must be 'optional' or 'required', got {value!r}")
    return value


def parse_url(prefixes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not value.startswith(prefixes):
            raise ValueError(f"must start with one of {', '.join(prefixes)}; got {value!r}")
        return value

    return parse


def parse_json_object(value: str | Mapping[str, Any]) -> Mapping[str, Any]:
    import orjson

    parsed = orjson.loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, Mapping):
        raise ValueError("must be a JSON object")
    return dict(parsed)


def _optional_str(value: str) -> str | None:
    return value or None


# setting name -> parser of its text (environment, flag) or TOML value.
PARSERS: dict[str, Callable[[Any], Any]] = {
    "database_url": parse_url(
        ("sqlite+aiosqlite://", "postgresql+asyncpg://", "mysql+aiomysql://")
    ),
    "cache_url": parse_url(("memory://", "redis://", "rediss://")),
    "cache_ttl": parse_positive_int,
    "cache_max_entries": parse_positive_int,
    "listen": parse_host_port,
    "admin_listen": parse_host_port,
    "admin_token_file": str,
    "proxy_shared_secret": _optional_str,
    "trusted_proxies": parse_networks,
    "token_mode": parse_token_mode,
    "rate_limit": parse_rate_limit,
    "user_data_max_bytes": parse_positive_int,
    "vendor_data": parse_json_object,
    "log_level": lambda v: str(v).upper(),
}


def _parse_admin_tokens(value: Any) -> dict[str, str]:
    """`secret` names the token "admin"; `name=secret,name2=secret2` names several."""
    if isinstance(value, Mapping):
        tokens = {str(k): str(v) for k, v in value.items()}
    else:
        tokens = {}
        for item in str(value).split(","):
            name, sep, secret = item.strip().partition("=")
            if sep:
                tokens[name] = secret
            elif name:
                tokens["admin"] = name
    for name, secret in tokens.items():
        if not name or len(secret) < 16:
            raise ValueError(f"token {name!r} must be named and at least 16 characters long")
    return tokens


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the layers and validate each value; every bad setting is reported at once."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if config_file is not None:
        try:
            raw.update(tomllib.loads(Path(config_file).read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidSettings([f"config file {config_file}: {exc}"]) from exc
    for name in [*PARSERS, "admin_token"]:
        env_value = environ.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            raw[name] = env_value
    raw.update({k: v for k, v in (flags or {}).items() if v is not None})

    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in raw.items():
        try:
            if name in ("admin_token", "admin_tokens"):
                values["admin_tokens"] = _parse_admin_tokens(value)
            elif name in PARSERS:
                values[name] = PARSERS[name](value)
            else:
                problems.append(f"{name}: unknown setting")
        except (ValueError, TypeError) as exc:
            problems.append(f"{name} ({ENV_PREFIX}{name.upper()}): {exc}")
    if problems:
        raise InvalidSettings(problems)
    return Settings(**values)
