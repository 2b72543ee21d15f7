"""Kafka adapter: each session's figures from every event about it, and the drain ledger.

The consumer's inbox already drops redelivered events; the projections are also
idempotent of themselves: a session's facts are a set (a second *distinct* event saying
the same thing, such as a fill published again, adds nothing), and a move of matching's
ledger published again under a new event id is still one move.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.monitor import repository, session_store
from services.monitor.domain import (
    STAGE_OF_EVENT,
    Activity,
    DrainAlert,
    Fact,
    Filled,
    GivenUp,
    Offered,
    RegionPolicy,
    Said,
    Stated,
    fold,
)
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
    SessionCancelled,
    SessionFilled,
    SessionOffered,
    SessionPosted,
    SessionUnfilled,
)
from shared.messaging.consumer import Batched, Handler

# Every event of a session's lifecycle, whichever service says it.
LIFECYCLE: tuple[str, ...] = (
    "session.posted",
    "session.amended",
    "session.cancelled",
    "session.unfilled",
    "session.offered",
    "session.filled",
    "booking.cancelled",
)


def fact_of(envelope: Envelope[Any]) -> tuple[uuid.UUID, Fact]:
    """The session an event is about, and what it says of it."""
    data, at, event_id, region = (
        envelope.data,
        envelope.occurred_at,
        envelope.event_id,
        envelope.region,
    )
    match data:
        case SessionPosted() | SessionAmended():
            said = Said.POSTED if isinstance(data, SessionPosted) else Said.AMENDED
            released = data.released_clinician_id if isinstance(data, SessionAmended) else None
            return data.session_id, Stated(
                event_id=event_id,
                said=said,
                at=at,
                region=region,
                sector=data.sector.value,
                organisation=data.organisation,
                starts_at=data.starts_at,
                ends_at=data.ends_at,
                role=data.role.value,
                skills=tuple(sorted(k.value for k in data.skills)),
                released=released,
            )
        case SessionCancelled() | SessionUnfilled():
            cancelled = isinstance(data, SessionCancelled)
            return data.session_id, Stated(
                event_id=event_id,
                said=Said.CANCELLED if cancelled else Said.UNFILLED,
                at=at,
                region=region,
                sector=data.sector.value,
                organisation=data.organisation,
                starts_at=data.starts_at,
                ends_at=data.ends_at,
                late=isinstance(data, SessionCancelled) and data.late,
            )
        case SessionOffered():
            return data.session_id, Offered(
                event_id, data.offer_id, at, region, data.sector.value, data.role.value
            )
        case SessionFilled():
            return data.session_id, Filled(
                event_id=event_id,
                offer_id=data.offer_id,
                clinician_id=data.clinician_id,
                at=at,
                region=region,
                sector=data.sector.value,
                organisation=data.organisation,
                starts_at=data.starts_at,
                ends_at=data.ends_at,
            )
        case BookingCancelled():
            return data.session_id, GivenUp(
                event_id, data.offer_id, data.clinician_id, at, data.late
            )
    msg = f"{envelope.type!r} is not an event of a session's lifecycle"
    raise TypeError(msg)


async def on_lifecycle(conn: Conn, envelopes: list[Envelope[Any]]) -> None:
    """Add what the events say to their sessions' facts, and the change in the
    sessions' figures to the counters, in a few statements for the whole run."""
    new = [fact_of(e) for e in envelopes]
    known = await session_store.lock(conn, [sid for sid, _ in new])
    folded = fold(known, new)
    await session_store.save(conn, folded)
    await repository.add_recent(
        conn,
        [
            (e.event_id, Activity(STAGE_OF_EVENT[e.type], e.region, fact.sector, e.occurred_at))
            for e, (_, fact) in zip(envelopes, new, strict=True)
            if e.type in STAGE_OF_EVENT and not isinstance(fact, GivenUp)
        ],
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
    """Event type → handler, for the service's consumer.

    One ``Batched`` for the whole lifecycle, so that a run of a session's events of
    any types is folded in together.
    """
    lifecycle = Batched(on_lifecycle)
    return {
        **dict.fromkeys(LIFECYCLE, lifecycle),
        "move.recorded": on_move_recorded,
        "move.reversed": on_move_reversed,
        "sector.drain_alert": on_drain_alert,
        "sector.drain_cleared": on_drain_cleared,
        "policy.changed": on_policy_changed,
    }
