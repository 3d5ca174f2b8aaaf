"""What the client scripts print: their readers' results as JSON, bytes kept as bytes.

Shared by the scripts (system Python, for cloud-init) and the tests that decode them.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from typing import Any

BYTES = "__bytes_base64__"


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {BYTES: base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(obj: dict[str, Any]) -> Any:
    if set(obj) == {BYTES}:
        return base64.b64decode(obj[BYTES])
    return obj


def dumps(value: Any) -> str:
    return json.dumps(_encode(value))


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_decode)


def write(path: str, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(dumps(value))


class Collected(logging.Handler):
    """cloud-init's log records, kept for the output (what a guest's cloud-init.log says)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def collect_logs() -> Collected:
    """Every log record to stderr and to the returned collector, from DEBUG up."""
    collected = Collected()
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    logging.getLogger().addHandler(collected)
    logging.getLogger().setLevel(logging.DEBUG)
    return collected
