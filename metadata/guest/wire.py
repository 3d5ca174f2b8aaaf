"""HTTP/1.1 answers as bytes, for the express lane (express.py): the status line and the
headers of a warm answer are built once, when it is first rendered; a request adds only
the Date line and the body.

The headers are those aiohttp's `web.Response` sends for the same answer (Content-Type,
ETag where the row has one, Content-Length, Date, Server), so a guest cannot tell which
way its answer went.
"""

from __future__ import annotations

import time
from email.utils import formatdate

from aiohttp.http import SERVER_SOFTWARE

_SERVER_LINE = f"Server: {SERVER_SOFTWARE}\r\n\r\n".encode()


def answer_head(content_type: str, etag: str | None) -> bytes:
    """Everything before Content-Length: the status line, the type and the ETag."""
    lines = ["HTTP/1.1 200 OK", f"Content-Type: {content_type}"]
    if etag is not None:
        lines.append(f"ETag: {etag}")
    return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")


class DateLine:
    """`Date:` as RFC 9110 wants it, formatted once a second."""

    __slots__ = ("_second", "_tail")

    def __init__(self) -> None:
        self._second = -1
        self._tail = b""

    def tail(self) -> bytes:
        """The end of the head: Date and Server lines and the blank line."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._tail = f"\r\nDate: {formatdate(now, usegmt=True)}\r\n".encode() + _SERVER_LINE
        return self._tail


def response_bytes(head: bytes, date: DateLine, body: bytes) -> bytes:
    return b"".join((head, str(len(body)).encode(), date.tail(), body))
