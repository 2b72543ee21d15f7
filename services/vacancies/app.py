"""Composition root of the vacancies service: the one place it is wired together."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import TypeAdapter

from services.vacancies import (
    SCHEMA,
    SERVICE,
    handlers,
    http,
    intake,
    sealing,
    sweeps,
    timesheet_api,
    timesheet_hooks,
    timesheet_store,
)
from services.vacancies.settings import VacanciesSettings
from shared.http.app import service_app
from shared.http.ratelimit import RateLimiter
from shared.http.server import serve
from shared.logging import configure_logging
from shared.runtime import Runtime

DESCRIPTION = """\
Practices, PCNs, pharmacies, dental practices and optometrists post vacant sessions
to one web hook per organisation, signed per [Standard Webhooks](https://www.standardwebhooks.com/)
with the organisation's secret, and read their sessions back with their API key.
Callbacks about their sessions (offered, filled, unfilled, cancelled by the clinician)
are signed the same way. Every refusal is RFC 9457 problem+json naming each field.
"""


def create_app(settings: VacanciesSettings) -> FastAPI:
    """The vacancies app: the web hook, the read API, callbacks and the unfilled sweep."""
    window = timedelta(seconds=settings.callback_window_s)

    async def unfilled(runtime: Runtime) -> None:
        await sweeps.unfilled_forever(runtime, settings)

    async def callbacks(runtime: Runtime) -> None:
        await sweeps.callbacks_forever(runtime, settings)

    async def timesheets(runtime: Runtime) -> None:
        await timesheet_store.approve_overdue_forever(runtime, settings)

    period = timedelta(hours=settings.timesheet_approval_hours)

    app = service_app(
        settings,
        service=SERVICE,
        schema=SCHEMA,
        migrations_dir=Path(__file__).with_name("migrations"),
        title="Fairshare vacancies",
        description=DESCRIPTION,
        routers=[http.router, timesheet_api.router],
        handlers=handlers.handlers(window, period),
        background=[
            unfilled,
            callbacks,
            timesheets,
            sweeps.prune_receipts_forever,
            sealing.at_start(settings),
        ],
    )
    app.state.limits = http.Limits(
        organisations=RateLimiter(settings.rate_per_s, settings.rate_burst),
        failures=RateLimiter(settings.failed_per_s, settings.failed_burst),
        max_body_bytes=settings.max_body_bytes,
    )
    _document_deliveries(app)
    return app


def _document_deliveries(app: FastAPI) -> None:
    """Put the web hook's body schema (read from raw bytes, for signing) into OpenAPI."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base()
        delivery = TypeAdapter(intake.Delivery).json_schema(
            ref_template="#/components/schemas/{model}"
        )
        answers = TypeAdapter(timesheet_hooks.TimesheetDelivery).json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(delivery.pop("$defs", {}))
        components.update(answers.pop("$defs", {}))
        # One body schema for every kind of delivery, sessions' and timesheets' alike.
        delivery["oneOf"] += answers["oneOf"]
        delivery["discriminator"]["mapping"].update(answers["discriminator"]["mapping"])
        components["Delivery"] = delivery
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def main() -> None:
    """Run the service until SIGINT or SIGTERM."""
    settings = VacanciesSettings()
    configure_logging(SERVICE, settings.log_format)
    serve(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        trusted_proxies=settings.trusted_proxies,
    )
