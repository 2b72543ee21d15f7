"""The service catalogue as the command line sees it: names, schemas, migrations, mains."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fairshare.infra_settings import bare_settings
from shared.db import roles
from shared.db.pool import connect
from shared.runtime import migrate

SERVICES: tuple[str, ...] = ("vacancies", "bank", "matching", "monitor")
# Who logs in to the database: each service as its own role, and the admin commands.
LOGINS: tuple[str, ...] = (*SERVICES, "admin")


def schema_of(service: str) -> str:
    """The PostgreSQL schema a service owns."""
    schema: str = importlib.import_module(f"services.{service}").SCHEMA
    return schema


def migrations_of(service: str) -> Path:
    """Folder of the service's own SQL migrations."""
    module = importlib.import_module(f"services.{service}")
    assert module.__file__ is not None
    return Path(module.__file__).with_name("migrations")


def role_of(login: str) -> str:
    """The PostgreSQL role of a login in ``LOGINS``."""
    return roles.ADMIN_ROLE if login == "admin" else roles.role_of(schema_of(login))


@dataclass(frozen=True)
class Roles:
    """What the bootstrap did, and the database URL each login connects with."""

    urls: Mapping[str, str]
    done: roles.Bootstrapped


async def bootstrap_roles(owner_url: str, passwords: Mapping[str, str]) -> Roles:
    """As the database's owner at ``owner_url``, make each service's role own its schema
    (and everything in it) and the admin role a member of them, with ``passwords`` (by
    login); return each login's URL (the owner's, with the role and its password)."""
    conn = await connect(owner_url, "public")
    try:
        done = await roles.bootstrap(
            conn,
            schemas=[schema_of(service) for service in SERVICES],
            passwords={role_of(login): passwords[login] for login in LOGINS},
        )
    finally:
        await conn.close()
    urls = {
        login: roles.with_login(owner_url, role_of(login), passwords[login]) for login in LOGINS
    }
    return Roles(urls=urls, done=done)


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
