"""Starting in Nova mode: a Nova database that does not answer is retried, each attempt
logged with its reason and the database named (never a traceback)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from metadata.coherence import LocalCoherence
from metadata.config import Settings
from metadata.errors import StoreUnavailable
from metadata.nova.deployment import open_nova


async def test_an_unreachable_database_is_retried_with_a_logged_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = tmp_path / "nova.conf"
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    conf.write_text("[api_database]\nconnection = mysql+pymysql://nova:pw@127.0.0.1:1/nova_api\n")
    settings = Settings(nova_config=(str(conf),), database_timeout=1.0)
    with caplog.at_level(logging.WARNING), pytest.raises(StoreUnavailable):
        async with open_nova(settings, LocalCoherence(10), connect_attempts=2):
            pass
    retries = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(retries) == 1
    message = retries[0].getMessage()
    assert "Nova API" in message and "127.0.0.1:1" in message and "retrying" in message
    assert "pw" not in message  # the password is masked
    assert retries[0].exc_info is None
