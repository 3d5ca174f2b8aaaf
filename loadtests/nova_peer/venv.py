"""A side virtualenv holding Nova 34.0.0 from PyPI, built once and reused.

The venv lives in a cache folder CI may keep between runs (`$METADATA_CI_CACHE`, else
`~/.cache/metadata-ci/nova-34.0.0`). A file lock makes parallel test processes build it
once; a marker written after the last step tells a complete build from a half one, which is
thrown away and rebuilt.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

NOVA_VERSION = "34.0.0"
# What Nova's metadata app and nova-manage need beyond nova itself: a WSGI server, the
# MySQL driver its URLs name (mysql+pymysql://), and sqlalchemy's SQLite support is built in.
PACKAGES = (f"nova=={NOVA_VERSION}", "gunicorn", "PyMySQL")
MARKER = "complete"
BUILD_TIMEOUT_S = 1200


class NovaVenvError(RuntimeError):
    """The side venv could not be built (PyPI unreachable, an install failed)."""


def cache_folder() -> Path:
    root = os.environ.get("METADATA_CI_CACHE")
    if root:
        return Path(root) / f"nova-{NOVA_VERSION}"
    return Path.home() / ".cache" / "metadata-ci" / f"nova-{NOVA_VERSION}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def is_complete(venv: Path) -> bool:
    return (venv / MARKER).is_file() and venv_python(venv).exists()


@contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _index_host() -> tuple[str, int]:
    """The package index pip would ask first (PIP_INDEX_URL / UV_INDEX_URL, else PyPI)."""
    url = (
        os.environ.get("UV_INDEX_URL")
        or os.environ.get("PIP_INDEX_URL")
        or "https://pypi.org/simple"
    )
    parts = urlsplit(url)
    return parts.hostname or "pypi.org", parts.port or (443 if parts.scheme == "https" else 80)


def pypi_reachable() -> bool:
    host, port = _index_host()
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def _run(command: list[str], log: Path) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S, check=False
        )
    if result.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
        raise NovaVenvError(f"{command[0]} failed ({result.returncode}); see {log}:\n{tail}")


def build_log(venv: Path) -> Path:
    return venv.parent / f"{venv.name}.build.log"


def find_uv() -> str | None:
    """uv on PATH, or beside the running Python (installed into the project's venv)."""
    beside = Path(sys.executable).with_name("uv")
    return shutil.which("uv") or (str(beside) if beside.exists() else None)


def _build(venv: Path) -> None:
    if venv.exists():
        shutil.rmtree(venv)  # a half build: no marker
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = build_log(venv)
    log.write_text("")
    uv = find_uv()
    if uv:
        _run([uv, "venv", "--python", sys.executable, str(venv)], log)
        _run([uv, "pip", "install", "--python", str(venv_python(venv)), *PACKAGES], log)
    else:
        _run([sys.executable, "-m", "venv", str(venv)], log)
        _run([str(venv_python(venv)), "-m", "pip", "install", "--quiet", *PACKAGES], log)
    # prove the parts the harness uses import, before calling the build complete
    _run([str(venv_python(venv)), "-c", "import nova.wsgi, gunicorn, pymysql"], log)
    (venv / MARKER).write_text(
        f"nova=={NOVA_VERSION} built {time.strftime('%FT%TZ', time.gmtime())}\n"
    )


def ensure_nova_venv() -> Path:
    """The side venv's folder, building it first when no complete build is there."""
    venv = cache_folder()
    if is_complete(venv):
        return venv
    with _build_lock(venv):
        if is_complete(venv):  # another process built it while we waited
            return venv
        if not pypi_reachable():
            host, port = _index_host()
            raise NovaVenvError(
                f"cannot build the Nova {NOVA_VERSION} venv in {venv}: "
                f"the package index {host}:{port} is unreachable"
            )
        _build(venv)
    return venv
