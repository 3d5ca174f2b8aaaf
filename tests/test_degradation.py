"""Outages of the database and of Redis, against real servers this module starts and kills:
a private PostgreSQL cluster and a private redis-server, each on a free loopback port, and
`metadata serve` processes in front of them.

What must hold: cached answers go on being served while the database is down (for at most
stale_if_error seconds when identity itself needs the database), the rest gets 503 with
Retry-After; a Redis outage fails no guest request; both recover by themselves.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import backends
from tests.documents import guest_headers, sample_document
from tests.servers import ServerProcess, free_port, start_server

pytestmark = pytest.mark.redis
STALE_IF_ERROR = 5.0


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    # Debian keeps the server binaries off PATH, one directory per major version.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PrivatePostgres:
    """A throwaway cluster in a temporary directory, started and stopped at will."""

    def __init__(self) -> None:
        initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            backends.unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        assert initdb is not None and pg_ctl is not None
        self.pg_ctl = pg_ctl
        # PostgreSQL refuses to run as root: run it as the postgres user, in a directory it
        # may enter (pytest's tmp_path is private to root).
        self.user_prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.root = Path(tempfile.mkdtemp(prefix="md-pg-"))
        self.root.chmod(0o755)
        if self.user_prefix:
            shutil.chown(self.root, "postgres")
        self.port = free_port()
        self.data = self.root / "data"
        self._run(
            [
                initdb,
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(
            [*self.user_prefix, *command], capture_output=True, text=True, timeout=60, cwd=self.root
        )
        assert result.returncode == 0, f"{command[0]}: {result.stdout}{result.stderr}"

    def is_running(self) -> bool:
        return backends.port_open("127.0.0.1", self.port)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            [
                self.pg_ctl,
                "-D",
                str(self.data),
                "-w",
                "-t",
                "30",
                "-o",
                options,
                "-l",
                str(self.root / "server.log"),
                "start",
            ]
        )

    def kill(self) -> None:
        """Immediate shutdown: every backend dies at once, as in a crash."""
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def remove(self) -> None:
        if self.is_running():
            self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not backends.port_open("127.0.0.1", self.port):
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not listen within 10 s"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def keys(self, pattern: str = "md*") -> list[bytes]:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            return list(client.keys(pattern))
        finally:
            client.close()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        backends.unavailable("redis-server is not installed")
    server = PrivateRedis(free_port())
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def both_up(
    postgres: PrivatePostgres, redis_server: PrivateRedis, shared_server: ServerProcess
) -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    """Each test starts with both backends running, and leaves them so even if it failed
    half way through an outage."""
    yield postgres, redis_server
    if not postgres.is_running():
        postgres.start()
    if redis_server.process is None:
        redis_server.start()


def start(workdir: Path, database_url: str, cache_url: str) -> ServerProcess:
    env = {
        "METADATA_DATABASE_URL": database_url,
        "METADATA_CACHE_URL": cache_url,
        "METADATA_RATE_LIMIT": "off",
        "METADATA_LOG_FORMAT": "text",
        "METADATA_STALE_IF_ERROR": str(STALE_IF_ERROR),
    }
    return start_server(workdir, env)


@pytest.fixture(scope="module")
def shared_server(
    postgres: PrivatePostgres, redis_server: PrivateRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server for the tests below (starting one is slow on a loaded machine); each
    test uses instances of its own and leaves both backends running and in use."""
    redis_server.start()
    server = start(tmp_path_factory.mktemp("degradation"), postgres.url, redis_server.url)
    try:
        yield server
    finally:
        server.stop()


def get(server: ServerProcess, path: str, n: int) -> tuple[int, dict[str, str], bytes]:
    """A guest read for instance n: status, headers and body."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.guest_port}{path}", headers=guest_headers(n)
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def readyz(server: ServerProcess) -> tuple[int, bytes]:
    return server.admin("GET", "/readyz")


def put(server: ServerProcess, n: int, **overrides: object) -> None:
    doc = sample_document(n, **overrides)
    status, body = server.admin("PUT", f"/v1/instances/{doc['uuid']}", doc)
    assert status in (200, 201), body


def wait_until_redis_is_used(server: ServerProcess, redis_server: PrivateRedis, n: int) -> None:
    """Guest requests go on (each must succeed) until the server uses Redis again for who
    is asking: address owners (md:a:*) are written by guest identity only; the statistics
    flusher and the retried news of a write made during the outage write other keys, at
    their own pace."""
    deadline = time.monotonic() + 20
    while not redis_server.keys("md:a:*"):
        assert time.monotonic() < deadline, "Redis not used again within 20 s"
        assert get(server, "/latest/meta-data/hostname", n)[0] == 200
        time.sleep(0.2)


def test_database_down_serves_cached_answers_and_503_for_the_rest_until_it_returns(
    both_up: tuple[PrivatePostgres, PrivateRedis], shared_server: ServerProcess
) -> None:
    postgres, _ = both_up
    server = shared_server
    put(server, 101)
    put(server, 102)
    assert get(server, "/latest/meta-data/hostname", 101)[::2] == (200, b"web-101")

    postgres.kill()
    # identity from Redis, the answer from the process: no database needed
    assert get(server, "/latest/meta-data/hostname", 101)[::2] == (200, b"web-101")
    for path, n in (("/latest/user-data", 101), ("/latest/meta-data/hostname", 102)):
        began = time.monotonic()
        status, headers, _ = get(server, path, n)
        assert (status, headers.get("Retry-After")) == (503, "1"), (path, n)
        assert time.monotonic() - began < 3, "a dead database must not hold a guest"
    status, body = readyz(server)
    assert status == 503 and b"database" in body

    postgres.start()
    # the very first requests after the restart succeed: dead pooled connections are
    # discarded by the pool itself
    assert get(server, "/latest/meta-data/hostname", 102)[::2] == (200, b"web-102")
    assert get(server, "/latest/user-data", 101)[0] == 200
    assert readyz(server)[0] == 200


def test_a_database_restart_between_requests_costs_no_failed_request(
    both_up: tuple[PrivatePostgres, PrivateRedis], shared_server: ServerProcess
) -> None:
    postgres, _ = both_up
    server = shared_server
    put(server, 103)
    assert get(server, "/latest/meta-data/hostname", 103)[0] == 200  # pooled connections

    postgres.kill()
    postgres.start()
    # Nothing asked in between, so no error told the pools: both must notice by themselves.
    assert get(server, "/latest/user-data", 103)[0] == 200
    put(server, 103, hostname="after-restart")
    assert get(server, "/latest/meta-data/hostname", 103)[::2] == (200, b"after-restart")


def test_with_redis_and_the_database_down_cached_answers_are_served_for_stale_if_error(
    both_up: tuple[PrivatePostgres, PrivateRedis], shared_server: ServerProcess
) -> None:
    postgres, redis_server = both_up
    server = shared_server
    put(server, 104)
    put(server, 105)
    assert get(server, "/latest/meta-data/hostname", 104)[0] == 200

    redis_server.kill()
    confirmed_before = time.monotonic()
    # identity from the database now: the last confirmation stale_if_error counts from
    assert get(server, "/latest/meta-data/hostname", 104)[::2] == (200, b"web-104")
    postgres.kill()
    status, _, body = get(server, "/latest/meta-data/hostname", 104)
    assert time.monotonic() - confirmed_before < STALE_IF_ERROR, "too slow to tell"
    assert (status, body) == (200, b"web-104")
    # never resolved by this process: nothing to fall back on
    status, headers, _ = get(server, "/latest/meta-data/hostname", 105)
    assert (status, headers.get("Retry-After")) == (503, "1")

    deadline = confirmed_before + STALE_IF_ERROR + 10
    while (status := get(server, "/latest/meta-data/hostname", 104)[0]) == 200:
        assert time.monotonic() < deadline, "still served long after stale_if_error"
        time.sleep(0.2)
    assert status == 503
    # the bound is an age since the last confirmation, never less
    assert time.monotonic() - confirmed_before >= STALE_IF_ERROR
    assert "stale_if_error" in server.log.read_text()

    postgres.start()
    redis_server.start()
    assert get(server, "/latest/meta-data/hostname", 104)[::2] == (200, b"web-104")
    assert get(server, "/latest/meta-data/hostname", 105)[::2] == (200, b"web-105")
    wait_until_redis_is_used(server, redis_server, 104)


def test_redis_unreachable_at_start_the_service_serves_and_uses_it_once_it_appears(
    both_up: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path
) -> None:
    postgres, _ = both_up
    late_redis = PrivateRedis(free_port())  # nothing listens there yet
    server = start(tmp_path, postgres.url, late_redis.url)
    try:
        put(server, 106)
        for path in (
            "/latest/meta-data/hostname",
            "/latest/user-data",
            "/latest/meta-data/hostname",
        ):
            assert get(server, path, 106)[0] == 200
        assert "Redis" in server.log.read_text() and "WARNING" in server.log.read_text()
        status, body = readyz(server)
        assert status == 503 and b"cache" in body

        late_redis.start()
        wait_until_redis_is_used(server, late_redis, 106)
        assert readyz(server)[0] == 200
    finally:
        server.stop()
        late_redis.kill()


def test_redis_killed_mid_run_fails_no_guest_request_and_is_used_again(
    both_up: tuple[PrivatePostgres, PrivateRedis], shared_server: ServerProcess
) -> None:
    _, redis_server = both_up
    server = shared_server
    put(server, 107)
    put(server, 108)
    assert get(server, "/latest/meta-data/hostname", 107)[0] == 200
    assert redis_server.keys()

    redis_server.kill()
    for _ in range(3):
        assert get(server, "/latest/meta-data/hostname", 107)[::2] == (200, b"web-107")
        assert get(server, "/latest/meta-data/hostname", 108)[::2] == (200, b"web-108")
        assert get(server, "/openstack/latest/meta_data.json", 108)[0] == 200
    # a write during the outage is seen by the next read: generations come from the database
    put(server, 107, hostname="renamed-107")
    assert get(server, "/latest/meta-data/hostname", 107)[::2] == (200, b"renamed-107")
    assert "Redis" in server.log.read_text()
    status, body = readyz(server)
    assert status == 503 and b"cache" in body

    redis_server.start()
    # a fresh Redis (no persistence): no address owner in it until a guest asks
    assert not redis_server.keys("md:a:*")
    wait_until_redis_is_used(server, redis_server, 107)
    assert get(server, "/latest/meta-data/hostname", 107)[::2] == (200, b"renamed-107")
    assert readyz(server)[0] == 200
