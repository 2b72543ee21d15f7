"""Kafka adapter: count each session event once (the consumer's inbox sees to once)."""

from __future__ import annotations

from typing import Any

from services.monitor import repository
from services.monitor.domain import COUNTER_FOR_EVENT, counter_for
from shared.db.types import Conn
from shared.events import Envelope
from shared.messaging.consumer import Handler


async def on_session_event(conn: Conn, envelope: Envelope[Any]) -> None:
    """Move the counter this event stands for."""
    await repository.increment(
        conn,
        region=envelope.region,
        sector=envelope.data.sector.value,
        counter=counter_for(envelope.type),
    )


def handlers() -> dict[str, Handler]:
    """Event type → handler, for the service's consumer."""
    return dict.fromkeys(COUNTER_FOR_EVENT, on_session_event)
