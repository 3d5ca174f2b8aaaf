"""Operator views of the statistics: `GET /v1/stats/paths` (JSON, hottest first) and
`GET /metrics` (Prometheus text), both on the admin listener.

The Prometheus collector reads the statistics table when scraped: recording a request
touches no prometheus_client object (their per-call locks would cost the warm path).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from metadata.admin.responses import json_response
from metadata.nova.neutron import OUTCOMES as NEUTRON_OUTCOMES
from metadata.providers.dynamic_vendor_data import OUTCOMES
from metadata.services import SERVICES, Services
from metadata.stats import BUCKETS_S, PathStats, StatsKey

log = logging.getLogger(__name__)
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


async def stats_table(services: Services) -> dict[StatsKey, PathStats]:
    if services.stats_sink is not None:
        try:
            return await services.stats_sink.cluster_table()
        except Exception as exc:
            # Redis down: this replica's own figures are better than none.
            log.warning("cluster statistics unavailable (%s); showing this replica's", exc)
    return services.stats.table


class StatsCollector(Collector):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.table: dict[StatsKey, PathStats] = {}

    def collect(self) -> Iterator[Any]:
        labels = ["path", "version"]
        families = {
            name: CounterMetricFamily(f"metadata_guest_{name}", help_text, labels=labels)
            for name, help_text in (
                ("requests", "Guest requests by path template"),
                ("cache_hits", "Requests answered without a database statement"),
                ("cache_misses", "Requests that needed the database"),
                ("db_statements", "SQL statements sent for guest requests"),
                ("response_bytes", "Bytes of guest response bodies"),
                ("errors", "Guest requests answered with an error"),
            )
        }
        latency = HistogramMetricFamily(
            "metadata_guest_request_duration_seconds", "Guest request latency", labels=labels
        )
        for (path, version), stats in self.table.items():
            values = (
                stats.hits,
                stats.cache_hits,
                stats.cache_misses,
                stats.db_statements,
                stats.bytes,
                stats.errors,
            )
            for family, value in zip(families.values(), values, strict=True):
                family.add_metric([path, version], value)
            cumulative, buckets = 0, []
            for bound, count in zip(BUCKETS_S, stats.buckets, strict=False):
                cumulative += count
                buckets.append((repr(bound), cumulative))
            buckets.append(("+Inf", sum(stats.buckets)))
            latency.add_metric([path, version], buckets, stats.seconds_sum)
        yield from families.values()
        yield latency
        cached = GaugeMetricFamily(
            "metadata_cache_entries", "Entries held in process", labels=["tier"]
        )
        cached.add_metric(["answers"], len(self.services.hot))
        cached.add_metric(["slices"], len(self.services.cache.local))
        yield cached
        yield from self.vendor_data_requests()
        yield from self.nova_figures()

    def nova_figures(self) -> Iterator[Any]:
        """Nova mode: statements sent to Nova's databases, notifications by outcome."""
        nova = self.services.nova
        if nova is None:
            return
        sent = CounterMetricFamily(
            "metadata_nova_db_statements",
            "Statements sent to Nova's databases (this process)",
            labels=["database"],
        )
        for database in nova.cells.databases:
            sent.add_metric([database.name], database.counter.total)
        yield sent
        messages = CounterMetricFamily(
            "metadata_nova_notifications",
            "Nova notifications received, by outcome",
            labels=["outcome"],
        )
        for outcome, count in nova.counters.outcomes().items():
            messages.add_metric([outcome], count)
        yield messages
        connected = GaugeMetricFamily(
            "metadata_nova_notifications_connected", "1 while the notification broker is connected"
        )
        connected.add_metric([], 1 if nova.counters.connected else 0)
        yield connected
        if nova.consumer is not None:
            # One series per broker of the transport URL: 1 for the one in use (or, while
            # disconnected, the one being tried), so a failover shows as a label change.
            in_use = GaugeMetricFamily(
                "metadata_nova_notifications_broker",
                "1 for the notification broker in use or being tried, 0 for the others",
                labels=["broker"],
            )
            for broker in nova.counters.brokers:
                in_use.add_metric([broker], 1 if broker == nova.counters.broker else 0)
            yield in_use
            yield CounterMetricFamily(
                "metadata_nova_notifications_failovers",
                "Connects to another broker of the transport URL than the one before",
                value=nova.counters.failovers,
            )
        yield CounterMetricFamily(
            "metadata_nova_changes", "Instance changes applied", value=nova.changes
        )
        yield CounterMetricFamily(
            "metadata_nova_resyncs",
            "Re-validations of everything cached (broker reconnects)",
            value=nova.resyncs,
        )
        if nova.neutron is not None:
            groups = CounterMetricFamily(
                "metadata_nova_neutron_requests",
                "Security-group look-ups in Neutron's API, by outcome (stale: a failure "
                "answered with the instance's last groups)",
                labels=["outcome"],
            )
            for outcome in NEUTRON_OUTCOMES:
                groups.add_metric([outcome], nova.neutron.outcomes[outcome])
            yield groups
            yield CounterMetricFamily(
                "metadata_nova_keystone_tokens",
                "Keystone tokens requested for Neutron",
                value=nova.neutron.keystone.token_requests,
            )

    def vendor_data_requests(self) -> Iterator[Any]:
        """POSTs to dynamic vendor-data services by outcome; every configured target shows
        every outcome, zero included, so a failure rate can be graphed from the start."""
        targets = self.services.settings.vendor_data_targets
        if not targets:
            return
        family = CounterMetricFamily(
            "metadata_vendor_data_requests",
            "POSTs to dynamic vendor-data services (this process), by target and outcome",
            labels=["target", "outcome"],
        )
        counts = self.services.vendor_data_outcomes
        for target in targets:
            for outcome in OUTCOMES:
                family.add_metric([target, outcome], counts[target, outcome])
        yield family


async def get_stats_paths(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    table = await stats_table(services)
    return json_response({"paths": services.stats.snapshot(table)})


async def get_metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    collector = StatsCollector(services)
    collector.table = await stats_table(services)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return web.Response(body=generate_latest(registry), headers={"Content-Type": PROMETHEUS_TEXT})


def add_stats_routes(app: web.Application) -> None:
    app.router.add_get("/v1/stats/paths", get_stats_paths)
    app.router.add_get("/metrics", get_metrics)
