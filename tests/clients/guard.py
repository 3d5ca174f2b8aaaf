"""Confine a metadata client process to loopback, and point 169.254.169.254 at the test server.

Loaded into each client subprocess before the client is imported (see `guarded.py`). It
patches the `socket` module, so it covers everything built on it (urllib3, requests,
asyncio); a C library that opens its own sockets would bypass it, and neither cloud-init
nor botocore does. Standard library only: it runs under the system Python (cloud-init)
as well as the test venv (botocore).

- `connect`/`connect_ex`: 169.254.169.254:80 becomes 127.0.0.1:<guest port>; any other
  destination outside 127.0.0.0/8 and ::1 is refused before the real connect is called,
  so not one packet leaves. IPv4 sockets are first bound to the guest's source address:
  the server identifies the guest by it.
- With METADATA_GUARD_IPV6=1, [fd00:ec2::254]:80 (EC2's IPv6 endpoint) becomes
  [::1]:<guest port> the same way; the guest is then ::1. Off by default: cloud-init also
  tries that address and must fail fast there.
- `sendto`/`sendmsg`: the same refusal for datagrams sent without a connect.
- name resolution: only literal loopback addresses, the literal 169.254.169.254 and
  `localhost` resolve; every other name or address fails at once (cloud-init also tries
  `[fd00:ec2::254]` and `instance-data.`: they must fail fast, not time out).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

METADATA_ADDRESS = "169.254.169.254"
METADATA_ADDRESS_V6 = "fd00:ec2::254"
IPV6_ENV = "METADATA_GUARD_IPV6"
METADATA_PORT = 80
GUEST_PORT_ENV = "METADATA_GUARD_GUEST_PORT"
SOURCE_ENV = "METADATA_GUARD_SOURCE"
INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class GuardRefused(ConnectionRefusedError):
    """A destination outside loopback: refused without touching the network."""

    def __init__(self, what: str) -> None:
        super().__init__(errno.ECONNREFUSED, f"guard: {what} is outside loopback")
        print(f"guard: refused {what}", file=sys.stderr, flush=True)


def _literal(host: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host string spells, or None for a name (which would need DNS)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return None
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def is_allowed_address(host: Any, ipv6_metadata: bool = False) -> bool:
    address = _literal(host)
    metadata = {METADATA_ADDRESS, METADATA_ADDRESS_V6} if ipv6_metadata else {METADATA_ADDRESS}
    return address is not None and (address.is_loopback or str(address) in metadata)


class Guard:
    def __init__(self, guest_port: int, source: str, ipv6_metadata: bool = False) -> None:
        if not ipaddress.ip_address(source).is_loopback:
            raise ValueError(f"source address {source} is not loopback")
        self.guest_port = guest_port
        self.source = source
        self.ipv6_metadata = ipv6_metadata

    def destination(self, sock: socket.socket, address: Any) -> Any:
        """Where a connect or send may really go; raises GuardRefused otherwise."""
        if sock.family == getattr(socket, "AF_UNIX", None):
            return address  # a local socket file: no network involved
        if sock.family not in INET_FAMILIES or not isinstance(address, tuple):
            raise GuardRefused(f"{address!r} (family {sock.family!r})")
        host, port = address[0], address[1]
        literal = _literal(host)
        if literal is not None and str(literal) == METADATA_ADDRESS and port == METADATA_PORT:
            if sock.family != socket.AF_INET:
                raise GuardRefused(f"{host}:{port} on an IPv6 socket")
            return ("127.0.0.1", self.guest_port)
        if (
            self.ipv6_metadata
            and literal is not None
            and str(literal) == METADATA_ADDRESS_V6
            and port == METADATA_PORT
            and sock.family == socket.AF_INET6
        ):
            return ("::1", self.guest_port, 0, 0)
        if literal is None or not literal.is_loopback:
            raise GuardRefused(f"{host}:{port}")
        return address

    def bind_source(self, sock: socket.socket) -> None:
        """Bind an unbound IPv4 socket to the guest's address, as the guest's kernel would."""
        if sock.family == socket.AF_INET and sock.getsockname() == ("0.0.0.0", 0):
            sock.bind((self.source, 0))

    def install(self) -> None:
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        real_sendto = socket.socket.sendto
        real_sendmsg = socket.socket.sendmsg
        real_getaddrinfo = socket.getaddrinfo
        guard = self

        def connect(sock: socket.socket, address: Any) -> None:
            target = guard.destination(sock, address)
            guard.bind_source(sock)
            real_connect(sock, target)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            try:
                target = guard.destination(sock, address)
            except GuardRefused as refused:
                return refused.errno or errno.ECONNREFUSED
            guard.bind_source(sock)
            return real_connect_ex(sock, target)

        def sendto(sock: socket.socket, data: Any, *args: Any) -> int:
            guard.destination(sock, args[-1])
            return real_sendto(sock, data, *args)

        def sendmsg(sock: socket.socket, buffers: Any, *args: Any) -> int:
            if len(args) >= 3 and args[2] is not None:
                guard.destination(sock, args[2])
            return real_sendmsg(sock, buffers, *args)

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host is None or is_allowed_address(host, guard.ipv6_metadata):
                return real_getaddrinfo(host, port, *args, **kwargs)
            if host in ("localhost", b"localhost"):
                return real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
            raise _unresolvable(host)

        def gethostbyname(host: str) -> str:
            if host == "localhost":
                return "127.0.0.1"
            if is_allowed_address(host, guard.ipv6_metadata):
                return str(_literal(host))
            raise _unresolvable(host)

        def gethostbyname_ex(host: str) -> tuple[str, list[str], list[str]]:
            return host, [], [gethostbyname(host)]

        def gethostbyaddr(host: str) -> tuple[str, list[str], list[str]]:
            # A reverse lookup may ask a DNS server: a guarded client makes none.
            raise socket.herror(1, f"guard: no reverse lookup of {host!r}")

        patches: dict[str, Callable[..., Any]] = {
            "connect": connect,
            "connect_ex": connect_ex,
            "sendto": sendto,
            "sendmsg": sendmsg,
        }
        for name, function in patches.items():
            setattr(socket.socket, name, function)
        socket.getaddrinfo = getaddrinfo
        socket.gethostbyname = gethostbyname
        socket.gethostbyname_ex = gethostbyname_ex
        socket.gethostbyaddr = gethostbyaddr


def _unresolvable(host: Any) -> socket.gaierror:
    print(f"guard: refused to resolve {host!r}", file=sys.stderr, flush=True)
    return socket.gaierror(socket.EAI_NONAME, f"guard: {host!r} does not resolve to loopback")


def install_from_environment() -> Guard:
    guard = Guard(
        int(os.environ[GUEST_PORT_ENV]), os.environ[SOURCE_ENV], os.environ.get(IPV6_ENV) == "1"
    )
    guard.install()
    return guard
