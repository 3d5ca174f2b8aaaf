"""A complete Nova cloud for tests and benchmarks: API database, cell0, cell1 and cell2
with Nova's real schema, a nova.conf for it, and six instances made by Nova's objects.

>>> with create_nova_cloud("mysql") as cloud:
...     cloud.instances[0].uuid, cloud.database_urls["cell2"]
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from loadtests.nova_peer.databases import ROLES, MysqlDatabases, SqliteDatabases
from loadtests.nova_peer.instances import SeededInstance
from loadtests.nova_peer.novaconf import NovaConfOptions, write_nova_conf
from loadtests.nova_peer.novarun import run_in_nova
from loadtests.nova_peer.schema import cell_transport, copy_template, ensure_template
from loadtests.nova_peer.venv import ensure_nova_venv

Backend = Literal["mysql", "sqlite"]
SEED_SCRIPT = Path(__file__).with_name("nova_seed.py")
DEFAULT_DHCP_DOMAIN = "cloud.test"


@dataclass
class NovaCloud:
    backend: Backend
    folder: Path  # nova.conf, api-paste.ini, vendor data, logs
    config_path: Path
    database_urls: dict[str, str]  # "api", "cell0", "cell1", "cell2": as nova.conf spells them
    instances: list[SeededInstance]
    shared_secret: str
    dhcp_domain: str
    venv: Path
    databases: MysqlDatabases | SqliteDatabases
    notification_url: str | None = None
    nova_user: str | None = None  # the MariaDB user Nova's own services connect as
    created_in_s: float = 0.0
    _closers: list[object] = field(default_factory=list)

    @property
    def security_groups_file(self) -> Path:
        """uuid -> group names: what the harness's stand-in for Neutron answers."""
        return self.folder / "security_groups.json"

    def instance(self, name: str) -> SeededInstance:
        return next(i for i in self.instances if i.name == name)

    def close(self) -> None:
        """Drop the databases and users, remove the folder. Safe to call twice."""
        for closer in reversed(self._closers):
            stop = getattr(closer, "stop", None)
            if stop:
                stop()
        self._closers.clear()
        self.databases.drop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> NovaCloud:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _seed(config: Path, urls: dict[str, str], venv: Path, folder: Path) -> list[SeededInstance]:
    cells: dict[str, dict[str, str]] = {"cell0": {"database": urls["cell0"]}}
    for cell in ("cell1", "cell2"):
        cells[cell] = {"database": urls[cell], "transport_url": cell_transport(cell)}
    request = {"cells": cells}
    output = run_in_nova(
        SEED_SCRIPT.read_text(),
        ["--config-file", str(config)],
        stdin=json.dumps(request),
        venv=venv,
        config_dir=folder,
    )
    return [SeededInstance.from_seed(row) for row in json.loads(output)["instances"]]


def create_nova_cloud(
    backend: Backend = "mysql",
    *,
    notification_url: str | None = None,
    dhcp_domain: str = DEFAULT_DHCP_DOMAIN,
    shared_secret: str | None = None,
) -> NovaCloud:
    """Make a cloud; `close()` (or leaving the `with` block) drops everything it made.

    `notification_url` (e.g. `rabbit://guest:guest@127.0.0.1:5672/vhost`) turns Nova's
    versioned notifications on (messagingv2, notify_on_state_change=vm_state)."""
    started = time.monotonic()
    venv = ensure_nova_venv()
    template = ensure_template(backend, venv)
    folder = Path(tempfile.mkdtemp(prefix=f"nova-cloud-{backend}-"))
    databases: MysqlDatabases | SqliteDatabases
    databases = SqliteDatabases(folder) if backend == "sqlite" else MysqlDatabases.create()
    try:
        copy_template(template, databases)
        urls = {role: databases.url(role) for role in ROLES}
        secret = shared_secret or secrets.token_hex(16)
        config = write_nova_conf(
            folder,
            NovaConfOptions(
                api_database=urls["api"],
                cell_database=urls["cell1"],
                shared_secret=secret,
                dhcp_domain=dhcp_domain,
                vendor_data_file=folder / "vendor_data.json",
                state_dir=folder / "state",
                host=f"nova-peer-{folder.name[-8:]}",
                notification_url=notification_url,
            ),
        )
        shutil.copyfile(venv / "etc" / "nova" / "api-paste.ini", folder / "api-paste.ini")
        instances = _seed(config, urls, venv, folder)
    except BaseException:
        databases.drop()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    cloud = NovaCloud(
        backend=backend,
        folder=folder,
        config_path=config,
        database_urls=urls,
        instances=instances,
        shared_secret=secret,
        dhcp_domain=dhcp_domain,
        venv=venv,
        databases=databases,
        notification_url=notification_url,
        nova_user=databases.user if isinstance(databases, MysqlDatabases) else None,
    )
    cloud.security_groups_file.write_text(
        json.dumps({i.uuid: list(i.security_groups) for i in instances}, indent=1)
    )
    cloud.created_in_s = time.monotonic() - started
    return cloud
