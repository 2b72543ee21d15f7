"""Kafka adapter: each session's figures from every event about it, and the drain ledger.

The consumer's inbox already drops redelivered events; the projections are also
idempotent of themselves: a session's facts are a set (a second *distinct* event saying
the same thing, such as a fill published again, adds nothing), and a move of matching's
ledger published again under a new event id is still one move.

Each handler also adds its events to the live tail and wakes the open pages of the
regions it changed (``live.notify``, delivered when the transaction commits).
"""

from __future__ import annotations

import uuid
from typing import Any

from services.monitor import cap_base, live, repository, session_store
from services.monitor.cap_base import CapBase
from services.monitor.domain import (
    DrainAlert,
    Fact,
    Filled,
    GivenUp,
    Offered,
    RegionPolicy,
    Said,
    Stated,
    Unmatched,
    fold,
)
from services.monitor.tail import line_for
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
    SessionUnmatched,
)
from shared.messaging.consumer import Batched, Handler

# Every event of a session's lifecycle, whichever service says it, and matching's
# reasons for leaving a session without an offer (the at-risk list's "why").
LIFECYCLE: tuple[str, ...] = (
    "session.posted",
    "session.amended",
    "session.cancelled",
    "session.unfilled",
    "session.offered",
    "session.filled",
    "booking.cancelled",
    "session.unmatched",
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
                site_name=data.site_name,
                imd_decile=data.imd_decile,
                place=data.place,
                pcn=data.pcn,
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
        case SessionUnmatched():
            return data.session_id, Unmatched(event_id, at, data.why, data.detail)
    msg = f"{envelope.type!r} is not an event of a session's lifecycle"
    raise TypeError(msg)


async def on_lifecycle(conn: Conn, envelopes: list[Envelope[Any]]) -> None:
    """Add what the events say to their sessions' facts, and the change in the
    sessions' figures to the counters, in a few statements for the whole run."""
    new = [fact_of(e) for e in envelopes]
    known = await session_store.lock(conn, [sid for sid, _ in new])
    folded = fold(known, new)
    await session_store.save(conn, folded)
    lines = []
    for e, (sid, _) in zip(envelopes, new, strict=True):
        # A booking given up names no sector: its session's, as the facts now say.
        now = folded.figures.get(sid)
        line = line_for(e, sector=now.sector if now is not None else None)
        if line is not None:
            lines.append((e.event_id, line))
    await repository.add_tail(conn, lines)
    await live.notify(conn, (e.region for e in envelopes))


async def _tail_and_notify(conn: Conn, envelope: Envelope[Any]) -> None:
    line = line_for(envelope)
    if line is not None:
        await repository.add_tail(conn, [(envelope.event_id, line)])
    await live.notify(conn, [envelope.region])


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
    await _tail_and_notify(conn, envelope)


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
    await _tail_and_notify(conn, envelope)


async def _save_cap_base(conn: Conn, envelope: Envelope[Any]) -> None:
    """An alert or a clearing says the hours the sector offered: its cap's base."""
    data: SectorDrainAlert = envelope.data  # a clearing has the same fields
    base = CapBase(
        region=envelope.region,
        sector=data.sector.value,
        offered_hours=data.offered_hours,
        window_days=data.window_days,
        counted_at=envelope.occurred_at,
    )
    await cap_base.save(conn, event_id=envelope.event_id, base=base)


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
    await _save_cap_base(conn, envelope)
    await _tail_and_notify(conn, envelope)


async def on_drain_cleared(conn: Conn, envelope: Envelope[Any]) -> None:
    """The sector fell back under its alert share: its badge goes."""
    data: SectorDrainCleared = envelope.data
    await repository.clear_alert(
        conn, region=envelope.region, sector=data.sector.value, at=envelope.occurred_at
    )
    await _save_cap_base(conn, envelope)
    await _tail_and_notify(conn, envelope)


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
    await live.notify(conn, [envelope.region])  # the caps shown change; not a tail line


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
