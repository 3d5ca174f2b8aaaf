"""`metadata serve --workers N`: N serving processes sharing both ports (SO_REUSEPORT, the
kernel spreads connections), each with its own event loop (uvloop when installed).

The parent migrates the schema and settles the admin token once, starts the workers, and
supervises them: SIGTERM or SIGINT is passed on to every worker (each then shuts down
gracefully, as a single `serve` does); if one worker dies, the others are stopped and the
exit status says so, so that the service manager restarts the whole set.

Each worker has its own in-process caches. With the default memory:// cache a worker sees
only the writes that arrive through its own admin listener, so the others could keep
answering from an old generation: several workers need cache_url=redis://, where the
generation check is shared (see metadata/coherence.py).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import signal
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from metadata.config import Settings
from metadata.startup import run_coroutine, upgrade_schema

log = logging.getLogger(__name__)
# Beyond the shutdown grace: what a worker may take to close its pools and exit.
EXIT_MARGIN = 10.0


def _worker(settings: Settings, number: int) -> None:
    from metadata.app import serve

    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s %(levelname)s worker{number} %(name)s: %(message)s",
    )
    run_coroutine(serve(settings))


def _prepare(settings: Settings) -> Settings:
    """Migrate once (workers then find the schema at head) and fix the admin token, so that
    every worker accepts the same one."""
    from metadata.services import admin_tokens

    print(f"schema at revision {run_coroutine(upgrade_schema(settings))}")
    return dataclasses.replace(settings, admin_tokens=dict(admin_tokens(settings)))


def run(settings: Settings) -> int:
    if settings.cache_url == "memory://":
        log.warning(
            "%d workers with cache_url=memory://: each worker sees only the writes "
            "that reach it; use redis:// for exact invalidation",
            settings.workers,
        )
    settings = _prepare(settings)
    context = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = [
        context.Process(target=_worker, args=(settings, n), name=f"metadata-worker-{n}")
        for n in range(settings.workers)
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in workers:
            worker.start()
        log.info("started %d workers", len(workers))
        failed = False
        while not stopping:
            ended = wait([w.sentinel for w in workers], timeout=0.5)
            if ended:
                failed = True
                log.error(
                    "a worker exited (status %s): stopping the others",
                    [w.exitcode for w in workers if w.exitcode is not None],
                )
                break
        _stop_all(workers, settings.shutdown_grace + EXIT_MARGIN)
        return 1 if failed else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_all(workers: list[BaseProcess], timeout: float) -> None:
    for worker in workers:
        if worker.is_alive():
            worker.terminate()  # SIGTERM: the worker's own graceful shutdown
    for worker in workers:
        worker.join(timeout)
        if worker.is_alive():
            log.error("%s did not stop within %gs: killing it", worker.name, timeout)
            worker.kill()
            worker.join()
