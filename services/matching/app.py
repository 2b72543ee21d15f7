"""Composition root of the matching service: the one place it is wired together."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from services.matching import SCHEMA, SERVICE, gauges, handlers
from services.matching.plan_worker import PlanWorker
from services.matching.planning import Pacer
from services.matching.settings import MatchingSettings
from shared.http.app import service_app
from shared.http.server import serve
from shared.logging import configure_logging
from shared.runtime import Runtime, emitter_for


def create_app(settings: MatchingSettings) -> FastAPI:
    """The matching app: consumes the bank's and vacancies' events, publishes offers."""

    async def planning(runtime: Runtime) -> None:
        # Plans are read, computed and written in a process of their own: seconds of
        # Python for a busy region would otherwise stall the consumer and the outbox
        # relay that share this one's loop (see plan_worker.py).
        worker = (
            PlanWorker(settings.database_url, service=SERVICE, log_format=settings.log_format)
            if settings.plan_in_subprocess
            else None
        )
        try:
            await asyncio.gather(
                handlers.sweep_forever(runtime, settings.sweep_s, settings.full_sweep_s, worker),
                handlers.plan_due_forever(
                    runtime,
                    settings.plan_poll_s,
                    worker,
                    Pacer(duty=settings.plan_duty),
                ),
            )
        finally:
            if worker is not None:
                worker.shutdown()

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
        gauges=[gauges.register],
    )


def main() -> None:
    """Run the service until SIGINT or SIGTERM."""
    settings = MatchingSettings()
    configure_logging(SERVICE, settings.log_format)
    serve(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        trusted_proxies=settings.trusted_proxies,
    )
