"""Composition root of the bank service: the one place it is wired together."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import structlog
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.bank import SCHEMA, SERVICE, handlers, repository, use_cases
from services.bank.api import auth, availability, offers, profile, timesheets
from services.bank.live import OfferBroadcaster
from services.bank.settings import BankSettings
from shared.http.app import service_app
from shared.http.ratelimit import RateLimiter
from shared.http.server import serve
from shared.logging import configure_logging
from shared.runtime import Runtime

log = structlog.get_logger(__name__)
STATIC = Path(__file__).with_name("static")


async def extend_patterns_forever(runtime: Runtime, every_s: float) -> None:
    """Keep every weekly pattern's windows offered eight weeks ahead."""
    while True:
        try:
            today = datetime.now(UTC).date()
            for clinician_id, pattern in await repository.live_patterns(runtime.pool):
                async with runtime.pool.acquire() as conn, conn.transaction():
                    clinician = await repository.clinician(conn, clinician_id)
                    if clinician is not None:
                        await use_cases.extend_pattern(
                            conn,
                            clinician=clinician,
                            pattern=pattern,
                            emitter=runtime.emitter,
                            today=today,
                        )
        except Exception:  # retried at the next tick
            log.exception("extending patterns failed")
        await asyncio.sleep(every_s)


def create_app(settings: BankSettings) -> FastAPI:
    """The bank app: the clinicians' API and app, and offers and bookings from matching."""
    broadcaster = OfferBroadcaster()

    async def listen(runtime: Runtime) -> None:
        await broadcaster.run(runtime.settings.database_url)

    async def patterns(runtime: Runtime) -> None:
        await extend_patterns_forever(runtime, settings.pattern_sweep_s)

    app = service_app(
        settings,
        service=SERVICE,
        schema=SCHEMA,
        migrations_dir=Path(__file__).with_name("migrations"),
        title="Fairshare bank",
        description="Clinicians join once, offer their time and answer offers, from a phone.",
        routers=[
            auth.router,
            profile.router,
            availability.router,
            offers.router,
            timesheets.router,
        ],
        handlers=handlers.handlers(),
        background=[listen, patterns],
    )
    app.state.offers = broadcaster
    app.state.signin_limiter = RateLimiter(settings.signin_per_s, settings.signin_burst)
    if STATIC.is_dir():
        app.mount("/app", StaticFiles(directory=STATIC, html=True), name="app")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/app/")

    return app


def main() -> None:
    """Run the service until SIGINT or SIGTERM."""
    settings = BankSettings()
    configure_logging(SERVICE, settings.log_format)
    serve(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        trusted_proxies=settings.trusted_proxies,
    )
