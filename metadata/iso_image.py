"""Write an ISO 9660 image (Joliet and Rock Ridge) from files in memory, byte for byte the
same for the same files: every timestamp in it is one fixed instant.

pycdlib is pure Python and reads the clock itself (`time.time()`, `time.localtime()`) for
every volume descriptor and directory record, with no parameter to say otherwise; so the
`time` it sees is replaced by a clock stopped at FIXED_TIME, in UTC (localtime would make
the bytes depend on the machine's time zone).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Mapping
from time import struct_time
from types import ModuleType
from typing import Any

import pycdlib
import pycdlib.dates
import pycdlib.headervd
import pycdlib.pycdlib

# 2000-01-01T00:00:00Z: any fixed instant will do; this one reads as "not a real date".
FIXED_TIME = 946684800.0
# pycdlib's interchange level 4 lifts ISO 9660's d-character and 8.3 rules, so the primary
# names are the real ones (`2018-08-27`, `meta_data.json`), as genisoimage's
# `-allow-lowercase -allow-multidot -l` makes them for Nova.
INTERCHANGE_LEVEL = 4
JOLIET_LEVEL = 3
ROCK_RIDGE = "1.09"
MAX_VOLUME_LABEL = 32


class _StoppedClock:
    """The `time` module as pycdlib uses it, with the clock stopped in UTC."""

    def __init__(self, real: ModuleType) -> None:
        self._real = real

    def time(self) -> float:
        return FIXED_TIME

    def localtime(self, seconds: float | None = None) -> struct_time:
        return time.gmtime(FIXED_TIME if seconds is None else seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


_PYCDLIB_MODULES = (pycdlib.pycdlib, pycdlib.headervd, pycdlib.dates)
_clock_lock = threading.Lock()


def _stop_pycdlib_clock() -> None:
    # Once, for good: pycdlib is used for nothing else here, and swapping back and forth
    # would race between threads building at the same time.
    with _clock_lock:
        for module in _PYCDLIB_MODULES:
            if not isinstance(getattr(module, "time", None), _StoppedClock):
                module.time = _StoppedClock(time)  # type: ignore[attr-defined]


def _directories(paths: list[str]) -> list[str]:
    """Every directory the files need, parents before children."""
    found: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            found.add("/".join(parts[:depth]))
    return sorted(found, key=lambda d: (d.count("/"), d))


def check_relative_path(path: str) -> None:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{path!r}: expected a relative path without empty, . or .. parts")


def build_iso(files: Mapping[str, bytes], volume_label: str, publisher: str = "") -> bytes:
    """An ISO 9660 image holding `files` (relative path -> bytes) under `volume_label`."""
    if not 0 < len(volume_label) <= MAX_VOLUME_LABEL:
        raise ValueError(f"a volume label has 1 to {MAX_VOLUME_LABEL} characters")
    paths = sorted(files)
    for path in paths:
        check_relative_path(path)
    _stop_pycdlib_clock()
    iso = pycdlib.PyCdlib()
    iso.new(
        interchange_level=INTERCHANGE_LEVEL,
        vol_ident=volume_label,
        pub_ident_str=publisher,
        joliet=JOLIET_LEVEL,
        rock_ridge=ROCK_RIDGE,
    )
    try:
        for directory in _directories(paths):
            iso.add_directory(
                "/" + directory, rr_name=directory.rsplit("/", 1)[-1], joliet_path="/" + directory
            )
        for path in paths:
            data = files[path]
            iso.add_fp(
                io.BytesIO(data),
                len(data),
                f"/{path};1",
                rr_name=path.rsplit("/", 1)[-1],
                joliet_path="/" + path,
            )
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()


def read_iso(image: bytes) -> dict[str, bytes]:
    """The files of an image by their Rock Ridge paths (relative): the reverse of build_iso."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    files: dict[str, bytes] = {}
    try:
        for root, _, names in iso.walk(rr_path="/"):
            for name in names:
                rr_path = f"{root.rstrip('/')}/{name}"
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, rr_path=rr_path)
                files[rr_path.lstrip("/")] = out.getvalue()
    finally:
        iso.close()
    return files
