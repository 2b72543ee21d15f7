"""Composition root of the vacancies service: the one place it is wired together."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.vacancies import SCHEMA, SERVICE, handlers, http
from services.vacancies.settings import VacanciesSettings
from shared.http.app import service_app
from shared.http.server import serve
from shared.logging import configure_logging


def create_app(settings: VacanciesSettings) -> FastAPI:
    """The vacancies app: the signed web hook, and matching's news of our sessions."""
    return service_app(
        settings,
        service=SERVICE,
        schema=SCHEMA,
        migrations_dir=Path(__file__).with_name("migrations"),
        title="Fairshare vacancies",
        description="Practices post vacant sessions through a Standard Webhooks signed hook.",
        routers=[http.router],
        handlers=handlers.handlers(),
    )


def main() -> None:
    """Run the service until SIGINT or SIGTERM."""
    settings = VacanciesSettings()
    configure_logging(SERVICE, settings.log_format)
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)
