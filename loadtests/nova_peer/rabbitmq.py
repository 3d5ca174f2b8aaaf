"""A RabbitMQ virtual host of its own for one cloud's notifications (the machine's broker,
guest/guest), so parallel tests never see each other's messages; removed on exit."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

RABBIT_HOST, RABBIT_PORT = "127.0.0.1", 5672
CTL_TIMEOUT_S = 60


class BrokerUnavailable(RuntimeError):
    """RabbitMQ does not answer, or rabbitmqctl is missing."""


def rabbitmq_reachable() -> bool:
    try:
        with socket.create_connection((RABBIT_HOST, RABBIT_PORT), timeout=1):
            return True
    except OSError:
        return False


def rabbitmqctl(*args: str) -> str:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise BrokerUnavailable("rabbitmqctl is not installed")
    done = subprocess.run(
        [ctl, "-q", *args], capture_output=True, text=True, timeout=CTL_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise BrokerUnavailable(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """Yields a `rabbit://` transport URL (as nova.conf spells it) on a fresh vhost."""
    if not rabbitmq_reachable():
        raise BrokerUnavailable(f"RabbitMQ is not answering on {RABBIT_HOST}:{RABBIT_PORT}")
    vhost = f"nova-peer-{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"rabbit://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


def queue_depths(url: str) -> dict[str, int]:
    """Queue name -> messages ready, on the vhost of `url`."""
    vhost = url.rsplit("/", 1)[1]
    depths = {}
    for line in rabbitmqctl(
        "list_queues", "-p", vhost, "--no-table-headers", "name", "messages"
    ).splitlines():
        name, _, count = line.strip().rpartition("\t")
        if name:
            depths[name] = int(count)
    return depths
