"""The IMDSv2 hop limit: the token PUT's answer leaves with IP TTL (IPv6: hop limit)
`token_hop_limit`, so a token cannot be fetched from further away (a container behind a
bridge, a forwarding proxy), as EC2's HttpPutResponseHopLimit does.

The limit stays on the connection's socket until the next request arrives on it: TCP sends
with the socket's current TTL, retransmissions included, so lifting it as soon as the answer
is written would let a retransmitted answer through. A client that sends another request has
received the answer (HTTP/1.1 without pipelining, which no metadata client uses); before that
request is answered the socket's own values are put back.
"""

from __future__ import annotations

import logging
import socket

from aiohttp import web

log = logging.getLogger(__name__)

# (level, option) per socket family: an IPv6 socket also carries IPv4-mapped peers.
_OPTIONS = {
    socket.AF_INET: ((socket.IPPROTO_IP, socket.IP_TTL),),
    socket.AF_INET6: (
        (socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS),
        (socket.IPPROTO_IP, socket.IP_TTL),
    ),
}
Saved = tuple[tuple[int, int, int], ...]


def _socket_of(request: web.BaseRequest) -> socket.socket | None:
    transport = request.transport
    sock = None if transport is None else transport.get_extra_info("socket")
    return sock if sock is not None and sock.family in _OPTIONS else None


class HopLimiter:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        # socket file descriptor -> the values to put back. An entry left by a connection
        # that closed is harmless: its number's next socket gets values it already has.
        # Bounded by the process's open files.
        self._limited: dict[int, Saved] = {}

    @property
    def idle(self) -> bool:
        """No socket carries a limit that must be put back before its next answer."""
        return not self._limited

    def limit_answer(self, request: web.BaseRequest) -> None:
        """What is sent on this request's connection from now on leaves with the limit."""
        sock = _socket_of(request)
        if sock is None:
            return
        fd = sock.fileno()
        saved = []
        for level, option in _OPTIONS[sock.family]:
            try:
                saved.append((level, option, sock.getsockopt(level, option)))
                sock.setsockopt(level, option, self.limit)
            except OSError as exc:  # IP_TTL on an IPv6-only socket of some kernels
                log.debug("hop limit: option %s/%s not set: %s", level, option, exc)
        # A second token PUT on the same connection keeps the values saved first.
        self._limited.setdefault(fd, tuple(saved))

    def restore(self, request: web.BaseRequest) -> None:
        """Before a later answer on a limited connection: the socket's values put back."""
        if not self._limited:
            return
        sock = _socket_of(request)
        if sock is None:
            return
        saved = self._limited.pop(sock.fileno(), None)
        for level, option, value in saved or ():
            try:
                sock.setsockopt(level, option, value)
            except OSError as exc:
                log.debug("hop limit: option %s/%s not restored: %s", level, option, exc)
