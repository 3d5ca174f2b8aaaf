"""The databases of one Nova cloud: uniquely named MariaDB databases and users on the
machine's server (dropped on close), or SQLite files in a temporary folder."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

MYSQL_HOST, MYSQL_PORT, MYSQL_ROOT = "127.0.0.1", 3306, "root"
# the API database, cell0 (instances that failed to schedule) and two real cells
ROLES = ("api", "cell0", "cell1", "cell2")


class DatabaseUnavailable(RuntimeError):
    """The MariaDB server does not answer."""


def mysql_reachable() -> bool:
    try:
        with socket.create_connection((MYSQL_HOST, MYSQL_PORT), timeout=1):
            return True
    except OSError:
        return False


def mysql_admin() -> Any:  # a pymysql connection (pymysql ships no types)
    try:
        return pymysql.connect(
            host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_ROOT, autocommit=True, charset="utf8mb4"
        )
    except pymysql.err.OperationalError as exc:
        raise DatabaseUnavailable(f"MariaDB at {MYSQL_HOST}:{MYSQL_PORT}: {exc}") from exc


def unique_prefix() -> str:
    """Short enough for MariaDB user names, unique across parallel test processes."""
    return f"np{os.getpid()}_{secrets.token_hex(3)}"


def mysql_url(user: str, password: str, database: str) -> str:
    """A URL as Nova's own nova.conf spells it."""
    return f"mysql+pymysql://{user}:{password}@{MYSQL_HOST}:{MYSQL_PORT}/{database}?charset=utf8"


@dataclass
class MysqlDatabases:
    """Four databases and the user Nova connects as (all privileges on them only)."""

    prefix: str
    user: str
    password: str
    names: dict[str, str]
    extra_users: list[str] = field(default_factory=list)

    @classmethod
    def create(cls) -> MysqlDatabases:
        if not mysql_reachable():
            raise DatabaseUnavailable(f"MariaDB is not answering on {MYSQL_HOST}:{MYSQL_PORT}")
        drop_stale_clouds()
        prefix = unique_prefix()
        made = cls(
            prefix, f"{prefix}_nova", secrets.token_hex(12), {r: f"{prefix}_{r}" for r in ROLES}
        )
        conn = mysql_admin()
        try:
            with conn.cursor() as cursor:
                for name in made.names.values():
                    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8")
                cursor.execute(f"CREATE USER '{made.user}'@'%' IDENTIFIED BY '{made.password}'")
                for name in made.names.values():
                    cursor.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{made.user}'@'%'")
        except BaseException:
            conn.close()
            made.drop()
            raise
        conn.close()
        return made

    def url(self, role: str) -> str:
        return mysql_url(self.user, self.password, self.names[role])

    def grant_select_only(self) -> tuple[str, str]:
        """A new user with SELECT on these databases and nothing else."""
        user = f"{self.prefix}_ro{len(self.extra_users)}"
        password = secrets.token_hex(12)
        conn = mysql_admin()
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
                self.extra_users.append(user)
                for name in self.names.values():
                    cursor.execute(f"GRANT SELECT ON `{name}`.* TO '{user}'@'%'")
        finally:
            conn.close()
        return user, password

    def load_dump(self, role: str, dump: Path) -> None:
        with open(dump, "rb") as source:
            subprocess.run(
                [
                    shutil.which("mariadb") or "mysql",
                    "-h",
                    MYSQL_HOST,
                    "-P",
                    str(MYSQL_PORT),
                    "-u",
                    MYSQL_ROOT,
                    self.names[role],
                ],
                stdin=source,
                check=True,
                capture_output=True,
                timeout=300,
            )

    def dump(self, role: str, target: Path) -> None:
        dumper = shutil.which("mariadb-dump") or shutil.which("mysqldump") or "mysqldump"
        with open(target, "wb") as out:
            subprocess.run(
                [
                    dumper,
                    "-h",
                    MYSQL_HOST,
                    "-P",
                    str(MYSQL_PORT),
                    "-u",
                    MYSQL_ROOT,
                    "--skip-comments",
                    "--skip-dump-date",
                    self.names[role],
                ],
                stdout=out,
                check=True,
                timeout=300,
            )

    def drop(self) -> None:
        if not mysql_reachable():
            return
        conn = mysql_admin()
        try:
            with conn.cursor() as cursor:
                for name in self.names.values():
                    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
                for user in [self.user, *self.extra_users]:
                    cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        finally:
            conn.close()


def drop_stale_clouds() -> None:
    """Drop the databases and users of clouds whose test process died without closing
    them (their names carry the pid; a pid this machine no longer runs is stale)."""
    conn = mysql_admin()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW DATABASES LIKE 'np%'")
            databases = [row[0] for row in cursor.fetchall()]
            cursor.execute("SELECT User FROM mysql.user WHERE User LIKE 'np%'")
            users = [row[0] for row in cursor.fetchall()]
            for name in databases:
                if _is_stale(name):
                    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            for user in users:
                if _is_stale(user):
                    cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")
    finally:
        conn.close()


def _is_stale(name: str) -> bool:
    match = re.fullmatch(r"np(\d+)_[0-9a-f]{6}_\w+", name)
    if match is None:
        return False  # not a harness name
    return not Path(f"/proc/{match.group(1)}").exists()


def can_dump_mysql() -> bool:
    return bool(shutil.which("mariadb-dump") or shutil.which("mysqldump")) and bool(
        shutil.which("mariadb") or shutil.which("mysql")
    )


@dataclass
class SqliteDatabases:
    """Four SQLite files in one folder."""

    folder: Path

    @property
    def names(self) -> dict[str, str]:
        return {role: str(self.folder / f"nova_{role}.db") for role in ROLES}

    def url(self, role: str) -> str:
        return f"sqlite:///{self.folder / f'nova_{role}.db'}"

    def drop(self) -> None:
        for path in self.names.values():
            Path(path).unlink(missing_ok=True)
