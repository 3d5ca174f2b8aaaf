"""`GET /dashboard` on the admin listener: one self-contained HTML page (inline script and
style, no external assets) that charts `/v1/stats/paths` and previews what an instance
would be served, both fetched with the admin token the page asks for.

The page itself holds no data, so it is served without a token; everything it shows comes
from the token-protected API. A fresh nonce per response lets the Content-Security-Policy
allow exactly the page's own script and style and nothing injected.
"""

from __future__ import annotations

import secrets
from functools import cache
from importlib import resources

from aiohttp import web

DASHBOARD_PATH = "/dashboard"


@cache
def page_template() -> str:
    return resources.files("metadata.admin").joinpath("dashboard.html").read_text(encoding="utf-8")


def security_headers(nonce: str) -> dict[str, str]:
    policy = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


async def get_dashboard(request: web.Request) -> web.Response:
    nonce = secrets.token_urlsafe(18)
    body = page_template().replace("{{NONCE}}", nonce)
    return web.Response(text=body, content_type="text/html", headers=security_headers(nonce))


def add_dashboard_route(app: web.Application) -> None:
    app.router.add_get(DASHBOARD_PATH, get_dashboard)
