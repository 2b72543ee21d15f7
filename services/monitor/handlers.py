"""Kafka adapter: count each session once per stage it reaches, and keep the drain ledger.

The consumer's inbox already drops redelivered events; what is checked here is
different: a second *distinct* event for the same session and stage (a new offer
after one lapsed) is activity, but not another session, and a move of matching's
ledger published again under a new event id is still one move.
"""

from __future__ import annotations

from typing import Any

from services.monitor import repository
from services.monitor.domain import STAGE_OF_EVENT, DrainAlert, RegionPolicy, Stage, stage_for
from shared.db.types import Conn
from shared.events import (
    BookingCancelled,
    Envelope,
    MoveRecorded,
    MoveReversed,
    PolicyChanged,
    SectorDrainAlert,
    SectorDrainCleared,
    SessionAmended,
    SessionFilled,
)
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


async def on_move_recorded(conn: Conn, envelope: Envelope[Any]) -> None:
    """Keep the move (once per move id) for the region's drain picture."""
    data: MoveRecorded = envelope.data
    await repository.add_move(
        conn,
        move_id=data.move_id,
        region=envelope.region,
        kind=data.kind,
        from_sector=data.from_sector.value,
        to_sector=data.to_sector.value,
        hours=data.hours,
        at=data.at,
    )


async def on_move_reversed(conn: Conn, envelope: Envelope[Any]) -> None:
    """The move's booking was released: its hours leave the drain picture."""
    data: MoveReversed = envelope.data
    await repository.reverse_move(
        conn,
        move_id=data.move_id,
        region=envelope.region,
        kind=data.kind,
        from_sector=data.from_sector.value,
        to_sector=data.to_sector.value,
        hours=data.hours,
        at=data.at,
        reversed_at=envelope.occurred_at,
    )


async def on_session_filled(conn: Conn, envelope: Envelope[Any]) -> None:
    """Count the session filled (unless its booking was released before this was read)."""
    data: SessionFilled = envelope.data
    await repository.count_fill(
        conn,
        session_id=data.session_id,
        offer_id=data.offer_id,
        clinician_id=data.clinician_id,
        region=envelope.region,
        sector=data.sector.value,
    )
    await repository.add_recent(
        conn,
        event_id=envelope.event_id,
        stage=Stage.FILLED,
        region=envelope.region,
        sector=data.sector.value,
        occurred_at=envelope.occurred_at,
    )


async def on_session_closed(conn: Conn, envelope: Envelope[Any]) -> None:
    """Cancelled, or started unfilled: a session that is not worked is not counted filled."""
    await repository.undo_fill(
        conn,
        session_id=envelope.data.session_id,
        closed_in=(envelope.region, envelope.data.sector.value),
    )


async def on_booking_cancelled(conn: Conn, envelope: Envelope[Any]) -> None:
    """The clinician gave the booking up: the session is open again, not filled."""
    data: BookingCancelled = envelope.data
    await repository.undo_fill(conn, session_id=data.session_id, offer_id=data.offer_id)


async def on_session_amended(conn: Conn, envelope: Envelope[Any]) -> None:
    """A change that released the booking opens the session again."""
    data: SessionAmended = envelope.data
    if data.released_clinician_id is not None:
        await repository.undo_fill(
            conn, session_id=data.session_id, clinician_id=data.released_clinician_id
        )


async def on_drain_alert(conn: Conn, envelope: Envelope[Any]) -> None:
    """Keep the alert as its sector's latest."""
    data: SectorDrainAlert = envelope.data
    alert = DrainAlert(
        region=envelope.region,
        sector=data.sector.value,
        net_out_hours=data.net_out_hours,
        offered_hours=data.offered_hours,
        cap_pct=data.cap_pct,
        used_pct=data.used_pct,
        window_days=data.window_days,
        raised_at=envelope.occurred_at,
    )
    await repository.save_alert(conn, event_id=envelope.event_id, alert=alert)


async def on_drain_cleared(conn: Conn, envelope: Envelope[Any]) -> None:
    """The sector fell back under its alert share: its badge goes."""
    data: SectorDrainCleared = envelope.data
    await repository.clear_alert(
        conn, region=envelope.region, sector=data.sector.value, at=envelope.occurred_at
    )


async def on_policy_changed(conn: Conn, envelope: Envelope[Any]) -> None:
    """Keep the policy as its region's latest: the caps the page shows."""
    data: PolicyChanged = envelope.data
    policy = RegionPolicy(
        region=envelope.region,
        cap_pct={sector.value: pct for sector, pct in data.cap_pct.items()},
        home_first=data.home_first,
        alert_share=data.alert_share,
        changed_at=envelope.occurred_at,
    )
    await repository.save_policy(conn, event_id=envelope.event_id, policy=policy)


def handlers() -> dict[str, Handler]:
    """Event type → handler, for the service's consumer."""
    return {
        **dict.fromkeys(STAGE_OF_EVENT, on_session_event),
        "session.filled": on_session_filled,
        "session.cancelled": on_session_closed,
        "session.unfilled": on_session_closed,
        "booking.cancelled": on_booking_cancelled,
        "session.amended": on_session_amended,
        "move.recorded": on_move_recorded,
        "move.reversed": on_move_reversed,
        "sector.drain_alert": on_drain_alert,
        "sector.drain_cleared": on_drain_cleared,
        "policy.changed": on_policy_changed,
    }
