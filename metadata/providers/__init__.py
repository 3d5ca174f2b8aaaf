"""The lazy providers, one per slice: sourced slices ask the slice source, derived ones\ncompute."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import aiohttp

from metadata.providers.base import Provider, SourcedProvider
from metadata.providers.dynamic_vendor_data import (
    DynamicVendorDataProvider,
    NoDynamicVendorDataProvider,
    TargetOutcomes,
)
from metadata.records import Slice


def build_providers(
    targets: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    session: aiohttp.ClientSession | None = None,
    vendor_data_outcomes: TargetOutcomes | None = None,
) -> dict[Slice, Provider]:
    """One provider per slice. Dynamic vendor data needs the configured targets and the
    shared client session; without either it is the provider that does no I/O."""
    if targets and session is not None:
        outcomes = Counter() if vendor_data_outcomes is None else vendor_data_outcomes
        dynamic: Provider = DynamicVendorDataProvider(targets, timeout, session, outcomes)
    else:
        dynamic = NoDynamicVendorDataProvider()
    providers: dict[Slice, Provider] = {
        name: SourcedProvider(name) for name in Slice if name is not dynamic.slice
    }
    providers[dynamic.slice] = dynamic
    return providers


__all__ = ["Provider", "build_providers"]
