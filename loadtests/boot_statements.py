"""SQL statements per cloud-init boot, counted by PostgreSQL itself (pg_stat_statements).

    python -m loadtests.boot_statements [--boots 6] [--learn 4]

Starts a private PostgreSQL cluster (Debian's binaries, a temporary directory, a free port,
pg_stat_statements preloaded), a `metadata serve` on it, seeds instances through the admin
API and, for each boot sequence (cloud-init's OpenStack boot on the `latest` trees and on
dated versions: listing, five files, the EC2 crawl), lets the service learn it from a few
boots, then for each identity (signed headers, source address) and each arrival pattern
(in order on one connection; all at once, a connection each) resets the server's statement
statistics and replays the boot for fresh instances cold, then once more warm. It prints the
statements the database executed per boot (pg_stat_statements `calls`, transaction framing
included) next to the service's own count. Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loadtests.cloud_init import DATED_BOOT, LATEST_BOOT
from metadata.guest.identify import sign
from tests.documents import guest_headers, sample_document

ADMIN_TOKEN = "boot-statements-token-0123456789"
PROXY_SECRET = "boot-statements-proxy-secret"
SEQUENCES = {"latest": LATEST_BOOT, "dated": DATED_BOOT}


def signed_headers(n: int) -> dict[str, str]:
    doc = sample_document(n)
    return {
        "X-Instance-ID": doc["uuid"],
        "X-Tenant-ID": doc["project_id"],
        "X-Instance-ID-Signature": sign(PROXY_SECRET, doc["uuid"]),
    }


IDENTITIES: dict[str, Callable[[int], dict[str, str]]] = {
    "signed": signed_headers,
    "address": guest_headers,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pg_binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        sys.exit(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found[-1]


def as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextlib.contextmanager
def private_postgres(workdir: Path) -> Iterator[str]:
    data, sockets = workdir / "pg", workdir / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        os.chown(sockets, owner.pw_uid, owner.pw_gid)
    subprocess.run(
        as_postgres(
            [pg_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    server = subprocess.Popen(
        as_postgres(
            [
                pg_binary("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                "-c",
                "pg_stat_statements.track=all",
                "-c",
                "fsync=off",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while (
            subprocess.run(
                [pg_binary("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("private PostgreSQL did not start")
            time.sleep(0.2)
        psql(port, "CREATE DATABASE metadata")
        psql(port, "CREATE EXTENSION pg_stat_statements", "metadata")
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/metadata"
    finally:
        server.terminate()
        server.wait(timeout=30)


def psql(port: int, sql: str, database: str = "postgres") -> str:
    result = subprocess.run(
        [
            shutil.which("psql") or "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            database,
            "-Atc",
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.strip()


def http(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@contextlib.contextmanager
def metadata_server(database_url: str, workdir: Path) -> Iterator[tuple[str, str]]:
    guest, admin = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_")}
    env.update(
        {
            "METADATA_DATABASE_URL": database_url,
            "METADATA_ADMIN_TOKEN": ADMIN_TOKEN,
            "METADATA_LISTEN": f"127.0.0.1:{guest}",
            "METADATA_ADMIN_LISTEN": f"127.0.0.1:{admin}",
            "METADATA_TRUSTED_PROXIES": "127.0.0.0/8",
            "METADATA_RATE_LIMIT": "off",
            "METADATA_PROXY_SHARED_SECRET": PROXY_SECRET,
        }
    )
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "metadata", "serve"],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http(f"http://127.0.0.1:{admin}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError((workdir / "server.log").read_text())
            time.sleep(0.2)
        yield f"http://127.0.0.1:{guest}", f"http://127.0.0.1:{admin}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def boot(
    guest: str, n: int, paths: Sequence[str], identity: str = "address", at_once: bool = False
) -> None:
    """Instance n's boot: in order on one connection, or every request at once."""
    headers = IDENTITIES[identity](n)

    def get(path: str) -> None:
        status, body = http(guest + path, headers=headers)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {body[:200]!r}")

    if not at_once:
        for path in paths:
            get(path)
        return
    with ThreadPoolExecutor(len(paths)) as pool:
        list(pool.map(get, paths))


def statements(port: int) -> int:
    return int(
        psql(
            port,
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
            "WHERE query NOT ILIKE '%pg_stat_statements%'",
            "metadata",
        )
    )


def service_statements(admin: str) -> int:
    _, body = http(admin + "/v1/stats/paths", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    return sum(row["db_statements"] for row in json.loads(body)["paths"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boots", type=int, default=6, help="measured boots per row")
    parser.add_argument("--learn", type=int, default=4, help="boots to learn each sequence")
    args = parser.parse_args()
    rows = [
        (sequence, identity, at_once)
        for sequence in SEQUENCES
        for identity in IDENTITIES
        for at_once in (False, True)
    ]
    instances = len(SEQUENCES) * args.learn + len(rows) * args.boots
    results: list[tuple[str, str, str, int, int, int]] = []
    tops: list[str] = []
    with tempfile.TemporaryDirectory(prefix="boot-statements-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        with private_postgres(workdir) as url, metadata_server(url, workdir) as (guest, admin):
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            for n in range(1, instances + 1):
                doc = sample_document(n)
                status, body = http(
                    f"{admin}/v1/instances/{doc['uuid']}", "PUT", json.dumps(doc).encode(), auth
                )
                if status != 201:
                    raise RuntimeError(body.decode())
            fresh = iter(range(1, instances + 1))
            for sequence, paths in SEQUENCES.items():
                for _ in range(args.learn):
                    boot(guest, next(fresh), paths)
                for name, identity, at_once in rows:
                    if name != sequence:
                        continue
                    measured = [next(fresh) for _ in range(args.boots)]
                    psql(port, "SELECT pg_stat_statements_reset()", "metadata")
                    own_before = service_statements(admin)
                    for n in measured:
                        boot(guest, n, paths, identity, at_once)
                    cold = statements(port)
                    own_cold = service_statements(admin) - own_before
                    if cold != len(measured):
                        tops.append(
                            psql(
                                port,
                                "SELECT calls, left(regexp_replace(query, "
                                "'\\s+', ' ', 'g'), 90) FROM pg_stat_statements "
                                "WHERE query NOT ILIKE '%pg_stat%' ORDER BY calls "
                                "DESC LIMIT 5",
                                "metadata",
                            )
                        )
                    psql(port, "SELECT pg_stat_statements_reset()", "metadata")
                    for n in measured:
                        boot(guest, n, paths, identity, at_once)
                    warm = statements(port)
                    pattern = "all at once" if at_once else "in order"
                    results.append((sequence, identity, pattern, cold, own_cold, warm))
    print(
        f"cloud-init OpenStack boot ({len(LATEST_BOOT)} requests), {args.boots} fresh "
        f"instances a row, after {args.learn} learning boots per sequence; statements "
        "per boot"
    )
    head = f"{'sequence':<10}{'identity':<10}{'arrival':<13}{'cold, pg_stat':>14}"
    print(head + f"{'cold, service':>15}{'warm, pg_stat':>15}")
    for sequence, identity, pattern, cold, own, warm in results:
        print(
            f"{sequence:<10}{identity:<10}{pattern:<13}{cold / args.boots:>14.2f}"
            f"{own / args.boots:>15.2f}{warm / args.boots:>15.2f}"
        )
    for top in tops:
        print("statements of a row above one per boot (calls | query):")
        print(top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
