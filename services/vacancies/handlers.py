"""Kafka adapter: what the vacancies service does with matching's events."""

from __future__ import annotations

from typing import Any

from services.vacancies import repository
from services.vacancies.domain import next_status
from shared.db.types import Conn
from shared.events import Envelope
from shared.messaging.consumer import Handler


async def on_session_progress(conn: Conn, envelope: Envelope[Any]) -> None:
    """Record that one of our sessions was offered or filled."""
    current = await repository.session_status(conn, envelope.data.session_id)
    if current is None:
        return  # not posted through this service (another deployment's session)
    status = next_status(current, envelope.type)
    clinician = envelope.data.clinician_id if envelope.type == "session.filled" else None
    if status is not current or clinician is not None:
        await repository.set_status(conn, envelope.data.session_id, status, clinician)


def handlers() -> dict[str, Handler]:
    """Event type → handler, for the service's consumer."""
    return {"session.offered": on_session_progress, "session.filled": on_session_progress}
