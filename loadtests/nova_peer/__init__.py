"""A real Nova 34.0.0 beside our service: its venv, its databases made by nova-manage,
instances made by its objects, its own metadata app, and tools to compare with it."""

from loadtests.nova_peer.app import NovaMetadataApp, start_nova_metadata
from loadtests.nova_peer.cloud import NovaCloud, create_nova_cloud
from loadtests.nova_peer.grants import grant_read_only_user
from loadtests.nova_peer.instances import SeededInstance
from loadtests.nova_peer.novarun import nova_manage, run_in_nova
from loadtests.nova_peer.statements import StatementCounter, StatementCounts
from loadtests.nova_peer.venv import ensure_nova_venv

__all__ = [
    "NovaCloud",
    "NovaMetadataApp",
    "SeededInstance",
    "StatementCounter",
    "StatementCounts",
    "create_nova_cloud",
    "ensure_nova_venv",
    "grant_read_only_user",
    "nova_manage",
    "run_in_nova",
    "start_nova_metadata",
]
