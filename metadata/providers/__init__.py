"""Lazy providers, one per slice of instance data."""

from __future__ import annotations

from metadata.providers.base import Provider
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
)


def build_providers(db: Database) -> dict[Slice, Provider]:
    return {cls.slice: cls(db) for cls in PROVIDER_CLASSES}


__all__ = ["PROVIDER_CLASSES", "Provider", "build_providers"]
