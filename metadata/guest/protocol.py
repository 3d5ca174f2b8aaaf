"""The guest listener's connection protocol: aiohttp's, with the express lane (express.py)
between its parser and its request queue.

aiohttp's protocol queues every parsed request for a task that builds a request object,
runs the handler in a new task and writes a response object. A warm read needs none of
that: here each parsed request is first offered to the express lane, and when it answers,
its bytes are written at once and the request never reaches the queue. Order is kept: the
lane is asked only while the connection is idle (aiohttp's loop waits for a request and
nothing is queued) and only until the first request it passes on; every later request of
that read goes the full way behind it. A read that waits for the shared coherence (Redis)
holds what arrives behind it until it is answered. A client
that does not read its answers stops getting express ones once the socket's write buffer
fills, so aiohttp's flow control holds it as before.

This leans on aiohttp's protocol internals (its parser, queue and idle waiter); the
version range is pinned in pyproject.toml and tests/test_express.py fails if the lane stops
answering.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.http import HttpVersion11
from aiohttp.streams import EMPTY_PAYLOAD

from metadata.guest.express import Deferred, ExpressLane
from metadata.guest.handover import Handover

LOG = logging.getLogger(__name__)
# Beyond this many unsent bytes on a connection, answers wait for aiohttp's flow control.
WRITE_BUFFER_LIMIT = 64 * 1024
# Requests held behind one waiting for Redis before the connection's reading is paused.
MAX_HELD = 16


class ExpressParser:
    """aiohttp's request parser, handing what the express lane answers to it first."""

    __slots__ = ("_parser", "_protocol")

    def __init__(self, parser: Any, protocol: GuestProtocol) -> None:
        self._parser = parser
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def message_consumed(self) -> None:
        """aiohttp's request loop took a queued request: the connection is busy with it
        until its response is written (GuestProtocol._handle_request)."""
        self._protocol.busy = True
        self._parser.message_consumed()

    def feed_data(self, data: bytes) -> Any:
        messages, upgraded, tail = self._parser.feed_data(data)
        protocol = self._protocol
        if messages:
            if protocol.held is not None:
                protocol.hold(messages)
                return (), upgraded, tail
            if protocol.is_idle():
                messages = protocol.answer_express(messages)
        return messages, upgraded, tail


class GuestProtocol(web.RequestHandler):
    def __init__(
        self,
        manager: web.Server,
        *,
        lane: ExpressLane,
        lane_open: Callable[[], bool],
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, loop=asyncio.get_running_loop(), **kwargs)
        self._lane = lane
        self._lane_open = lane_open
        self._peer = ""
        # aiohttp's request loop has taken a request and not yet written its response
        self.busy = False
        # while a read waits for the shared coherence: it and what arrived behind it
        self.held: list[Any] | None = None
        self._held_paused = False
        # by id() of a queued message: what the lane passes on with it (it is taken as the
        # request is made, while the message is alive, so an id is never reused meanwhile)
        self._handovers: dict[int, Handover] = {}
        self._express_parser = ExpressParser(self._parser, self)
        self._parser = self._express_parser  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) else ""

    async def _handle_request(self, request: Any, start_time: Any, handler: Any) -> Any:
        resp, reset = await super()._handle_request(request, start_time, handler)
        # Written: the lane may answer what arrives next even before aiohttp's loop is
        # back waiting (on a busy machine the client's next request often comes first),
        # unless this connection is closing or a body is still unread behind it.
        if (
            not reset
            and resp.keep_alive
            and not self._close
            and not self._force_close
            and request.content.is_eof()
        ):
            self.busy = False
        return resp, reset

    def is_idle(self) -> bool:
        """Nothing of this connection is queued or being answered."""
        transport, waiter = self.transport, self._waiter
        return (
            self.held is None
            and (not self.busy or (waiter is not None and not waiter.done()))
            and not self._messages
            and transport is not None
            and transport.get_write_buffer_size() < WRITE_BUFFER_LIMIT
            and self._lane_open()
        )

    def answer_express(self, messages: list[Any]) -> list[Any]:
        """Answer the leading requests the lane can; the rest, in order, for the queue."""
        lane, peer, transport = self._lane, self._peer, self.transport
        assert transport is not None  # is_idle() said so
        for index, (message, payload) in enumerate(messages):
            if (
                payload is not EMPTY_PAYLOAD
                or message.should_close
                or message.upgrade
                or message.version != HttpVersion11
            ):
                return messages[index:]
            answer = lane.answer(message.method, message.path, message.headers, peer)
            if answer is None:
                return messages[index:]
            if isinstance(answer, Deferred):
                self._defer(answer, messages[index:])
                return []
            self._sent(transport, answer)
        return []

    def _sent(self, transport: asyncio.Transport, answer: bytes) -> None:
        transport.write(answer)
        self._express_parser._parser.message_consumed()
        self._request_count += 1
        # An answered request counts as activity for the keep-alive timer.
        self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout

    def _defer(self, deferred: Deferred, messages: list[Any]) -> None:
        """Hold this read (the first of `messages`) and everything behind it, and what
        arrives meanwhile, until what it waits for (the shared coherence, identity's read)
        is done."""
        self.held = list(messages)

        def done(future: asyncio.Future[Any]) -> None:
            held, self.held = self.held or [], None
            if self._held_paused:
                self._held_paused = False
                if not self._reading_paused and not self._buffer_paused:
                    self._resume_transport_reading()
            transport = self.transport
            gone = transport is None or self._force_close
            try:
                completion = deferred.complete(future, not gone and self._lane_open())
            except Exception:
                # Never leave the held requests unanswered: the full chain decides them.
                LOG.exception("express lane: a held read failed; the full chain answers it")
                completion = None
            if gone or transport is None:
                return  # the connection went meanwhile
            if isinstance(completion, bytes):
                self._sent(transport, completion)
                held = held[1:]
            elif completion is not None:
                self._handovers[id(held[0][0])] = completion
            self._enqueue(held)

        deferred.future.add_done_callback(done)

    def take_handover(self, message: Any) -> Handover | None:
        """What the lane passes on with this request, when it held it (request factory)."""
        return self._handovers.pop(id(message), None) if self._handovers else None

    def hold(self, messages: Sequence[Any]) -> None:
        """Requests that arrived behind a held read: queued after it, in order. A client
        that keeps sending meanwhile is paused, as aiohttp pauses a full queue."""
        assert self.held is not None
        self.held.extend(messages)
        if len(self.held) >= MAX_HELD and not self._held_paused:
            self._held_paused = True
            self._pause_transport_reading()

    def _enqueue(self, messages: list[Any]) -> None:
        """What aiohttp's data_received does with parsed requests: queue, wake its loop."""
        if not messages:
            return
        self._request_count += len(messages)
        self._messages.extend(messages)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class GuestServer(web.Server):
    """aiohttp's low-level server, making GuestProtocol connections."""

    def __init__(
        self,
        handler: Any,
        *,
        lane: ExpressLane,
        lane_open: Callable[[], bool],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.lane = lane
        self._lane_open = lane_open

    def __call__(self) -> GuestProtocol:
        return GuestProtocol(self, lane=self.lane, lane_open=self._lane_open, **self._kwargs)
