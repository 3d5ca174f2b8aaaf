"""`python -m loadtests.nova_peer`: build (or find) the Nova venv and both schema
templates, printing how long each took. CI runs it before the tests."""

from __future__ import annotations

import time

from loadtests.nova_peer.schema import ensure_template
from loadtests.nova_peer.venv import ensure_nova_venv


def main() -> None:
    started = time.monotonic()
    venv = ensure_nova_venv()
    print(f"Nova venv {venv} ready in {time.monotonic() - started:.1f} s", flush=True)
    for backend in ("mysql", "sqlite"):
        started = time.monotonic()
        folder = ensure_template(backend, venv)
        print(f"{backend} schema template {folder} ready in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
