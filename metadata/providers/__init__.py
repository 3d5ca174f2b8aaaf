"""Lazy providers, one per slice of instance data."""

from __future__ import annotations

from collections import Counter

import aiohttp

from metadata.config import Settings
from metadata.providers.base import Provider
from metadata.providers.dynamic_vendor_data import (
    DynamicVendorDataProvider,
    NoDynamicVendorDataProvider,
    TargetOutcomes,
)
from metadata.providers.instance_core import InstanceCoreProvider
from metadata.providers.keys import KeysProvider
from metadata.providers.metadata_items import MetadataItemsProvider
from metadata.providers.network import NetworkProvider
from metadata.providers.password import PasswordProvider
from metadata.providers.user_data import UserDataProvider
from metadata.providers.vendor_data import VendorDataProvider
from metadata.records import Slice
from metadata.store.engine import Database

PROVIDER_CLASSES: tuple[type[Provider], ...] = (
    InstanceCoreProvider,
    MetadataItemsProvider,
    KeysProvider,
    NetworkProvider,
    UserDataProvider,
    VendorDataProvider,
    PasswordProvider,
    NoDynamicVendorDataProvider,
)


def build_providers(db: Database, settings: Settings | None = None,
                    session: aiohttp.ClientSession | None = None,
                    vendor_data_outcomes: TargetOutcomes | None = None,
                    ) -> dict[Slice, Provider]:  # fmt: skip
    """One provider per slice. Dynamic vendor data needs the targets from the settings and
    the shared client session; without either it is the provider that does no I/O."""
    providers: dict[Slice, Provider] = {cls.slice: cls(db) for cls in PROVIDER_CLASSES}
    if settings is not None and settings.vendor_data_targets and session is not None:
        providers[Slice.DYNAMIC_VENDOR_DATA] = DynamicVendorDataProvider(
            db, settings.vendor_data_targets, settings.vendor_data_timeout, session,
            Counter() if vendor_data_outcomes is None else vendor_data_outcomes,
        )  # fmt: skip
    return providers


__all__ = ["PROVIDER_CLASSES", "Provider", "build_providers"]
