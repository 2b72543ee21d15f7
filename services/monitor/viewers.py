"""ICB viewers, their invites and sessions in the monitor schema (asyncpg).

Used by the sign-in routes and by ``fairshare icb``. Codes and tokens come in and go
out in the clear, and are hashed here, so nothing else can store one by mistake.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from services.monitor.access import (
    INVITE_TTL,
    Viewer,
    code_hash,
    hash_secret,
    new_code,
    new_token,
)
from shared.db.types import Conn


class ViewerError(Exception):
    """An administration request that can't be carried out; the message says why."""


@dataclass(frozen=True, slots=True)
class ViewerListing:
    """One viewer as ``fairshare icb list`` shows them."""

    viewer: Viewer
    created_at: datetime
    revoked_at: datetime | None
    sessions: int
    open_invites: int


def _viewer(row: asyncpg.Record) -> Viewer:
    return Viewer(row["id"], row["name"], row["region"], row["national"])


async def add_viewer(conn: Conn, *, name: str, region: str | None, national: bool) -> Viewer:
    """Store a new viewer."""
    viewer = Viewer(uuid.uuid4(), name, region, national)
    await conn.execute(
        "INSERT INTO viewers (id, name, region, national) VALUES ($1, $2, $3, $4)",
        viewer.id,
        viewer.name,
        viewer.region,
        viewer.national,
    )
    return viewer


async def invite(
    conn: Conn, viewer_id: uuid.UUID, *, now: datetime, ttl: timedelta = INVITE_TTL
) -> str:
    """A one-time code for ``viewer_id``, valid for ``ttl``; refused for a revoked viewer."""
    live = await conn.fetchval(
        "SELECT revoked_at IS NULL FROM viewers WHERE id = $1 FOR UPDATE", viewer_id
    )
    if not live:
        msg = f"no viewer {viewer_id}" if live is None else f"viewer {viewer_id} is revoked"
        raise ViewerError(msg)
    code = new_code()
    await conn.execute(
        "INSERT INTO viewer_invites (code_hash, viewer_id, expires_at) VALUES ($1, $2, $3)",
        code_hash(code),
        viewer_id,
        now + ttl,
    )
    return code


async def named_national_viewer(conn: Conn, name: str) -> Viewer:
    """The live national viewer called ``name`` (the oldest, if several), made if none:
    ``fairshare dev`` invites the same one at every start rather than a new one."""
    row = await conn.fetchrow(
        "SELECT id, name, region, national FROM viewers WHERE name = $1 AND national"
        " AND revoked_at IS NULL ORDER BY created_at LIMIT 1",
        name,
    )
    if row is not None:
        return _viewer(row)
    return await add_viewer(conn, name=name, region=None, national=True)


async def sign_in(
    pool: asyncpg.Pool, typed_code: str, *, now: datetime, session_ttl: timedelta
) -> tuple[Viewer, str] | None:
    """Spend an invite code and open a session: the viewer and the session's token, or
    None whatever was wrong (unknown, used, expired, revoked), so no answer tells which."""
    async with pool.acquire() as conn, conn.transaction():
        # One statement marks the code used: two browsers racing with one code can't
        # both win.
        row = await conn.fetchrow(
            "UPDATE viewer_invites i SET used_at = $2 FROM viewers v"
            " WHERE i.code_hash = $1 AND i.used_at IS NULL AND i.expires_at > $2"
            " AND v.id = i.viewer_id AND v.revoked_at IS NULL"
            " RETURNING v.id, v.name, v.region, v.national",
            code_hash(typed_code),
            now,
        )
        if row is None:
            return None
        token = new_token()
        await conn.execute(
            "INSERT INTO viewer_sessions (token_hash, viewer_id, created_at, expires_at)"
            " VALUES ($1, $2, $3, $4)",
            hash_secret(token),
            row["id"],
            now,
            now + session_ttl,
        )
        # Ended sessions are of no use to anyone; signing in is rare enough to sweep.
        await conn.execute("DELETE FROM viewer_sessions WHERE expires_at <= $1", now)
        return _viewer(row), token


async def by_session(conn: Conn | asyncpg.Pool, token: str, *, now: datetime) -> Viewer | None:
    """The viewer whose live session ``token`` is; None if it ended or never was."""
    row = await conn.fetchrow(
        "SELECT v.id, v.name, v.region, v.national FROM viewer_sessions s"
        " JOIN viewers v ON v.id = s.viewer_id"
        " WHERE s.token_hash = $1 AND s.expires_at > $2 AND v.revoked_at IS NULL",
        hash_secret(token),
        now,
    )
    return None if row is None else _viewer(row)


async def end_session(conn: Conn | asyncpg.Pool, token: str) -> None:
    """Sign out: the session ``token`` is gone."""
    await conn.execute("DELETE FROM viewer_sessions WHERE token_hash = $1", hash_secret(token))


async def revoke(conn: Conn, who: str, *, now: datetime) -> Viewer:
    """Revoke the live viewer whose id or name is ``who``: their sessions end and their
    unused codes stop working. A name shared by several live viewers is refused."""
    try:
        by_id: uuid.UUID | None = uuid.UUID(who)
    except ValueError:
        by_id = None
    rows = await conn.fetch(
        "SELECT id, name, region, national FROM viewers"
        " WHERE (id = $1 OR name = $2) AND revoked_at IS NULL FOR UPDATE",
        by_id,
        who,
    )
    if not rows:
        msg = f"no live viewer with id or name {who!r}"
        raise ViewerError(msg)
    if len(rows) > 1:
        ids = ", ".join(str(r["id"]) for r in rows)
        msg = f"{len(rows)} live viewers are called {who!r}; revoke one by id: {ids}"
        raise ViewerError(msg)
    viewer = _viewer(rows[0])
    await conn.execute("UPDATE viewers SET revoked_at = $2 WHERE id = $1", viewer.id, now)
    await conn.execute("DELETE FROM viewer_sessions WHERE viewer_id = $1", viewer.id)
    await conn.execute(
        "UPDATE viewer_invites SET expires_at = $2 WHERE viewer_id = $1 AND used_at IS NULL"
        " AND expires_at > $2",
        viewer.id,
        now,
    )
    return viewer


async def listing(conn: Conn, *, now: datetime) -> list[ViewerListing]:
    """Every viewer, oldest first, with their live sessions and unused live codes."""
    rows = await conn.fetch(
        "SELECT v.id, v.name, v.region, v.national, v.created_at, v.revoked_at,"
        " (SELECT count(*) FROM viewer_sessions s WHERE s.viewer_id = v.id"
        "  AND s.expires_at > $1) AS sessions,"
        " (SELECT count(*) FROM viewer_invites i WHERE i.viewer_id = v.id"
        "  AND i.used_at IS NULL AND i.expires_at > $1) AS open_invites"
        " FROM viewers v ORDER BY v.created_at, v.id",
        now,
    )
    return [
        ViewerListing(
            _viewer(r), r["created_at"], r["revoked_at"], r["sessions"], r["open_invites"]
        )
        for r in rows
    ]
