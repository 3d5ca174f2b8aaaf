"""Nova's database URLs: cell templates expanded as Nova's `CellMapping` expands them, sync
drivers mapped to async ones (transport URLs: `metadata.nova.notifications_url`)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from metadata.config import mask_url_password
from metadata.errors import InvalidSettings

log = logging.getLogger(__name__)

# Nova's sync dialect+driver -> the async driver this service uses. MySQL's is asyncmy
# (Cython): a cold read's two statements cost about 30% less CPU than with aiomysql's pure
# Python packet parsing (docs/PERFORMANCE.md); a URL naming aiomysql keeps it.
ASYNC_DRIVERS = {
    "mysql": "mysql+asyncmy",
    "mysql+pymysql": "mysql+asyncmy",
    "mysql+mysqldb": "mysql+asyncmy",
    "mysql+asyncmy": "mysql+asyncmy",
    "mysql+aiomysql": "mysql+aiomysql",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


def _netloc_parts(netloc: str) -> dict[str, str | None]:
    """One `user:pass@host:port` of a multi-host URL, split as Nova's `_parse_netloc`."""
    userpass, _, hostport = netloc.partition("@") if "@" in netloc else ("", "", netloc)
    parts: dict[str, str | None] = {
        "username": None,
        "password": None,
        "hostname": None,
        "port": None,
    }
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("Invalid IPv6 URL")
        parts["hostname"], parts["port"] = hostport[1:end], hostport[end + 1 :]
    elif ":" in hostport:
        parts["hostname"], parts["port"] = hostport.split(":", 1)
    else:
        parts["hostname"] = hostport
    if ":" in userpass:
        parts["username"], parts["password"] = userpass.split(":", 1)
    else:
        parts["username"] = userpass
    return parts


def expand_template(template: str, base: str | None) -> str:
    """A cell mapping's URL with `{scheme}`, `{username}`, `{password}`, `{hostname}`,
    `{port}`, `{path}`, `{query}`, `{fragment}` (and `{username1}`… per host of a
    multi-host base) filled from `base`, as Nova's `CellMapping._format_url`. As in Nova, an
    absent part prints as `None`, and a template that cannot be expanded is used as it is
    (logged)."""
    if base is None:
        if "{" in template:
            log.error("a cell mapping URL is a template, but the nova config sets no base URL")
        return template
    try:
        url = urlsplit(base)
        subs: dict[str, object] = {
            "username": url.username,
            "password": url.password,
            "hostname": url.hostname,
            "port": url.port,
            "scheme": url.scheme,
            "query": url.query,
            "fragment": url.fragment,
            "path": url.path.lstrip("/"),
        }
        if "," in url.netloc:
            for index, netloc in enumerate(url.netloc.split(","), 1):
                for key, value in _netloc_parts(netloc).items():
                    subs[f"{key}{index}"] = value
        return template.format(**subs)
    except (ValueError, KeyError, IndexError) as exc:
        log.error(
            "cannot expand the cell mapping URL template %s: %s", mask_url_password(template), exc
        )
        return template


def async_database_url(url: str, where: str) -> str:
    """Nova's SQLAlchemy URL with the async driver of the same database."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidSettings([f"{where}: not a database URL: {mask_url_password(url)!r}"])
    driver = ASYNC_DRIVERS.get(scheme.lower())
    if driver is None:
        known = ", ".join(sorted(ASYNC_DRIVERS))
        raise InvalidSettings([f"{where}: unsupported database driver {scheme!r} (known: {known})"])
    return f"{driver}://{rest}"
