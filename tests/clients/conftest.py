"""A real `metadata serve` process with one guest instance, and a way to run guarded clients.

The guest is 127.0.0.23: the whole of 127.0.0.0/8 is loopback on Linux, so a client bound to
that address is identified by its source address exactly as a VM is, with no
X-Forwarded-For and no trusted proxy involved.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import backends
from tests.clients import client_output
from tests.documents import sample_document

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GUEST_ADDRESS = "127.0.0.23"
ADMIN_TOKEN = "clients-admin-token-0123456789"
CLIENT_TIMEOUT = 60
# Debian installs cloud-init for the distribution's interpreter, not for virtualenvs.
SYSTEM_PYTHON = os.environ.get("METADATA_TEST_CLOUD_INIT_PYTHON", "/usr/bin/python3")
# Gzipped, as users often send it: not UTF-8, so only a byte-exact path gets it through.
USER_DATA = gzip.compress(b"#cloud-config\nhostname: client-test\nruncmd: [[true]]\n", mtime=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def guest_document() -> dict[str, Any]:
    """Two ports: the first holds the guest's loopback address (how it is identified), the
    second a private network, so listings and network_data have more than one entry."""
    return sample_document(
        23,
        hostname="client-test",
        name="client test",
        availability_zone="nova-1a",
        ec2_id="i-0123456789abcdef0",
        launch_index=2,
        security_groups=["default", "web"],
        block_device_mapping={"ami": "vda", "root": "/dev/vda", "ephemeral0": "/dev/vdb"},
        metadata={"role": "web", "tier": "front"},
        keys=[
            {"name": "k1", "type": "ssh", "data": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI k1"},
            {"name": "k2", "type": "ssh", "data": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB k2"},
        ],
        ports=[
            {
                "id": "port-a-0123456789",
                "mac": "fa:16:3e:00:17:01",
                "network_id": "net-loop",
                "mtu": 1450,
                "fixed_ips": [
                    {
                        "address": GUEST_ADDRESS,
                        "cidr": "127.0.0.0/8",
                        "gateway": "127.0.0.1",
                        "dns": ["127.0.0.53"],
                        "routes": [{"cidr": "192.0.2.0/24", "gateway": "127.0.0.254"}],
                    }
                ],
                "floating_ips": ["203.0.113.23"],
            },
            {
                "id": "port-b-0123456789",
                "mac": "fa:16:3e:00:17:02",
                "network_id": "net-data",
                "mtu": 9000,
                "fixed_ips": [
                    {"address": "10.23.0.5", "cidr": "10.23.0.0/24", "dns": ["10.23.0.2"]}
                ],
                "floating_ips": [],
            },
        ],
        user_data=base64.b64encode(USER_DATA).decode(),
        vendor_data={"cloud": "test", "nested": {"list": [1, 2], "flag": True}},
    )


@dataclass(frozen=True, slots=True)
class RunningServer:
    guest_port: int
    admin_port: int
    workdir: Path
    # the document as PUT, and as the admin API stored it (derived fields filled in)
    document: dict[str, Any]
    stored: dict[str, Any]

    @property
    def guest_url(self) -> str:
        return f"http://127.0.0.1:{self.guest_port}"


def _admin_request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def _wait_healthy(process: subprocess.Popen[bytes], admin_port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"metadata serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/healthz", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    pytest.fail(f"metadata serve did not become healthy in 30 s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def metadata_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("metadata-server")
    guest_port, admin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_")}
    env["METADATA_ADMIN_TOKEN"] = ADMIN_TOKEN
    log = workdir / "server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "metadata",
                "serve",
                "--listen",
                f"127.0.0.1:{guest_port}",
                "--admin-listen",
                f"127.0.0.1:{admin_port}",
                "--database-url",
                f"sqlite+aiosqlite:///{workdir}/m.db",
            ],
            cwd=workdir,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(process, admin_port, log)
        document = guest_document()
        status, stored = _admin_request(
            admin_port, "PUT", f"/v1/instances/{document['uuid']}", document
        )
        assert status == 201, stored
        yield RunningServer(guest_port, admin_port, workdir, document, stored)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True, slots=True)
class ClientRun:
    output: Any
    stderr: str

    def context(self) -> str:
        """The tail of the client's log, for assertion messages."""
        return self.stderr[-6000:]


def client_environment(server: RunningServer, home: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no proxies (requests and botocore honour *_proxy), no AWS_*
    settings from the developer's shell, the guard's port and source address."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "NO_PROXY": "*",
        "PYTHONDONTWRITEBYTECODE": "1",
        "METADATA_GUARD_GUEST_PORT": str(server.guest_port),
        "METADATA_GUARD_SOURCE": GUEST_ADDRESS,
    }
    env.update(extra)
    return env


def run_client(
    python: str, script: str, *args: str, server: RunningServer, tmp_path: Path, **env: str
) -> ClientRun:
    """Run a client script under the guard; its results come back decoded."""
    output = tmp_path / f"{Path(script).stem}.json"
    completed = subprocess.run(
        [python, str(HERE / "guarded.py"), str(HERE / script), *args, str(output)],
        env=client_environment(server, tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, f"{script} failed:\n{completed.stderr[-6000:]}"
    return ClientRun(client_output.loads(output.read_text()), completed.stderr)


@pytest.fixture(scope="session")
def system_python_with_cloud_init() -> str:
    probe = (
        subprocess.run(
            [SYSTEM_PYTHON, "-c", "import cloudinit.sources.helpers.openstack"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if os.path.exists(SYSTEM_PYTHON)
        else None
    )
    if probe is None or probe.returncode != 0:
        backends.unavailable("cloud-init is not installed (apt-get install cloud-init)")
    return SYSTEM_PYTHON
