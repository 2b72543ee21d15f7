"""Migrations: plain SQL files applied in order, each once, and recorded.

Hand-written rather than Alembic because there is no ORM here and each service
needs only "apply these files to my schema in order"; that is 40 lines, and it
runs the shared outbox/inbox tables into every schema the same way.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from shared.db.pool import check_schema
from shared.db.types import Conn

SHARED_SQL = Path(__file__).with_name("sql")


def migration_files(service_dir: Path) -> list[tuple[str, Path]]:
    """The shared migrations, then the service's own, each with its recorded name."""
    shared = [(f"shared/{p.name}", p) for p in sorted(SHARED_SQL.glob("*.sql"))]
    own = [(p.name, p) for p in sorted(service_dir.glob("*.sql"))]
    return shared + own


async def apply_migrations(conn: Conn, schema: str, service_dir: Path) -> list[str]:
    """Bring ``schema`` up to date; return the names of the migrations applied now.

    An advisory lock per schema lets several processes start at once safely.
    """
    check_schema(schema)
    applied_now: list[str] = []
    lock_key = zlib.crc32(f"fairshare-migrate:{schema}".encode())
    await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public")
        # Not CREATE SCHEMA IF NOT EXISTS: a service's role may not create schemas, and
        # PostgreSQL checks that before whether the schema exists (shared/db/roles.py).
        if not await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch(f"SELECT name FROM {schema}.schema_migrations")}
        for name, path in migration_files(service_dir):
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                await conn.execute(path.read_text())
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (name) VALUES ($1)", name
                )
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
    return applied_now
