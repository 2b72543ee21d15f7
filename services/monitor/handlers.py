"""Kafka adapter: count each session once per stage it reaches.

The consumer's inbox already drops redelivered events; what is checked here is
different: a second *distinct* event for the same session and stage (a new offer
after one lapsed) is activity, but not another session.
"""

from __future__ import annotations

from typing import Any

from services.monitor import repository
from services.monitor.domain import STAGE_OF_EVENT, stage_for
from shared.db.types import Conn
from shared.events import Envelope
from shared.messaging.consumer import Handler


async def on_session_event(conn: Conn, envelope: Envelope[Any]) -> None:
    """Count the session in the stage this event marks, and list the event as activity."""
    stage = stage_for(envelope.type)
    sector = str(envelope.data.sector)
    await repository.count_once(
        conn,
        session_id=envelope.data.session_id,
        region=envelope.region,
        sector=sector,
        stage=stage,
    )
    await repository.add_recent(
        conn,
        event_id=envelope.event_id,
        stage=stage,
        region=envelope.region,
        sector=sector,
        occurred_at=envelope.occurred_at,
    )


def handlers() -> dict[str, Handler]:
    """Event type → handler, for the service's consumer."""
    return dict.fromkeys(STAGE_OF_EVENT, on_session_event)
