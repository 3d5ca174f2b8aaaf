"""Locust users that behave like the real clients (reference imds-peers §5).

    python -m loadtests.seed --count 10000 --database-url ...      # the instances first
    locust -f loadtests/locustfile.py --headless -u 200 -r 50 --run-time 2m \\
        --host http://127.0.0.1:8775 --csv reports/boot --html reports/boot.html

Many distinct guests from one load machine: each simulated guest speaks for one seeded
instance (loadtests.seed numbering), either with X-Forwarded-For (the server must trust the
load machine: METADATA_TRUSTED_PROXIES=127.0.0.0/8) or, with LOAD_IDENTITY=signed, with
Neutron-style signed headers (the server's METADATA_PROXY_SHARED_SECRET in
LOAD_SHARED_SECRET). Other knobs: LOAD_INSTANCES (10000), LOAD_FIRST_INSTANCE (0; give each
locust process its own range), LOAD_ADMIN_URL and LOAD_ADMIN_TOKEN for the operator.

IMDSv2 tokens and user-data `wait_for_change` may not exist on the server under test: the
IMDSv2 user falls back to v1 reads when the token PUT answers 403/404/405 (as botocore
does), the waiting agent to plain polling when the wait is refused (4xx) or ignored.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Iterator
from typing import Any

from locust import HttpUser, between, task
from locust.contrib.fasthttp import FastHttpUser

from loadtests.seed import instance_address, instance_uuid, project_id
from metadata.guest.identify import sign

INSTANCES = int(os.environ.get("LOAD_INSTANCES", "10000"))
FIRST = int(os.environ.get("LOAD_FIRST_INSTANCE", "0"))
IDENTITY = os.environ.get("LOAD_IDENTITY", "forwarded")
SECRET = os.environ.get("LOAD_SHARED_SECRET", "")
ADMIN_URL = os.environ.get("LOAD_ADMIN_URL", "http://127.0.0.1:9775")
ADMIN_TOKEN = os.environ.get("LOAD_ADMIN_TOKEN", "")
# cloud-init 22.4 knows OpenStack versions up to this one (it ignores newer ones).
OPENSTACK_KNOWN = (
    "2018-08-27",
    "2017-02-22",
    "2016-10-06",
    "2016-06-30",
    "2015-10-15",
    "2013-10-17",
    "2013-04-04",
    "2012-08-10",
)
EC2_VERSIONS = ("2021-03-23", "2018-09-24", "2016-09-02")
# Each booting user takes the next instance: a boot storm of distinct guests.
_next_instance: Iterator[int] = itertools.count()


def next_instance() -> int:
    return FIRST + next(_next_instance) % INSTANCES


def identity_headers(n: int) -> dict[str, str]:
    if IDENTITY == "signed":
        uuid = instance_uuid(n)
        return {
            "X-Instance-ID": uuid,
            "X-Tenant-ID": project_id(n),
            "X-Instance-ID-Signature": sign(SECRET, uuid),
        }
    return {"X-Forwarded-For": instance_address(n)}


class Guest:
    """What every guest user shares: its instance, its headers, and tolerant GETs."""

    client: Any
    instance: int
    headers: dict[str, str]

    def become(self, n: int) -> None:
        self.instance, self.headers = n, identity_headers(n)

    def get(
        self,
        path: str,
        name: str | None = None,
        ok: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        with self.client.get(
            path,
            headers={**self.headers, **(headers or {})},
            name=name or path,
            catch_response=True,
        ) as response:
            status = response.status_code
            if status in ok:
                response.success()
            else:
                response.failure(f"{status} for {path}")
            return status, response.text or ""

    def crawl(self, base: str, name: str) -> None:
        """cloud-init's EC2 crawler: a listing, its child directories first (recursively),
        then its leaves; security-credentials skipped; `N=name` keys become N/openssh-key."""
        status, body = self.get(base, name=name + "[listing]")
        if status != 200:
            return
        entries = [line for line in body.splitlines() if line]
        directories = [e for e in entries if e.endswith("/")]
        leaves = [e for e in entries if not e.endswith("/")]
        for entry in directories:
            if entry.rstrip("/") != "security-credentials":
                self.crawl(base + entry, name)
        for entry in leaves:
            if "=" in entry and base.endswith("public-keys/"):
                self.get(base + entry.split("=", 1)[0] + "/openssh-key", name=name + "[leaf]")
            else:
                self.get(base + entry, name=name + "[leaf]")


class CloudInitOpenStack(Guest, FastHttpUser):
    """A VM booting with cloud-init 22.4's OpenStack datasource, then the next VM."""

    weight = 4
    wait_time = between(0.5, 2)

    @task
    def boot(self) -> None:
        self.become(next_instance())
        _, body = self.get("/openstack", name="/openstack")
        offered = set(body.split())
        version = next((v for v in OPENSTACK_KNOWN if v in offered), "latest")
        base = f"/openstack/{version}/"
        self.get(base + "meta_data.json", name="/openstack/{v}/meta_data.json")
        for leaf in ("user_data", "vendor_data.json", "vendor_data2.json", "network_data.json"):
            self.get(base + leaf, name="/openstack/{v}/" + leaf, ok=(200, 404))
        self.crawl("/latest/meta-data/", "/latest/meta-data/")


class CloudInitEC2(Guest, FastHttpUser):
    """A VM booting with cloud-init 22.4's EC2 datasource on a non-AWS cloud (no token)."""

    weight = 2
    wait_time = between(0.5, 2)

    @task
    def boot(self) -> None:
        self.become(next_instance())
        self.get("/2009-04-04/meta-data/instance-id", name="/{v}/meta-data/instance-id")
        version = "2009-04-04"
        for candidate in EC2_VERSIONS:
            if (
                self.get(
                    f"/{candidate}/meta-data/instance-id",
                    ok=(200, 404),
                    name="/{v}/meta-data/instance-id",
                )[0]
                == 200
            ):
                version = candidate
                break
        self.get(f"/{version}/user-data", name="/{v}/user-data", ok=(200, 404))
        self.crawl(f"/{version}/meta-data/", "/{v}/meta-data/")


class IMDSv2Client(Guest, FastHttpUser):
    """An SDK on a running VM: a session token, then reads with it; v1 when tokens are
    not offered (403/404/405, as botocore), a fresh token after a 401."""

    weight = 2
    wait_time = between(1, 3)
    token: str | None = None
    token_offered = True

    def on_start(self) -> None:
        self.become(FIRST + random.randrange(INSTANCES))
        self.fetch_token()

    def fetch_token(self) -> None:
        self.token = None
        if not self.token_offered:
            return
        with self.client.request(
            "PUT",
            "/latest/api/token",
            name="/latest/api/token",
            headers={**self.headers, "X-aws-ec2-metadata-token-ttl-seconds": "21600"},
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                self.token = response.text
                response.success()
            elif response.status_code in (403, 404, 405):
                self.token_offered = False  # the server has no tokens: read as v1
                response.success()
            else:
                response.failure(f"token PUT: {response.status_code}")

    @task
    def read(self) -> None:
        for path in (
            "/latest/meta-data/instance-id",
            "/latest/meta-data/placement/availability-zone/",
            "/latest/meta-data/local-ipv4",
        ):
            headers = {"X-aws-ec2-metadata-token": self.token} if self.token else {}
            status, _ = self.get(path, headers=headers, ok=(200, 401))
            if status == 401:
                self.fetch_token()


class UserDataWaiter(Guest, FastHttpUser):
    """An in-guest agent waiting for user-data changes: a long poll with the last ETag,
    or plain polling every few seconds when the server does not offer the wait."""

    weight = 1
    wait_time = between(0, 0.1)
    etag = ""
    waits = True
    timeout_sec = 30
    poll_every = 5.0

    def on_start(self) -> None:
        self.become(FIRST + random.randrange(min(INSTANCES, 1000)))

    @task
    def wait(self) -> None:
        path = "/openstack/latest/user_data"
        if not self.waits:
            self.get(path, ok=(200, 404), name=path + " (poll)")
            time.sleep(self.poll_every)
            return
        query = f"?wait_for_change=true&last_etag={self.etag}&timeout_sec={self.timeout_sec}"
        started = time.monotonic()
        with self.client.get(
            path + query, headers=self.headers, catch_response=True, name=path + "?wait_for_change"
        ) as response:
            status = response.status_code
            if status in (200, 304, 404):
                response.success()
                etag = response.headers.get("ETag", "")
                # An answer at once with the same ETag: the server ignored the wait.
                if not etag or (etag == self.etag and time.monotonic() - started < 1):
                    self.waits = False
                self.etag = etag
            elif 400 <= status < 500:
                response.success()
                self.waits = False
            else:
                response.failure(f"{status} waiting for user data")


class Operator(HttpUser):
    """An operator (or the compute service) churning user data through the admin API."""

    weight = 1
    wait_time = between(0.5, 1.5)

    @task
    def churn_user_data(self) -> None:
        n = FIRST + random.randrange(min(INSTANCES, 1000))  # the waiters' instances
        body = f"#cloud-config\n# changed at {time.time():.3f}\nhostname: vm-{n}\n".encode()
        self.client.put(
            f"{ADMIN_URL}/v1/instances/{instance_uuid(n)}/user-data",
            data=body,
            name="admin PUT /v1/instances/{uuid}/user-data",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
