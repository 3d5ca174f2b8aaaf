"""What the client scripts print: their readers' results as JSON, bytes kept as bytes.

Shared by the scripts (system Python, for cloud-init) and the tests that decode them.
"""

from __future__ import annotations

import base64
import json
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
