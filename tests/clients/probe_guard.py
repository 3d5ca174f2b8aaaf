"""Probe the guard with spies standing in for the real socket functions.

    python probe_guard.py GUEST_PORT SOURCE   (prints JSON: label -> outcome, calls reached)

The spies replace the socket functions *before* the guard wraps them, so a call that
would reach the network is recorded instead of made (each spy raises or fails). A refusal
that records nothing happened before the real call: no packet could have left.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
from collections.abc import Callable
from typing import Any

import guard

reached: list[list[str]] = []


def spy(name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        shown = args if name == "getaddrinfo" else args[1:]
        reached.append([name, repr(shown)])
        if name == "connect_ex":
            return errno.EHOSTUNREACH
        raise OSError(errno.EHOSTUNREACH, f"spy: the real {name} was reached")

    return call


for function in ("connect", "connect_ex", "sendto", "sendmsg"):
    setattr(socket.socket, function, spy(function))
socket.getaddrinfo = spy("getaddrinfo")
guard.Guard(int(sys.argv[1]), sys.argv[2]).install()
results: dict[str, Any] = {}


def attempt(label: str, action: Callable[[], Any]) -> None:
    before = len(reached)
    try:
        outcome: list[Any] = ["returned", repr(action())]
    except OSError as exc:
        # the guard's own subclass is what clients catch: ConnectionRefusedError
        refused = isinstance(exc, ConnectionRefusedError)
        outcome = ["ConnectionRefusedError" if refused else type(exc).__name__, exc.errno]
    results[label] = {"outcome": outcome, "reached": reached[before:]}


def tcp(family: socket.AddressFamily = socket.AF_INET) -> socket.socket:
    return socket.socket(family, socket.SOCK_STREAM)


def udp() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


attempt("connect 192.0.2.1:80", lambda: tcp().connect(("192.0.2.1", 80)))
attempt("connect_ex 192.0.2.1:80", lambda: tcp().connect_ex(("192.0.2.1", 80)))
attempt("connect 169.254.169.254:8080", lambda: tcp().connect(("169.254.169.254", 8080)))
attempt(
    "connect [fd00:ec2::254]:80", lambda: tcp(socket.AF_INET6).connect(("fd00:ec2::254", 80, 0, 0))
)
attempt("connect by name", lambda: tcp().connect(("instance-data.", 8773)))
attempt("sendto 192.0.2.1:53", lambda: udp().sendto(b"x", ("192.0.2.1", 53)))
attempt("sendmsg 192.0.2.1:53", lambda: udp().sendmsg([b"x"], [], 0, ("192.0.2.1", 53)))
attempt("getaddrinfo instance-data.", lambda: socket.getaddrinfo("instance-data.", 8773))
attempt("getaddrinfo fd00:ec2::254", lambda: socket.getaddrinfo("fd00:ec2::254", 80))
attempt("gethostbyname example.com", lambda: socket.gethostbyname("example.com"))
# Allowed calls reach the spies: proof that the spies sit where the real calls would be.
attempt("getaddrinfo 169.254.169.254", lambda: socket.getaddrinfo("169.254.169.254", 80))
metadata = tcp()
attempt("connect 169.254.169.254:80", lambda: metadata.connect(("169.254.169.254", 80)))
results["metadata source"] = metadata.getsockname()[0]
attempt("connect 127.0.0.1:9", lambda: tcp().connect(("127.0.0.1", 9)))
print(json.dumps(results))
