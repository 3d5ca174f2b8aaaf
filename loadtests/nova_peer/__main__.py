"""`python -m loadtests.nova_peer`: build (or find) the Nova venv and both schema
templates, printing how long each took. CI runs it before the tests."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loadtests.nova_peer.schema import ensure_template
from loadtests.nova_peer.venv import ensure_nova_venv


def timed_template(backend: str, venv: Path) -> str:
    started = time.monotonic()
    folder = ensure_template(backend, venv)
    return f"{backend} schema template {folder} ready in {time.monotonic() - started:.1f} s"


def main() -> None:
    started = time.monotonic()
    venv = ensure_nova_venv()
    print(f"Nova venv {venv} ready in {time.monotonic() - started:.1f} s", flush=True)
    # the two templates are mostly nova-manage start-up time: build them side by side
    with ThreadPoolExecutor(2) as pool:
        for line in pool.map(timed_template, ("mysql", "sqlite"), (venv, venv)):
            print(line)


if __name__ == "__main__":
    main()
