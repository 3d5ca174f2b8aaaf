"""Log lines: one JSON object per line, the access log's fields, and no secret in any line."""

from __future__ import annotations

import base64
import json
import logging
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from metadata.config import Settings, load_settings
from metadata.errors import InvalidSettings
from metadata.guest.identify import sign
from metadata.logs import JsonFormatter, TextFormatter, access_logger
from tests.documents import guest_headers, instance_uuid, sample_document
from tests.servers import ADMIN_TOKEN, ServerProcess, start_server

SHARED_SECRET = "proxy-secret-7f3a9c1e55d0"
USER_DATA = b"#cloud-config\npassword: user-data-secret-4b1d\n"
NEW_USER_DATA = b"#!/bin/sh\necho replaced-user-data-9e2c\n"


def record(message: str, *args: object, exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("broken")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.LogRecord("metadata.test", logging.WARNING, __file__, 1, message, args, exc_info)
    made.__dict__.update(extra)
    return made


def test_a_json_line_has_timestamp_level_logger_message_and_extra_fields() -> None:
    line = JsonFormatter().format(record("served %s", "x", status=200, cache_hit=True))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "WARNING" and parsed["logger"] == "metadata.test"
    assert parsed["message"] == "served x"
    assert parsed["timestamp"].endswith("+00:00") and "T" in parsed["timestamp"]
    assert (parsed["status"], parsed["cache_hit"]) == (200, True)


def test_an_exception_stays_inside_its_one_json_line() -> None:
    line = JsonFormatter().format(record("failed", exc=True))
    assert "\n" not in line
    assert "ValueError: broken" in json.loads(line)["exception"]


def test_the_text_format_appends_extra_fields() -> None:
    line = TextFormatter().format(record("served", status=503))
    assert "WARNING metadata.test: served status=503" in line


def test_access_log_is_off_unless_asked_and_log_format_is_checked() -> None:
    assert access_logger(Settings()) is None
    assert Settings().log_format == "json"
    on = load_settings(environ={"METADATA_ACCESS_LOG": "true", "METADATA_LOG_FORMAT": "text"})
    assert access_logger(on) is not None and on.log_format == "text"
    with pytest.raises(InvalidSettings, match="log_format"):
        load_settings(environ={"METADATA_LOG_FORMAT": "xml"})
    with pytest.raises(InvalidSettings, match="access_log"):
        load_settings(environ={"METADATA_ACCESS_LOG": "sometimes"})


def send(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def logged_server(tmp_path: Path) -> ServerProcess:
    env = {
        "METADATA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/metadata.db",
        "METADATA_ACCESS_LOG": "true",
        "METADATA_PROXY_SHARED_SECRET": SHARED_SECRET,
        "METADATA_RATE_LIMIT": "off",
    }
    return start_server(tmp_path, env, "logged")


def drive_requests_with_secrets(server: ServerProcess) -> dict[str, str]:
    """Requests that carry every kind of secret; returns the secrets, to look for later."""
    doc = sample_document(1, user_data=base64.b64encode(USER_DATA).decode())
    assert server.admin("PUT", f"/v1/instances/{doc['uuid']}", doc)[0] == 201
    guest = f"http://127.0.0.1:{server.guest_port}"
    for _ in range(2):  # cold, then warm
        assert send(guest + "/latest/user-data", headers=guest_headers(1)) == (200, USER_DATA)
    signature = sign(SHARED_SECRET, instance_uuid(1))
    signed = {
        "X-Instance-ID": instance_uuid(1),
        "X-Tenant-ID": doc["project_id"],
        "X-Instance-ID-Signature": signature,
    }
    assert send(guest + "/openstack/latest/meta_data.json", headers=signed)[0] == 200
    forged = {**signed, "X-Instance-ID-Signature": "f" * 64}
    assert send(guest + "/openstack/latest/meta_data.json", headers=forged)[0] == 403
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60", **guest_headers(1)}
    status, token = send(guest + "/latest/api/token", "PUT", ttl)
    assert status == 200 and token
    with_token = {"X-aws-ec2-metadata-token": token.decode(), **guest_headers(1)}
    assert send(guest + "/latest/meta-data/hostname", headers=with_token)[0] == 200
    status, _ = server.admin(
        "PUT", f"/v1/instances/{instance_uuid(1)}/user-data", raw=NEW_USER_DATA
    )
    assert status == 204
    assert send(guest + "/latest/user-data", headers=guest_headers(1)) == (200, NEW_USER_DATA)
    return {
        "admin token": ADMIN_TOKEN,
        "shared secret": SHARED_SECRET,
        "signature": signature,
        "session token": token.decode(),
        "user data": "user-data-secret-4b1d",
        "user data (base64)": base64.b64encode(USER_DATA).decode(),
        "new user data": "replaced-user-data-9e2c",
    }


def test_a_server_with_the_access_log_writes_json_lines_and_never_a_secret(
    logged_server: ServerProcess,
) -> None:
    secrets = drive_requests_with_secrets(logged_server)
    logged_server.stop()
    text = logged_server.log.read_text()
    for name, secret in secrets.items():
        assert secret not in text, f"the {name} was logged"
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all({"timestamp", "level", "logger", "message"} <= line.keys() for line in lines)
    access = [line for line in lines if line["logger"] == "metadata.access"]
    user_data = [line for line in access if line.get("path_template") == "/{version}/user-data"]
    cold, warm = user_data[0], user_data[1]
    assert cold["status"] == warm["status"] == 200
    assert (cold["cache_hit"], warm["cache_hit"]) == (False, True)
    assert cold["db_statements"] >= 1 and warm["db_statements"] == 0
    assert warm["instance_uuid"] == instance_uuid(1) and warm["version"] == "latest"
    assert isinstance(warm["latency_ms"], float) and warm["request_id"] != cold["request_id"]
    statuses = [line["status"] for line in access]
    assert 403 in statuses  # the forged signature is logged, its value is not
    admin = [line for line in access if "path" in line]
    assert any(line["path"].endswith("/user-data") and line["status"] == 204 for line in admin)
