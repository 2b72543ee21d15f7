"""Scheduling callbacks to organisations about their sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.vacancies import callback_store, repository
from services.vacancies.domain import StoredSession
from shared.db.types import Conn


def callback_body(session: StoredSession, event_type: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The signed body an organisation receives: ``{type, timestamp, data}``."""
    d = session.details
    return {
        "type": event_type,
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {
            "session_id": str(session.id),
            "external_id": d.external_id,
            "site": d.site,
            "status": session.status.value,
            "starts_at": d.starts_at.isoformat(),
            "ends_at": d.ends_at.isoformat(),
            **extra,
        },
    }


async def notify(
    conn: Conn,
    session: StoredSession,
    event_type: str,
    *,
    window: timedelta,
    extra: dict[str, Any] | None = None,
) -> str | None:
    """Schedule a callback in the caller's transaction; None if no callback URL is set."""
    organisation = await repository.organisation(conn, session.organisation)
    if organisation is None or not organisation.callback_url:
        return None
    return await callback_store.enqueue(
        conn,
        organisation=session.organisation,
        session_id=session.id,
        event_type=event_type,
        payload=callback_body(session, event_type, extra or {}),
        give_up_at=datetime.now(UTC) + window,
    )
