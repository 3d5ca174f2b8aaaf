"""deploy/: the compose file and the Kubernetes manifests parse, and they point probes,
ports and settings where the interface contract says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is in the dev extras")

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
GUEST_PORT, ADMIN_PORT = 8775, 9775
SECRET_SETTINGS = {"METADATA_ADMIN_TOKEN", "METADATA_PROXY_SHARED_SECRET"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> manifest, over every file kustomization.yaml lists."""
    kustomization = documents(KUBERNETES / "kustomization.yaml")[0]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for doc in documents(KUBERNETES / resource):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


@pytest.mark.parametrize(
    "path", sorted(DEPLOY.rglob("*.yml")) + sorted(DEPLOY.rglob("*.yaml")), ids=str
)
def test_every_yaml_file_parses(path: Path) -> None:
    assert documents(path)


def test_kustomization_lists_every_manifest_file() -> None:
    listed = set(documents(KUBERNETES / "kustomization.yaml")[0]["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def metadata_container() -> dict[str, Any]:
    deployment = manifests()[("Deployment", "metadata")]
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["metadata"]
    container: dict[str, Any] = containers[0]
    return container


def test_deployment_runs_three_replicas_of_metadata_serve() -> None:
    deployment = manifests()[("Deployment", "metadata")]
    assert deployment["spec"]["replicas"] == 3
    assert metadata_container()["args"] == ["metadata", "serve"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_probes_are_the_contract_paths_on_the_admin_port() -> None:
    container = metadata_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"guest": GUEST_PORT, "admin": ADMIN_PORT}
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert (readiness["path"], ports[readiness["port"]]) == ("/readyz", ADMIN_PORT)
    assert (liveness["path"], ports[liveness["port"]]) == ("/healthz", ADMIN_PORT)


def test_listeners_match_the_container_ports_and_the_drain_fits_the_termination_grace() -> None:
    deployment = manifests()[("Deployment", "metadata")]
    env = {e["name"]: e.get("value") for e in metadata_container()["env"]}
    assert env["METADATA_LISTEN"] == f"0.0.0.0:{GUEST_PORT}"
    assert env["METADATA_ADMIN_LISTEN"] == f"0.0.0.0:{ADMIN_PORT}"
    assert env["METADATA_CACHE_URL"].startswith("redis://")
    pause = 5  # the preStop sleep
    grace = float(env["METADATA_SHUTDOWN_GRACE"])
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > pause + grace


def test_secrets_come_from_the_secret_and_never_sit_in_the_deployment() -> None:
    found = manifests()
    secret = found[("Secret", "metadata-secrets")]
    assert set(secret["stringData"]) >= SECRET_SETTINGS
    assert secret["stringData"]["METADATA_DATABASE_URL"].startswith("postgresql+asyncpg://")
    container = metadata_container()
    assert {"secretRef": {"name": "metadata-secrets"}} in container["envFrom"]
    assert not SECRET_SETTINGS & {e["name"] for e in container["env"]}


def test_services_route_to_the_named_ports() -> None:
    found = manifests()
    guest = found[("Service", "metadata")]["spec"]["ports"]
    admin = found[("Service", "metadata-admin")]["spec"]["ports"]
    assert [p["targetPort"] for p in guest] == ["guest"]
    assert [p["targetPort"] for p in admin] == ["admin"]
    # PostgreSQL and Redis, the shared state, are part of the trial set.
    assert ("StatefulSet", "metadata-postgres") in found
    assert ("Service", "metadata-redis") in found


def test_compose_runs_several_replicas_on_postgresql_and_redis() -> None:
    compose = documents(DEPLOY / "docker-compose.yml")[0]
    service = compose["services"]["metadata"]
    assert service["deploy"]["replicas"] >= 2
    env = service["environment"]
    assert env["METADATA_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["METADATA_DATABASE_URL"]
    assert env["METADATA_CACHE_URL"] == "redis://redis:6379/0"
    assert env["METADATA_LISTEN"] == f"0.0.0.0:{GUEST_PORT}"
    assert env["METADATA_ADMIN_LISTEN"] == f"0.0.0.0:{ADMIN_PORT}"
    assert {"postgres", "redis"} <= set(compose["services"])
    assert set(service["depends_on"]) == {"postgres", "redis"}


def test_binding_guide_covers_each_way_to_reach_the_link_local_address() -> None:
    guide = (DEPLOY / "BINDING.md").read_text()
    for needed in (
        "169.254.169.254/32",
        "type dummy",
        "dnat to",
        "DNAT --to-destination",
        "METADATA_TRUSTED_PROXIES",
        "X-Forwarded-For",
        "METADATA_PROXY_SHARED_SECRET",
        "X-Instance-ID-Signature",
    ):
        assert needed in guide
