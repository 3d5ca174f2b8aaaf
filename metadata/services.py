"""Everything the guest and admin listeners share, opened and closed in one place."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
from aiohttp import web

from metadata.cache import SliceCache
from metadata.coherence import Coherence, LocalCoherence, RedisCoherence
from metadata.config import Settings
from metadata.guest.hot import HotAnswers
from metadata.guest.identify import IdentityResolver
from metadata.guest.waiting import RedisWakeups, Waiters
from metadata.loader import SliceLoader
from metadata.nova.deployment import NovaDeployment, open_nova
from metadata.nova.generations import NovaCoherence
from metadata.nova.overlay import UserDataOverlay
from metadata.nova.security_groups import security_groups_provider
from metadata.prefetch import BootPlanner
from metadata.providers import NovaContext, build_providers
from metadata.providers.dynamic_vendor_data import TargetOutcomes, open_session
from metadata.sources import SliceSource
from metadata.stats import Statistics
from metadata.stats_sink import RedisStatsSink
from metadata.store.engine import Database
from metadata.store.events import WriteEvent
from metadata.store.source import StoreSource
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
    cache: SliceCache
    coherence: Coherence
    loader: SliceLoader
    identity: IdentityResolver
    stats: Statistics
    hot: HotAnswers
    planner: BootPlanner
    admin_tokens: Mapping[str, str]
    stats_sink: RedisStatsSink | None = None
    # Dynamic vendor-data POSTs per (target, outcome), for /metrics.
    vendor_data_outcomes: TargetOutcomes = field(default_factory=Counter)
    # Guests waiting for their user data to change, and the Redis channel that wakes them.
    waiters: Waiters = field(default_factory=lambda: Waiters(16, 1024))
    wakeups: RedisWakeups | None = None
    # Nova mode: the deployment instances are read from (None: the service's own store).
    nova: NovaDeployment | None = None

    async def readiness_problems(self) -> list[str]:
        problems = []
        try:
            await self.db.ping()
        except Exception as exc:
            problems.append(f"database: {type(exc).__name__}: {exc}")
        if self.cache.shared is not None:
            try:
                await self.cache.shared.client.ping()
            except Exception as exc:
                problems.append(f"cache: {type(exc).__name__}: {exc}")
        if self.nova is not None:
            problems.extend(await self.nova.readiness_problems())
        return problems

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings, *, migrate: bool = True) -> AsyncIterator[Services]:
        db = Database(
            settings.database_url,
            timeout=settings.database_timeout,
            read_timeout=settings.database_read_timeout,
        )
        cache = SliceCache(settings.cache_url, settings.cache_ttl, settings.cache_max_entries)
        coherence: Coherence = (
            RedisCoherence(cache.shared.client, settings.cache_ttl, settings.cache_max_entries)
            if cache.shared is not None
            else LocalCoherence(settings.cache_max_entries, settings.cache_ttl)
        )
        sink: RedisStatsSink | None = None
        wakeups: RedisWakeups | None = None
        # Only when a service is configured: without one, dynamic vendor data does no I/O.
        session: aiohttp.ClientSession | None = None
        outcomes: TargetOutcomes = Counter()
        stack = contextlib.AsyncExitStack()
        try:
            nova: NovaDeployment | None = None
            if settings.nova_config:
                nova = await stack.enter_async_context(open_nova(settings, coherence))
                settings = nova_settings(settings, nova)
            if settings.vendor_data_targets:
                session = open_session()
            store = Store(db, settings.user_data_history)
            if migrate:
                await store.migrate()
            if nova is None:
                store.add_write_listener(coherence.written)
            else:
                # In Nova mode the store only keeps user-data overlays: a write makes the
                # instance's Nova generation newer on every replica.
                store.add_write_listener(nova_bump(nova))
                overlay = UserDataOverlay(store)
                nova.source.overlay = overlay
                nova.change_listeners.append(overlay.on_change)
            # After coherence: a woken guest that asks again must see the new generation.
            waiters = Waiters(settings.wait_max_per_instance, settings.wait_max_total)
            store.add_write_listener(waiters.written)
            if cache.shared is not None:
                wakeups = RedisWakeups(settings.cache_url, waiters)
                await wakeups.start()
            providers = build_providers(
                settings.vendor_data_targets,
                settings.vendor_data_timeout,
                session,
                outcomes,
                nova=None if nova is None else NovaContext(nova.conf.dhcp_domain),
                security_groups=None if nova is None else security_groups_provider(nova.neutron),
                vendor_data_token=None if nova is None else nova.vendordata_token,
            )
            source: SliceSource = StoreSource(db) if nova is None else nova.source
            loader = SliceLoader(source, providers, cache)
            identity = IdentityResolver(
                source,
                loader,
                coherence if nova is None else NovaCoherence(coherence, nova.generations),
                shared_secret=settings.proxy_shared_secret,
                trusted_proxies=settings.trusted_proxies,
                max_remembered=settings.cache_max_entries,
                stale_if_error=settings.stale_if_error,
                tenant_of=None if nova is None else nova.source.project_of,
            )
            stats = Statistics()
            if cache.shared is not None:
                sink = RedisStatsSink(cache.shared.client, stats)
                sink.start()
            yield cls(
                settings,
                db,
                store,
                cache,
                coherence,
                loader,
                identity,
                stats,
                HotAnswers(settings.cache_max_entries),
                BootPlanner(),
                admin_tokens(settings),
                sink,
                waiters=waiters,
                wakeups=wakeups,
                vendor_data_outcomes=outcomes,
                nova=nova,
            )
        finally:
            await stack.aclose()
            if session is not None:
                await session.close()
            if wakeups is not None:
                await wakeups.close()
            if sink is not None:
                await sink.close()
            await coherence.close()
            await cache.close()
            await db.dispose()


def nova_bump(nova: NovaDeployment) -> Callable[[WriteEvent], Awaitable[None]]:
    async def bump(event: WriteEvent) -> None:
        await nova.generations.bump(event.uuid)

    return bump


def nova_settings(settings: Settings, nova: NovaDeployment) -> Settings:
    """In Nova mode nova.conf decides the signing secret and vendor data, as for Nova."""
    conf = nova.conf
    targets = (
        {t.name: t.url for t in conf.vendordata_dynamic_targets}
        if "DynamicJSON" in conf.vendordata_providers
        else {}
    )
    return replace(
        settings,
        proxy_shared_secret=conf.shared_secret,
        vendor_data=nova.vendor_data,
        vendor_data_targets=targets,
        vendor_data_timeout=float(
            conf.vendordata_dynamic_connect_timeout + conf.vendordata_dynamic_read_timeout
        ),
    )


SERVICES = web.AppKey("services", Services)
