"""Composition root of the bank service: the one place it is wired together."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.bank import SCHEMA, SERVICE, handlers, http
from services.bank.settings import BankSettings
from shared.http.app import service_app
from shared.http.server import serve
from shared.logging import configure_logging


def create_app(settings: BankSettings) -> FastAPI:
    """The bank app: the clinicians' API, and offers and bookings from matching."""
    return service_app(
        settings,
        service=SERVICE,
        schema=SCHEMA,
        migrations_dir=Path(__file__).with_name("migrations"),
        title="Fairshare bank",
        description="Clinicians offer their time to the shared bank and answer offers.",
        routers=[http.router],
        handlers=handlers.handlers(),
    )


def main() -> None:
    """Run the service until SIGINT or SIGTERM."""
    settings = BankSettings()
    configure_logging(SERVICE, settings.log_format)
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)
