"""A minimal HTTP/1.1 GET client for the boot storms: prebuilt request bytes, one request
in flight a connection, responses framed by Content-Length, keep-alive, and a new
connection when the server closes one (gunicorn's sync worker closes after every answer).

It exists so that the load driver is not what a storm measures: aiohttp's client spends
more of the shared cores walking a request than the service spends answering a warm one.
Each connection asks a `Feed` for its next request and tells it each answer's outcome
(a 200, or not); the feeds (`loadtests/storm.py`) hold the arrival patterns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Callable, Mapping
from typing import Protocol, cast
from urllib.parse import urlsplit

CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
CLOSES = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)
HEAD_END = b"\r\n\r\n"


class Feed(Protocol):
    """One connection's source of requests: the next request's bytes (None: no more), then
    that request's outcome, before the next is taken."""

    def take(self) -> bytes | None: ...

    def answered(self, ok: bool) -> None: ...


class Target:
    """Where the requests go, and how a request for one path with one guest's headers is
    spelt (built once per guest, not per request)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.base = parts.path.rstrip("/")
        self.authority = parts.netloc

    def prefixes(self, paths: tuple[str, ...] | list[str]) -> list[bytes]:
        return [
            f"GET {self.base}{path} HTTP/1.1\r\nHost: {self.authority}\r\n".encode()
            for path in paths
        ]

    @staticmethod
    def requests(prefixes: list[bytes], headers: Mapping[str, str]) -> tuple[bytes, ...]:
        tail = (
            "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        ).encode()
        return tuple(prefix + tail for prefix in prefixes)


class _Wire(asyncio.Protocol):
    """One TCP connection: sends the feed's request, reads the answer, sends the next."""

    def __init__(self, feed: Feed, ended: asyncio.Future[bool]) -> None:
        self.feed = feed
        self.ended = ended  # True: the server closed it and the feed may have more
        self.buffer = bytearray()
        self.waiting = False
        self.size = -1  # the answer's whole length, once its head has been read
        self.closes = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._send_next()

    def _send_next(self) -> None:
        assert self.transport is not None
        request = self.feed.take()
        if request is None:
            self._end(more=False)
            return
        self.waiting = True
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while self.waiting:
            if self.size < 0 and not self._read_head():
                return
            if len(buffer) < self.size:
                return
            ok = buffer[9:12] == b"200"
            del buffer[: self.size]
            self.size, self.waiting = -1, False
            self.feed.answered(ok)
            if self.closes:
                self._end(more=True)
                return
            self._send_next()

    def _read_head(self) -> bool:
        """The answer's length from its head; False while the head is incomplete. An answer
        without Content-Length fails and ends the connection (this client reads no other
        framing)."""
        end = self.buffer.find(HEAD_END)
        if end < 0:
            return False
        length = CONTENT_LENGTH.search(self.buffer, 0, end)
        if length is None:
            self.waiting = False
            self.feed.answered(False)
            self._end(more=True)
            return False
        self.size = end + len(HEAD_END) + int(length.group(1))
        self.closes = CLOSES.search(self.buffer, 0, end) is not None or self.buffer[5:8] == b"1.0"
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiting:  # dropped before its answer: that request failed
            self.waiting = False
            self.feed.answered(False)
        self._end(more=True)

    def _end(self, more: bool) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if not self.ended.done():
            self.ended.set_result(more)


async def drive(target: Target, feed: Feed) -> None:
    """Run one connection's feed to its end, connecting again whenever the server closes
    (or refuses) a connection while the feed still has requests."""
    loop = asyncio.get_running_loop()
    while True:
        ended: asyncio.Future[bool] = loop.create_future()
        try:
            transport, _ = await loop.create_connection(
                functools.partial(_Wire, feed, ended), target.host, target.port
            )
        except OSError:
            if feed.take() is None:  # a refused connection fails the request it was for
                return
            feed.answered(False)
            await asyncio.sleep(0.01)
            continue
        try:
            more = await ended
        finally:
            with contextlib.suppress(Exception):
                transport.abort()
        if not more:
            return


def run_event_loop() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when installed (as `metadata serve` and the floor use), else asyncio's:
    for asyncio.Runner(loop_factory=...)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop
