"""The framework floor: a bare aiohttp Application answering a constant body, on the same
event loop `metadata serve` uses (uvloop when installed). `python -m loadtests.floor PORT`."""

from __future__ import annotations

import sys

from aiohttp import web

BODY = b"00000000-0000-0000-0000-000000000001"


async def constant(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="text/plain")


def build_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", constant)
    return app


def main(argv: list[str]) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(build_app(), host="127.0.0.1", port=int(argv[0]), access_log=None, print=None)


if __name__ == "__main__":
    main(sys.argv[1:])
