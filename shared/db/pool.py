"""asyncpg pools that keep each service inside its own schema."""

from __future__ import annotations

import json
import re

import asyncpg

from shared.db.types import Conn

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema(schema: str) -> str:
    """Return ``schema`` if it is a safe identifier; schemas are interpolated into SQL."""
    if not _SCHEMA_RE.match(schema):
        msg = f"invalid schema name {schema!r}"
        raise ValueError(msg)
    return schema


async def _init_connection(conn: Conn) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Release a connection without asyncpg's reset query (one round trip per release).

    That query (RESET ALL, UNLISTEN *, advisory unlock, CLOSE ALL) undoes session state;
    pooled connections hold none: advisory locks are per transaction, LISTEN has its own
    connections, and settings come at connect. An open transaction is still rolled back.
    """


async def create_pool(dsn: str, schema: str, *, max_size: int = 10) -> asyncpg.Pool:
    """Open a pool whose connections resolve unqualified names in ``schema`` first."""
    check_schema(schema)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        server_settings={"search_path": f"{schema},public"},
        init=_init_connection,
        reset=_keep_session,
    )
    assert pool is not None  # asyncpg types the pool as optional only for the awaited form
    return pool


async def connect(dsn: str, schema: str) -> asyncpg.Connection:
    """Open one connection inside ``schema`` (for CLI administration and listeners)."""
    check_schema(schema)
    conn: asyncpg.Connection = await asyncpg.connect(
        dsn, server_settings={"search_path": f"{schema},public"}
    )
    await _init_connection(conn)
    return conn
