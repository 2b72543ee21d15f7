"""Composition root of the matching service: the one place it is wired together."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from fastapi import FastAPI

from services.matching import SCHEMA, SERVICE, handlers
from services.matching.planning import Pacer
from services.matching.settings import MatchingSettings
from shared.http.app import service_app
from shared.http.server import serve
from shared.logging import configure_logging
from shared.runtime import Runtime, emitter_for


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


def create_app(settings: MatchingSettings) -> FastAPI:
    """The matching app: consumes the bank's and vacancies' events, publishes offers."""

    async def planning(runtime: Runtime) -> None:
        # Plans are computed in a process of their own: seconds of CPU for a busy region
        # would otherwise hold Python's lock against the consumer in this one.
        executor = (
            ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=die_with_parent,
            )
            if settings.plan_in_subprocess
            else None
        )
        try:
            await asyncio.gather(
                handlers.sweep_forever(runtime, settings.sweep_s, settings.full_sweep_s, executor),
                handlers.plan_due_forever(
                    runtime,
                    settings.plan_poll_s,
                    executor,
                    Pacer(duty=settings.plan_duty),
                ),
            )
        finally:
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    return service_app(
        settings,
        service=SERVICE,
        schema=SCHEMA,
        migrations_dir=Path(__file__).with_name("migrations"),
        title="Fairshare matching",
        description="Fills sessions from the bank across sectors.",
        handlers=handlers.handlers(
            emitter_for(settings, service=SERVICE, schema=SCHEMA), debounce_s=settings.debounce_s
        ),
        background=[planning],
    )


def main() -> None:
    """Run the service until SIGINT or SIGTERM."""
    settings = MatchingSettings()
    configure_logging(SERVICE, settings.log_format)
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)
