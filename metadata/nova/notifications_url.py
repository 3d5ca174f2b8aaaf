"""oslo.messaging transport URLs (`rabbit://user:pass@host:port,…/vhost`) as broker addresses.

Parsed as `oslo_messaging.TransportURL.parse` and the rabbit driver read them: hosts are
comma separated, each with its own optional credentials, percent-escapes undone; a host
without credentials, port or a URL without a virtual host takes the driver's defaults
(guest, guest, 5672, `/`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from metadata.errors import InvalidSettings

# `kombu` is the rabbit driver's old alias; `amqp`/`amqps` are the URLs AMQP clients write.
PLAIN_SCHEMES = {"rabbit", "kombu", "amqp"}
TLS_SCHEMES = {"amqps", "rabbits"}
DEFAULT_PORT, DEFAULT_TLS_PORT = 5672, 5671
DEFAULT_USER = DEFAULT_PASSWORD = "guest"
DEFAULT_VIRTUAL_HOST = "/"
TRUE_WORDS = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """One broker of a transport URL, with everything needed to open a connection."""

    host: str
    port: int
    login: str
    password: str
    virtual_host: str
    tls: bool

    def __str__(self) -> str:
        """The address without its password, for logs and /readyz."""
        scheme = "amqps" if self.tls else "amqp"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{self.login}@{host}:{self.port}/{self.virtual_host}"


def redact(url: str) -> str:
    """The URL with every password replaced, so that an error can quote it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<not a URL>"
    netloc, slash, tail = rest.partition("/")
    hosts = []
    for host in netloc.split(","):
        credentials, at, address = host.rpartition("@")
        if at and ":" in credentials:
            credentials = credentials.split(":", 1)[0] + ":***"
        hosts.append(f"{credentials}{at}{address}")
    return f"{scheme}://{','.join(hosts)}{slash}{tail}"


def parse_transport_url(url: str) -> list[BrokerAddress]:
    """Every broker the URL names, in its order (the consumer tries them in turn)."""
    try:
        return _parse(url)
    except ValueError as exc:
        raise InvalidSettings([f"notification transport URL {redact(url)}: {exc}"]) from None


def _parse(url: str) -> list[BrokerAddress]:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in PLAIN_SCHEMES | TLS_SCHEMES:
        raise ValueError(f"unsupported transport {scheme or '(none)'!r}: use rabbit:// or amqp://")
    query = parse_qs(parts.query)
    tls = scheme in TLS_SCHEMES or query.get("ssl", ["0"])[-1].lower() in TRUE_WORDS
    virtual_host = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    netloc = url.strip().partition("://")[2].partition("/")[0].partition("?")[0]
    brokers = [
        _parse_host(host, virtual_host or DEFAULT_VIRTUAL_HOST, tls)
        for host in netloc.split(",")
        if host
    ]
    if not brokers:
        raise ValueError("names no host")
    return brokers


def _parse_host(text: str, virtual_host: str, tls: bool) -> BrokerAddress:
    login = password = None
    address = text
    if "@" in text:
        credentials, address = text.rsplit("@", 1)
        login, has_password, secret = credentials.partition(":")
        login = unquote(login)
        password = unquote(secret) if has_password else None
    host, port_text = _split_port(address)
    if not host:
        raise ValueError(f"a host entry has no host name: {redact('x://' + text)[4:]!r}")
    try:
        port = int(port_text) if port_text else (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
    except ValueError:
        raise ValueError(f"port {port_text!r} of host {host!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} of host {host!r} is out of range")
    return BrokerAddress(
        host=host,
        port=port,
        login=login or DEFAULT_USER,
        password=password or DEFAULT_PASSWORD,
        virtual_host=virtual_host,
        tls=tls,
    )


def _split_port(address: str) -> tuple[str, str]:
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError(f"invalid IPv6 address {address!r}")
        return address[1:end], address[end + 1 :].partition(":")[2]
    host, _, port = address.partition(":")
    return host, port
