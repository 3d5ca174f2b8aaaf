"""Everything the guest and admin listeners share, opened and closed in one place."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from metadata.config import Settings
from metadata.identity import IdentityResolver
from metadata.loader import SliceLoader
from metadata.providers import build_providers
from metadata.store.engine import Database
from metadata.store.store import Store

log = logging.getLogger(__name__)


def admin_tokens(settings: Settings) -> Mapping[str, str]:
    """The configured tokens; with none, a random one written to a 0600 file."""
    if settings.admin_tokens:
        return settings.admin_tokens
    token = secrets.token_urlsafe(32)
    path = Path(settings.admin_token_file)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    log.warning("no admin token configured: generated one in %s", path.resolve())
    return {"admin": token}


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    store: Store
    loader: SliceLoader
    identity: IdentityResolver
    admin_tokens: Mapping[str, str]

    async def readiness_problems(self) -> list[str]:
        problems = []
        try:
            await self.db.ping()
        except Exception as exc:
            problems.append(f"database: {exc}")
        return problems

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings, *, migrate: bool = True
                   ) -> AsyncIterator[Services]:  # fmt: skip
        db = Database(settings.database_url)
        try:
            store = Store(db)
            if migrate:
                await store.migrate()
            loader = SliceLoader(build_providers(db))
            identity = IdentityResolver(
                store, loader, shared_secret=settings.proxy_shared_secret,
                trusted_proxies=settings.trusted_proxies,
            )  # fmt: skip
            yield cls(settings, db, store, loader, identity, admin_tokens(settings))
        finally:
            await db.dispose()


SERVICES = web.AppKey("services", Services)
