"""Composition root of the monitor service: the one place it is wired together."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.monitor import (
    SCHEMA,
    SERVICE,
    equity_routes,
    gauges,
    handlers,
    http,
    insights,
    signin,
)
from services.monitor.live import LiveHub
from services.monitor.settings import MonitorSettings
from shared.http.app import service_app
from shared.http.server import serve
from shared.logging import configure_logging
from shared.runtime import Runtime


def create_app(settings: MonitorSettings, *, schema: str = SCHEMA) -> FastAPI:
    """The monitor app: counts sessions posted, offered and filled, charts the moves between
    sectors, and shows both live, to signed-in ICB viewers, each their own region (a
    national viewer every region). ``schema`` holds its figures (a test may use its own)."""
    hub = LiveHub()

    async def listen(runtime: Runtime) -> None:
        await hub.run(runtime.settings.database_url, schema)

    app = service_app(
        settings,
        service=SERVICE,
        schema=schema,
        migrations_dir=Path(__file__).with_name("migrations"),
        title="Fairshare monitor",
        description="The ICB's live dashboard of sessions, and of moves between sectors,"
        " per region and sector.",
        routers=[signin.router, http.router, insights.router, equity_routes.router],
        handlers=handlers.handlers(),
        background=[listen],
        gauges=[gauges.register],
    )
    app.state.live = hub  # the page's live stream (services/monitor/live.py)
    signin.install(app, settings)
    return app


def main() -> None:
    """Run the service until SIGINT or SIGTERM."""
    settings = MonitorSettings()
    configure_logging(SERVICE, settings.log_format)
    # Sign-in is rate limited per source address: X-Forwarded-For names it only when
    # the connection comes from a configured trusted proxy (shared/http/server.py).
    serve(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        trusted_proxies=settings.trusted_proxies,
    )
