"""Nova's schemas, made once by Nova's own `nova-manage` and kept as a template.

Building the four schemas with nova-manage takes a minute or more; copying them takes
seconds. The template (a dump per MariaDB database, or the SQLite files) lives beside the
venv in the cache folder, behind the same lock-and-marker scheme. Its cell mappings point
at the template's own databases: the seeding step re-points them at each new cloud.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loadtests.nova_peer.databases import (
    ROLES,
    DatabaseUnavailable,
    MysqlDatabases,
    SqliteDatabases,
    can_dump_mysql,
)
from loadtests.nova_peer.novaconf import NovaConfOptions, write_nova_conf, write_override
from loadtests.nova_peer.novarun import nova_manage
from loadtests.nova_peer.venv import _build_lock, cache_folder

MARKER = "complete"


def cell_transport(cell: str) -> str:
    """A distinct fake RPC URL per cell (nova-manage refuses two cells sharing one); cell
    RPC is never used here."""
    return f"fake:///{cell}"


def template_folder(backend: str) -> Path:
    venv = cache_folder()
    return venv.parent / f"{venv.name}-schema-{backend}"


def make_schemas(urls: dict[str, str], work: Path, venv: Path) -> None:
    """The steps an operator follows for a new deployment with two cells."""
    conf = write_nova_conf(
        work,
        NovaConfOptions(
            api_database=urls["api"],
            cell_database=urls["cell1"],
            shared_secret="unused",
            dhcp_domain="novalocal",
            vendor_data_file=work / "vendor_data.json",
            state_dir=work / "state",
            host="nova-peer-schema",
        ),
    )
    nova_manage([conf], "api_db", "sync", venv=venv)
    nova_manage([conf], "cell_v2", "map_cell0", "--database_connection", urls["cell0"], venv=venv)
    for cell in ("cell1", "cell2"):
        nova_manage(
            [conf],
            "cell_v2",
            "create_cell",
            "--name",
            cell,
            "--database_connection",
            urls[cell],
            "--transport-url",
            cell_transport(cell),
            venv=venv,
        )
    nova_manage([conf], "db", "sync", venv=venv)  # cell0 and [database] (cell1)
    cell2 = write_override(work, "cell2.conf", "database", connection=urls["cell2"])
    nova_manage([conf, cell2], "db", "sync", "--local_cell", venv=venv)


def _is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def ensure_template(backend: str, venv: Path) -> Path:
    folder = template_folder(backend)
    if _is_complete(folder):
        return folder
    if backend == "mysql" and not can_dump_mysql():
        raise DatabaseUnavailable("the MariaDB clients (mariadb, mariadb-dump) are not installed")
    with _build_lock(folder):
        if _is_complete(folder):
            return folder
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="nova-schema-") as work:
            if backend == "sqlite":
                files = SqliteDatabases(folder)
                make_schemas({r: files.url(r) for r in ROLES}, Path(work), venv)
            else:
                databases = MysqlDatabases.create()
                try:
                    make_schemas({r: databases.url(r) for r in ROLES}, Path(work), venv)
                    for role in ROLES:
                        databases.dump(role, folder / f"{role}.sql")
                finally:
                    databases.drop()
        (folder / MARKER).write_text(f"built in {time.monotonic() - started:.1f} s\n")
    return folder


def copy_template(template: Path, target: MysqlDatabases | SqliteDatabases) -> None:
    if isinstance(target, SqliteDatabases):
        for role in ROLES:
            shutil.copyfile(template / f"nova_{role}.db", target.folder / f"nova_{role}.db")
        return
    # four independent loads: the server creates tables for several at once
    with ThreadPoolExecutor(len(ROLES)) as pool:
        list(pool.map(lambda role: target.load_dump(role, template / f"{role}.sql"), ROLES))
