"""A small client of the admin API for the CLI commands that talk to a running server."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from metadata.config import Settings


class AdminClientError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class AdminClient:
    base_url: str
    token: str

    @classmethod
    def from_settings(
        cls, settings: Settings, url: str | None = None, token: str | None = None
    ) -> AdminClient:
        """The URL from --admin-url or the admin listener; the token from --token, the
        configured tokens (the first), or the token file `serve` generated."""
        if url is None:
            host = settings.admin_listen.host
            host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
            url = f"http://{f'[{host}]' if ':' in host else host}:{settings.admin_listen.port}"
        if token is None and settings.admin_tokens:
            token = next(iter(settings.admin_tokens.values()))
        if token is None:
            path = Path(settings.admin_token_file)
            if not path.exists():
                raise AdminClientError(
                    f"no admin token: give --token, set METADATA_ADMIN_TOKEN or run where {path} is"
                )
            token = path.read_text().strip()
        return cls(url.rstrip("/"), token)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            self.base_url + path,
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()
        except (urllib.error.URLError, OSError) as error:
            raise AdminClientError(
                f"cannot reach the admin API at {self.base_url}: {getattr(error, 'reason', error)}"
            ) from None
