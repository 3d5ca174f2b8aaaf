"""The lazy providers, one per slice: sourced slices ask the slice source, derived ones\ncompute."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import aiohttp

from metadata.providers.base import Provider, SourcedProvider
from metadata.providers.dynamic_vendor_data import (
    DynamicVendorDataProvider,
    NoDynamicVendorDataProvider,
    NovaContext,
    TargetOutcomes,
    TokenSource,
)
from metadata.providers.security_groups import SecurityGroupsFromCore
from metadata.records import Slice


def build_providers(
    targets: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    session: aiohttp.ClientSession | None = None,
    vendor_data_outcomes: TargetOutcomes | None = None,
    *,
    nova: NovaContext | None = None,
    security_groups: Provider | None = None,
    vendor_data_token: TokenSource | None = None,
) -> dict[Slice, Provider]:
    """One provider per slice. Dynamic vendor data needs the configured targets and the
    shared client session; without either it is the provider that does no I/O. `nova`:
    its body is Nova's. Security groups come from the core slice unless a provider for
    them is given (Nova mode's asks Neutron). `vendor_data_token`: the POSTs carry it."""
    if targets and session is not None:
        outcomes = Counter() if vendor_data_outcomes is None else vendor_data_outcomes
        dynamic: Provider = DynamicVendorDataProvider(
            targets, timeout, session, outcomes, nova, vendor_data_token
        )
    else:
        dynamic = NoDynamicVendorDataProvider()
    derived = [dynamic, security_groups or SecurityGroupsFromCore()]
    providers: dict[Slice, Provider] = {name: SourcedProvider(name) for name in Slice}
    providers.update((provider.slice, provider) for provider in derived)
    return providers


__all__ = ["NovaContext", "Provider", "TokenSource", "build_providers"]
