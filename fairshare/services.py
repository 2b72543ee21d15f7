"""The service catalogue as the command line sees it: names, schemas, migrations, mains."""

from __future__ import annotations

import importlib
from pathlib import Path

from fairshare.infra_settings import bare_settings
from shared.runtime import migrate

SERVICES: tuple[str, ...] = ("vacancies", "bank", "matching", "monitor")


def schema_of(service: str) -> str:
    """The PostgreSQL schema a service owns."""
    schema: str = importlib.import_module(f"services.{service}").SCHEMA
    return schema


def migrations_of(service: str) -> Path:
    """Folder of the service's own SQL migrations."""
    module = importlib.import_module(f"services.{service}")
    assert module.__file__ is not None
    return Path(module.__file__).with_name("migrations")


async def migrate_all(database_url: str) -> list[str]:
    """Apply every service's migrations; return those applied now, service-qualified."""
    applied: list[str] = []
    for service in SERVICES:
        done = await migrate(
            bare_settings(database_url),
            schema=schema_of(service),
            migrations_dir=migrations_of(service),
        )
        applied += [f"{service}:{name}" for name in done]
    return applied


def run_service(service: str) -> None:
    """Run one service in this process until SIGINT or SIGTERM."""
    importlib.import_module(f"services.{service}.app").main()
