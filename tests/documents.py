"""Instance documents for tests: deterministic, one per number, each with its own address."""

from __future__ import annotations

import base64
import uuid as uuid_module
from typing import Any

NAMESPACE = uuid_module.UUID("6f1d2a52-2d1e-4a43-9a3e-6b1d8c1f0a00")


def instance_uuid(n: int) -> str:
    return str(uuid_module.uuid5(NAMESPACE, str(n)))


def instance_address(n: int) -> str:
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255 or 1}"


def sample_document(n: int = 1, **overrides: Any) -> dict[str, Any]:
    address = instance_address(n)
    network = ".".join(address.split(".")[:3])
    doc: dict[str, Any] = {
        "uuid": instance_uuid(n),
        "name": f"web-{n}",
        "hostname": f"web-{n}",
        "project_id": f"project-{n % 7}",
        "user_id": "u1",
        "availability_zone": "az1",
        "launch_index": 0,
        "image_id": "5d3c6a4e-8b1f-4f0e-9d3a-2b7c1e0f9a88",
        "flavor": {"name": "m1.small", "vcpus": 1, "ram_mb": 2048, "disk_gb": 20},
        "metadata": {"role": "web", "n": str(n)},
        "keys": [{"name": "k1", "type": "ssh", "data": f"ssh-ed25519 AAAAC3Nza{n} k1"}],
        "ports": [
            {
                "id": f"port-{n}-0a1b2c3d",
                "mac": f"fa:16:3e:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}",
                "network_id": "net-1",
                "mtu": 1450,
                "fixed_ips": [
                    {
                        "address": address,
                        "cidr": f"{network}.0/24",
                        "gateway": f"{network}.254",
                        "dns": ["10.255.0.2"],
                    }
                ],
                "floating_ips": [f"203.0.113.{n & 255}"],
            }
        ],
        "user_data": base64.b64encode(f"#cloud-config\nhostname: web-{n}\n".encode()).decode(),
        "vendor_data": {"cloud": "test"},
    }
    doc.update(overrides)
    return doc


def guest_headers(n: int) -> dict[str, str]:
    """Headers that make the test client (a trusted proxy on loopback) speak for guest n."""
    return {"X-Forwarded-For": instance_address(n)}
