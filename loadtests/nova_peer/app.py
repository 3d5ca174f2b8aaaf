"""Nova's own metadata API (nova-api-metadata's WSGI app) under gunicorn, one sync worker,
on 127.0.0.1: the oracle our service is compared with."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from loadtests.nova_peer.cloud import NovaCloud
from loadtests.nova_peer.novaconf import write_override

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0


class NovaAppError(RuntimeError):
    """Nova's metadata app did not start."""


@dataclass
class NovaMetadataApp:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "".join(self.log_path.read_text(errors="replace").splitlines(True)[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to gunicorn's arbiter (it stops its worker), then SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT_S)

    def __enter__(self) -> NovaMetadataApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_answering(app: NovaMetadataApp) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.process.poll() is not None:
            raise NovaAppError(
                f"Nova's metadata app exited {app.process.returncode}:\n{app.log_tail()}"
            )
        try:
            with urllib.request.urlopen(app.base_url + "/", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    app.stop()
    raise NovaAppError(
        f"Nova's metadata app did not answer in {START_TIMEOUT_S:.0f} s:\n{app.log_tail()}"
    )


def start_nova_metadata(
    cloud: NovaCloud,
    port: int | None = None,
    *,
    cache_seconds: int = 15,
    api_options: Mapping[str, object] | None = None,
    extra_conf: str = "",
) -> NovaMetadataApp:
    """Start it and wait until it answers `GET /`; `stop()` (or `with`) ends it.

    `cache_seconds` is Nova's `[api] metadata_cache_expiration` (0 turns its cache off);
    `api_options` are more `[api]` options (e.g. DynamicJSON's targets) for this app only,
    `extra_conf` more sections (nova.conf text)."""
    port = port or free_port()
    override = write_override(
        cloud.folder,
        f"app-{port}.conf",
        "api",
        metadata_cache_expiration=cache_seconds,
        **(api_options or {}),
    )
    if extra_conf:
        override.write_text(override.read_text() + extra_conf)
    log_path = cloud.folder / f"nova-metadata-{port}.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))},
        "OS_NOVA_CONFIG_DIR": str(cloud.folder),
        "OS_NOVA_CONFIG_FILES": f"api-paste.ini;nova.conf;{override.name}",
        "NOVA_PEER_SECURITY_GROUPS": str(cloud.security_groups_file),
    }
    command = [
        str(cloud.venv / "bin" / "gunicorn"),
        "--workers",
        "1",
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "60",
        "--log-level",
        "warning",
        "--chdir",
        str(Path(__file__).parent),
        "nova_wsgi:application",
    ]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    app = NovaMetadataApp(process, port, log_path)
    _wait_until_answering(app)
    cloud._closers.append(app)
    return app
