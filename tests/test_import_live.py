"""An import into the database of running servers: what a PUT keeps, the import keeps, and
servers sharing Redis serve the imported data on their next request."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests import backends
from tests.documents import guest_headers, instance_uuid, sample_document
from tests.servers import start_server


def run_import(tmp_path: Path, docs: list[dict[str, object]], env: dict[str, str]) -> None:
    path = tmp_path / "import.jsonl"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    result = subprocess.run(
        [sys.executable, "-m", "metadata", "instances", "import", str(path), "--quiet"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.redis
def test_a_running_server_sharing_redis_serves_what_an_import_replaced(tmp_path: Path) -> None:
    redis_url = backends.require_redis()
    db = 1 + (os.getpid() + 7) % 15
    backends.flush_redis(db)
    env = {
        "METADATA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/m.db",
        "METADATA_CACHE_URL": f"{redis_url.rsplit('/', 1)[0]}/{db}",
    }
    server = start_server(tmp_path, env)
    try:
        doc = sample_document(61)
        assert server.admin("PUT", f"/v1/instances/{doc['uuid']}", doc)[0] == 201
        password_path = "/openstack/latest/password"
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.guest_port}{password_path}",
            data=b"sealed",
            method="POST",
            headers=guest_headers(61),
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        user_data = server.guest("/latest/user-data", guest_headers(61))[1]
        assert server.guest("/latest/meta-data/hostname", guest_headers(61)) == (200, b"web-61")
        replacement = sample_document(61, hostname="imported-61")
        del replacement["user_data"]
        run_import(tmp_path, [replacement, sample_document(62)], env)
        assert server.guest("/latest/meta-data/hostname", guest_headers(61)) == (
            200,
            b"imported-61",
        )
        # as a PUT would: the guest's password and, with no user_data field, the user data
        assert server.guest(password_path, guest_headers(61)) == (200, b"sealed")
        assert server.guest("/latest/user-data", guest_headers(61)) == (200, user_data)
        assert server.guest("/latest/meta-data/hostname", guest_headers(62)) == (200, b"web-62")
        removed = sample_document(61, user_data=None)
        run_import(tmp_path, [removed], env)
        assert server.guest("/latest/user-data", guest_headers(61))[0] == 404
        status, body = server.admin("GET", f"/v1/instances/{instance_uuid(61)}")
        assert status == 200 and json.loads(body)["user_data"] is None
        assert base64.b64decode(sample_document(61)["user_data"]) == user_data  # type: ignore[arg-type]
    finally:
        server.stop()
