"""Crawl both metadata trees for one instance, as a guest behind Neutron's agent sees
them, and compare two crawls (ours against Nova's own app).

A crawl asks every path either tree lists: `/openstack`, each version's listing and each
file in it; `/`, each EC2 version, its listing and `meta-data/` recursively (the
`public-keys/` lines `0=name` name the folder `0/`). Comparing takes status and body; JSON
bodies compare as data, with `random_seed` (random per render in Nova itself) ignored;
listings compare line by line, and a line only one side lists is a difference of its own,
at `<listing>#<line>`, so one table entry can excuse it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# Where ours answers differently from Nova on purpose: path pattern (fnmatch, over the
# crawled path or `<listing>#<line>`) -> reason. The Nova source work fills this table;
# these two are the contract's (DESIGN.md, "Nova source").
_NO_FLOATING_IP = "without a floating IP the leaf is 404 and unlisted (Nova: an empty 200)"
_NO_NEUTRON = "without Neutron the leaf is unlisted (Nova asks Neutron)"
_NO_FIXED_IPV4 = (
    "without a fixed IPv4 the leaf is 404 and unlisted (Nova echoes the requester's"
    " X-Forwarded-For; our answers are cached per instance, never per requester)"
)
DELIBERATE_DIFFERENCES: dict[str, str] = {
    "/*/meta-data/public-ipv4": _NO_FLOATING_IP,
    "/*/meta-data/#public-ipv4": _NO_FLOATING_IP,
    "/*/meta-data/security-groups": _NO_NEUTRON,
    "/*/meta-data/#security-groups": _NO_NEUTRON,
    "/*/meta-data/local-ipv4": _NO_FIXED_IPV4,
    "/*/meta-data/#local-ipv4": _NO_FIXED_IPV4,
}
# JSON keys whose value is random per render in Nova: compared by presence only.
RANDOM_JSON_KEYS = frozenset({"random_seed"})
MAX_PATHS = 2000  # a crawl that finds more is looping


@dataclass(frozen=True, slots=True)
class Identity:
    """What Neutron's metadata agent adds to a guest's request."""

    instance_id: str
    project_id: str
    secret: str
    address: str = "10.0.0.1"

    def headers(self) -> dict[str, str]:
        signature = hmac.new(
            self.secret.encode(), self.instance_id.encode(), hashlib.sha256
        ).hexdigest()
        return {
            "X-Instance-ID": self.instance_id,
            "X-Tenant-ID": self.project_id,
            "X-Instance-ID-Signature": signature,
            "X-Forwarded-For": self.address,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str = ""


@dataclass(slots=True)
class Crawl:
    base_url: str
    answers: dict[str, Answer] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    what: str  # "status", "body", "json", "missing line", "extra line", "line order"
    ours: str
    theirs: str
    reason: str | None = None  # the DELIBERATE_DIFFERENCES entry that excuses it

    @property
    def is_deliberate(self) -> bool:
        return self.reason is not None


def is_listing(path: str) -> bool:
    return (
        path in ("/", "/openstack")
        or path.endswith("/")
        or (path.startswith("/openstack/") and path.count("/") == 2)
    )


def listing_lines(answer: Answer) -> list[str]:
    if answer.status != 200:
        return []
    return [line for line in answer.body.decode(errors="replace").splitlines() if line.strip()]


def children(path: str, answer: Answer) -> list[str]:
    """The paths a listing names."""
    lines = listing_lines(answer)
    if path == "/openstack":
        return [f"/openstack/{v}" for v in lines]
    if path.startswith("/openstack/"):
        return [f"{path}/{name}" for name in lines]
    if path == "/":
        return [f"/{v}/" for v in lines]
    found = []
    for line in lines:
        if path.endswith("/public-keys/") and "=" in line:
            found.append(path + line.split("=", 1)[0] + "/")
        else:
            found.append(path + line)
    return found


async def fetch(
    session: aiohttp.ClientSession, base_url: str, path: str, identity: Identity
) -> Answer:
    async with session.get(base_url.rstrip("/") + path, headers=identity.headers()) as response:
        return Answer(response.status, await response.read(), response.content_type)


async def crawl(
    base_url: str, identity: Identity, extra_paths: Iterable[str] = (), into: Crawl | None = None
) -> Crawl:
    """Every path reachable from `/openstack` and `/`, plus `extra_paths`; with `into`,
    only what that earlier crawl has not asked yet (added to it)."""
    result = into or Crawl(base_url)
    queue = [*(() if into else ("/openstack", "/")), *extra_paths]
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while queue:
            path = queue.pop(0)
            if path in result.answers:
                continue
            if len(result.answers) >= MAX_PATHS:
                raise RuntimeError(f"{base_url}: more than {MAX_PATHS} paths, a listing loops")
            answer = await fetch(session, base_url, path, identity)
            result.answers[path] = answer
            if is_listing(path):
                queue.extend(p for p in children(path, answer) if p not in result.answers)
    return result


async def crawl_both(ours_url: str, theirs_url: str, identity: Identity) -> tuple[Crawl, Crawl]:
    """Crawl both (one after the other: Nova's app has one sync worker), then ask each
    side the paths only the other listed, until neither lists anything new."""
    ours = await crawl(ours_url, identity)
    theirs = await crawl(theirs_url, identity)
    while True:  # bounded: every round adds paths, and a crawl stops at MAX_PATHS
        only_theirs = sorted(set(theirs.answers) - set(ours.answers))
        only_ours = sorted(set(ours.answers) - set(theirs.answers))
        if not only_theirs and not only_ours:
            return ours, theirs
        await crawl(ours_url, identity, only_theirs, into=ours)
        await crawl(theirs_url, identity, only_ours, into=theirs)


def reason_for(path: str, table: dict[str, str]) -> str | None:
    return next(
        (reason for pattern, reason in table.items() if fnmatch.fnmatchcase(path, pattern)), None
    )


def _without_random(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: ("<random>" if k in RANDOM_JSON_KEYS else _without_random(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_without_random(v) for v in value]
    return value


def _as_json(body: bytes) -> Any:
    try:
        return _without_random(json.loads(body))
    except ValueError:
        return None


def _short(body: bytes, limit: int = 200) -> str:
    text = body.decode(errors="replace")
    return text if len(text) <= limit else text[:limit] + "…"


def compare_answers(path: str, ours: Answer, theirs: Answer) -> list[tuple[str, str, str, str]]:
    """(path, what, ours, theirs) for each way the two answers differ."""
    if ours.status != theirs.status:
        return [(path, "status", str(ours.status), str(theirs.status))]
    if is_listing(path) and ours.status == 200:
        mine, nova = listing_lines(ours), listing_lines(theirs)
        found = [(f"{path}#{line}", "missing line", "", line) for line in nova if line not in mine]
        found += [(f"{path}#{line}", "extra line", line, "") for line in mine if line not in nova]
        if not found and mine != nova:
            found.append((path, "line order", " ".join(mine), " ".join(nova)))
        return found
    if path.endswith(".json") and ours.status == 200:
        mine_json, nova_json = _as_json(ours.body), _as_json(theirs.body)
        if mine_json is not None and mine_json == nova_json:
            return []
        return [(path, "json", _short(ours.body), _short(theirs.body))]
    if ours.body != theirs.body:
        return [(path, "body", _short(ours.body), _short(theirs.body))]
    return []


def compare(
    ours: Crawl, theirs: Crawl, deliberate: dict[str, str] | None = None
) -> list[Difference]:
    """Every difference over the paths of both crawls, each marked with its reason when
    the deliberate table excuses it. A path one crawl lacks counts as a 404 there."""
    table = DELIBERATE_DIFFERENCES if deliberate is None else deliberate
    absent = Answer(404, b"")
    found = []
    for path in sorted(set(ours.answers) | set(theirs.answers)):
        pairs = compare_answers(
            path, ours.answers.get(path, absent), theirs.answers.get(path, absent)
        )
        for where, what, mine, nova in pairs:
            found.append(Difference(where, what, mine, nova, reason_for(where, table)))
    return found


def unexplained(differences: Iterable[Difference]) -> list[Difference]:
    return [d for d in differences if not d.is_deliberate]
