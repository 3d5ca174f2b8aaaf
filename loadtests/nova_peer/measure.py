"""Statements Nova's own metadata app sends per request, from MariaDB's counters.

    python -m loadtests.nova_peer.measure

Makes a MariaDB cloud, starts Nova's app (cache on, then off) and prints, per scenario,
the SELECTs, writes and other statements (BEGIN/COMMIT/SET) of Nova's database user.
"Cold" is an instance this app process has not served yet; "warm" repeats it at once
(inside Nova's 15 s cache). Bounded: six instances, a few hundred requests at most.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

from loadtests.nova_peer.app import NovaMetadataApp, start_nova_metadata
from loadtests.nova_peer.cloud import NovaCloud, create_nova_cloud
from loadtests.nova_peer.instances import SeededInstance
from loadtests.nova_peer.parity import Identity, crawl
from loadtests.nova_peer.statements import StatementCounter, StatementCounts


def identity(cloud: NovaCloud, instance: SeededInstance) -> Identity:
    return Identity(instance.uuid, instance.project_id, cloud.shared_secret, instance.address)


def request(app: NovaMetadataApp, who: Identity, path: str) -> int:
    req = urllib.request.Request(app.base_url + path, headers=who.headers())
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def counted(counter: StatementCounter, action: object) -> tuple[StatementCounts, object]:
    counter.reset()
    result = action() if callable(action) else None
    return counter.delta(), result


def row(label: str, counts: StatementCounts, requests: int = 1) -> str:
    per = counts.statements / requests
    return (
        f"{label:<44} {requests:>4} {counts.selects:>7} {counts.writes:>6} {counts.other:>6}"
        f" {per:>9.1f}"
    )


def measure(cloud: NovaCloud) -> list[str]:
    assert cloud.nova_user
    counter = StatementCounter(cloud.nova_user)
    lines = [
        f"{'scenario':<44} {'reqs':>4} {'selects':>7} {'writes':>6} {'other':>6} {'per req':>9}"
    ]
    leaf, document = "/latest/meta-data/instance-id", "/openstack/latest/meta_data.json"
    with start_nova_metadata(cloud, cache_seconds=15) as app:
        first, second, third = (identity(cloud, i) for i in cloud.instances[:3])
        counts, _ = counted(counter, lambda: request(app, first, leaf))
        lines.append(row("cold leaf (cache on, new instance)", counts))
        counts, _ = counted(counter, lambda: request(app, first, leaf))
        lines.append(row("warm leaf (same instance, inside 15 s)", counts))
        counts, _ = counted(counter, lambda: request(app, second, document))
        lines.append(row("cold meta_data.json (cache on)", counts))
        counts, result = counted(counter, lambda: asyncio.run(crawl(app.base_url, third)))
        paths = result.answers  # type: ignore[attr-defined]
        lines.append(row("cold crawl of both trees (cache on)", counts, len(paths)))
    with start_nova_metadata(cloud, cache_seconds=0) as app:
        fourth = identity(cloud, cloud.instances[3])
        counts, _ = counted(counter, lambda: request(app, fourth, leaf))
        lines.append(row("leaf, cache off", counts))
        counts, result = counted(counter, lambda: asyncio.run(crawl(app.base_url, fourth)))
        total = len(result.answers)  # type: ignore[attr-defined]
        lines.append(row("crawl of both trees, cache off", counts, total))
    return lines


def main() -> None:
    started = time.monotonic()
    with create_nova_cloud("mysql") as cloud:
        print(f"cloud created in {cloud.created_in_s:.1f} s")
        for line in measure(cloud):
            print(line)
    print(f"done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
