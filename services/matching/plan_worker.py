"""Plans carried out whole in a process of their own: read, plan and write there.

Computing a plan in a worker process was not enough. Reading a region of 50,000 open
sessions, and writing thousands of reasons and their events, took seconds of Python
in the service's own event loop, which the consumer and the outbox relay share: in
the sustained benchmark matching's consumer stalled for 2.6 s and its relay published
``session.unmatched`` up to 9 s late while a whole-region plan was read and written.
Here the worker reads, plans and writes with a connection pool of its own, and the
service's loop only waits for the count of offers made.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import signal
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Literal

import asyncpg
import structlog

from services.matching import planning, repository
from shared.db.pool import create_pool
from shared.logging import configure_logging
from shared.messaging.emitter import Emitter

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Job:
    """One re-plan, as sent to the worker (picklable)."""

    dsn: str
    emitter: Emitter
    region: str
    span: repository.Span


# The worker's own loop and pool, kept between jobs (one worker process, one job at a
# time): a pool per job would pay for new connections on every plan.
_loop: asyncio.AbstractEventLoop | None = None
_pool: asyncpg.Pool | None = None


def replan_here(job: Job) -> int:
    """In the worker: read, plan and write ``job``'s region; how many offers were made."""
    global _loop  # noqa: PLW0603 - the worker process's one loop, kept between jobs
    if _loop is None:
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(_replan(job))


async def _replan(job: Job) -> int:
    global _pool  # noqa: PLW0603 - the worker process's one pool, kept between jobs
    if _pool is None:
        _pool = await create_pool(job.dsn, job.emitter.schema, max_size=2)
    return await planning.replan_detached(
        _pool, region=job.region, emitter=job.emitter, span=job.span
    )


def die_with_parent() -> None:
    """In the planning process: be killed when the service dies, however it dies.

    An orphaned worker would keep the service's output pipes open, and a supervisor
    waiting for them to close would never see that the service died (Linux only; hand
    written because the standard library offers no way to ask for it).
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


def _start_worker(service: str, log_format: Literal["auto", "console", "json"]) -> None:
    die_with_parent()
    configure_logging(service, log_format)


class PlanWorker:
    """The service's planning process: re-plans sent to it run there whole."""

    def __init__(
        self, dsn: str, *, service: str, log_format: Literal["auto", "console", "json"]
    ) -> None:
        self.dsn = dsn
        self._started = (service, log_format)
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=self._started,
        )

    async def replan(self, *, region: str, emitter: Emitter, span: repository.Span) -> int:
        """Re-plan ``region`` (near ``span``) in the worker; how many offers were made."""
        job = Job(self.dsn, emitter, region, span)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, replan_here, job
            )
        except BrokenProcessPool:
            # The worker died (killed, out of memory): start another for the next plan;
            # this one's request is asked for again by the caller.
            log.warning("the planning process died; starting another")
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()
            raise

    def shutdown(self) -> None:
        """Stop the worker without waiting for a plan in progress."""
        self._executor.shutdown(wait=False, cancel_futures=True)
