"""Real `metadata serve` processes for tests that need more than one process."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADMIN_TOKEN = "process-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    guest_port: int
    admin_port: int
    log: Path
    headers: dict[str, str] = field(default_factory=dict)

    def admin(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, bytes]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.admin_port}{path}",
            method=method,
            data=data,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        return _send(request)

    def guest(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.guest_port}{path}", headers=headers or {}
        )
        return _send(request)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def _send(request: urllib.request.Request) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def start_server(
    workdir: Path, env: dict[str, str], name: str = "server", args: Sequence[str] = ()
) -> ServerProcess:
    """Start one server on free loopback ports and wait until /healthz answers; `args` go
    to `metadata serve` (e.g. --demo)."""
    guest_port, admin_port = free_port(), free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_")}
    full_env.update(
        {
            "METADATA_ADMIN_TOKEN": ADMIN_TOKEN,
            "METADATA_LISTEN": f"127.0.0.1:{guest_port}",
            "METADATA_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
            "METADATA_TRUSTED_PROXIES": "127.0.0.0/8",
        }
    )
    full_env.update(env)
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "metadata", "serve", *args]
        process = subprocess.Popen(
            command, cwd=workdir, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    server = ServerProcess(process, guest_port, admin_port, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/healthz", timeout=1):
                return server
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not become healthy in 30 s:\n{log.read_text()}")


@contextlib.contextmanager
def redis_replicas(workdir: Path, db_offset: int) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers sharing one SQLite file and one Redis database of this test process's
    own (`db_offset` keeps modules apart), emptied first: no other run's keys."""
    from tests import backends

    redis_url = backends.require_redis()
    db = 1 + (os.getpid() + db_offset) % 15
    backends.flush_redis(db)
    env = {
        "METADATA_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/shared.db",
        "METADATA_CACHE_URL": f"{redis_url.rsplit('/', 1)[0]}/{db}",
    }
    first = start_server(workdir, env, "first")
    try:
        second = start_server(workdir, env, "second")
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()
