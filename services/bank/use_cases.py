"""The bank's use cases, each a plain function over a connection in a transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from services.bank import repository
from services.bank.domain import (
    Clinician,
    OfferStatus,
    check_acceptance,
    check_cancellation,
    is_late,
    transferred,
)
from services.bank.patterns import HORIZON, Pattern, london_date, occurrences
from shared.db.types import Conn
from shared.events import (
    AvailabilityOffered,
    AvailabilityWithdrawn,
    BookingCancelled,
    ClinicianTransferred,
    OfferAccepted,
    OfferDeclined,
)
from shared.events.contracts import CancellationReason
from shared.messaging.emitter import Emitter


class WindowOverlaps(Exception):  # noqa: N818 - a refusal, not a crash
    """The new window overlaps one the clinician already offered."""


@dataclass(frozen=True)
class BookingConflict(Exception):  # noqa: N818 - a refusal, not a crash
    """Taking this time back would leave bookings uncovered; cancel them properly first."""

    bookings: list[dict[str, Any]]


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


async def offer_window(
    conn: Conn,
    *,
    clinician: Clinician,
    starts_at: datetime,
    ends_at: datetime,
    emitter: Emitter,
    pattern_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Store a window and tell matching, in one transaction; WindowOverlaps if it clashes."""
    availability_id = uuid.uuid4()
    try:
        async with conn.transaction():
            await repository.insert_availability(
                conn,
                availability_id=availability_id,
                clinician_id=clinician.id,
                starts_at=starts_at,
                ends_at=ends_at,
                pattern_id=pattern_id,
            )
    except asyncpg.ExclusionViolationError as exc:
        raise WindowOverlaps from exc
    await emitter.emit(
        conn,
        AvailabilityOffered(
            availability_id=availability_id,
            clinician_id=clinician.id,
            profession=clinician.profession,
            home_sector=clinician.home_sector,
            skills=sorted(clinician.skills),
            latitude=round(clinician.latitude, 2),  # about 1 km: enough to match, no more
            longitude=round(clinician.longitude, 2),
            travel_km=clinician.travel_km,
            employment=clinician.employment,
            wtr_opt_out=clinician.wtr_opt_out,
            self_employed=clinician.self_employed,
            starts_at=starts_at,
            ends_at=ends_at,
        ),
        region=clinician.region,
    )
    return availability_id


def _conflict_rows(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [
        {
            "offer_id": str(r["id"]),
            "late": str(is_late(r["starts_at"], now=datetime.now(UTC))).lower(),
            "site_name": r["site_name"],
            "starts_at": r["starts_at"].isoformat(),
            "ends_at": r["ends_at"].isoformat(),
            "cancel_with": f"POST /api/bookings/{r['id']}/cancel",
        }
        for r in rows
    ]


async def withdraw_window(
    conn: Conn, *, clinician: Clinician, window: asyncpg.Record, emitter: Emitter
) -> None:
    """Take a window back; BookingConflict if a booking needs it (cancel that properly)."""
    booked = await repository.bookings_within(
        conn, clinician.id, window["starts_at"], window["ends_at"]
    )
    if booked:
        raise BookingConflict(_conflict_rows(booked))
    await repository.withdraw_window(conn, window["id"])
    if window["pattern_id"] is not None:
        # Otherwise the pattern would make this date's window again at its next extension.
        await repository.add_exception(conn, window["pattern_id"], london_date(window["starts_at"]))
    await emitter.emit(
        conn,
        AvailabilityWithdrawn(availability_id=window["id"], clinician_id=clinician.id),
        region=clinician.region,
    )


async def extend_pattern(
    conn: Conn, *, clinician: Clinician, pattern: Pattern, emitter: Emitter, today: date
) -> int:
    """Make the pattern's windows up to the horizon that don't exist yet; return how many.

    A date whose window would clash with a one-off window already offered is skipped:
    the one-off stands.
    """
    have = {london_date(r["starts_at"]) for r in await repository.pattern_windows(conn, pattern.id)}
    made = 0
    for item in occurrences(
        pattern,
        start=today,
        end=today + HORIZON,
        exceptions=await repository.exceptions_of(conn, pattern.id),
    ):
        if item.on_date in have or item.starts_at <= datetime.now(UTC):
            continue
        try:
            await offer_window(
                conn,
                clinician=clinician,
                starts_at=item.starts_at,
                ends_at=item.ends_at,
                emitter=emitter,
                pattern_id=pattern.id,
            )
        except WindowOverlaps:
            continue
        made += 1
    return made


async def except_date(
    conn: Conn, *, clinician: Clinician, pattern: Pattern, on_date: date, emitter: Emitter
) -> None:
    """Take one date out of a pattern (its window is withdrawn, unless booked)."""
    for window in await repository.pattern_windows(conn, pattern.id):
        if london_date(window["starts_at"]) == on_date:
            await withdraw_window(conn, clinician=clinician, window=window, emitter=emitter)
    await repository.add_exception(conn, pattern.id, on_date)


async def stop_pattern(
    conn: Conn, *, clinician: Clinician, pattern: Pattern, emitter: Emitter
) -> None:
    """Stop a pattern and withdraw its future windows; BookingConflict if any is booked."""
    windows = [
        w
        for w in await repository.pattern_windows(conn, pattern.id)
        if w["ends_at"] > datetime.now(UTC)
    ]
    conflicts: list[asyncpg.Record] = []
    for window in windows:
        conflicts += await repository.bookings_within(
            conn, clinician.id, window["starts_at"], window["ends_at"]
        )
    if conflicts:
        raise BookingConflict(_conflict_rows(conflicts))
    for window in windows:
        await withdraw_window(conn, clinician=clinician, window=window, emitter=emitter)
    await repository.withdraw_pattern(conn, pattern.id)


async def answer_offer(
    conn: Conn,
    *,
    clinician: Clinician,
    offer_id: uuid.UUID,
    accept: bool,
    emitter: Emitter,
    now: datetime | None = None,
) -> None:
    """Accept or decline an offer; OfferRefused (nothing changed) if the clinician may not.

    A decline is published too, so matching passes the session to someone else.
    """
    offer = check_acceptance(
        await repository.offer_for_update(conn, offer_id), clinician_id=clinician.id, now=_now(now)
    )
    status, event = (
        (OfferStatus.ACCEPTED, OfferAccepted) if accept else (OfferStatus.DECLINED, OfferDeclined)
    )
    await repository.set_offer_status(conn, offer.id, status)
    await emitter.emit(
        conn,
        event(offer_id=offer.id, session_id=offer.session_id, clinician_id=clinician.id),
        region=clinician.region,
    )


# A cancelled booking's note, as the clinician reads it in their own history.
_CANCELLED_BECAUSE: dict[CancellationReason, str] = {
    CancellationReason.ILLNESS: "illness",
    CancellationReason.FAMILY_EMERGENCY: "a family or caring emergency",
    CancellationReason.TRANSPORT: "a travel or transport problem",
    CancellationReason.MAIN_EMPLOYER: "needed by your main employer",
    CancellationReason.ANOTHER_COMMITMENT: "another commitment",
    CancellationReason.OTHER: "another reason",
}


def cancellation_note(category: CancellationReason, text: str | None, *, shared: bool) -> str:
    """What the clinician's booking says once they gave it up: the category, and their
    own words with whether the practice was given them."""
    note = f"You cancelled: {_CANCELLED_BECAUSE[category]}."
    if text:
        whose = "shared with the practice" if shared else "kept in the bank, not shared"
        note += f" Your words ({whose}): {text}"
    return note


async def cancel_booking(
    conn: Conn,
    *,
    clinician: Clinician,
    offer_id: uuid.UUID,
    category: CancellationReason,
    text: str | None,
    share_text: bool,
    emitter: Emitter,
    now: datetime | None = None,
) -> bool:
    """Give a booking up, with a reason; return whether it was late (and so counted).

    The category is published (the practice and the ICB may see it); the clinician's own
    words stay in the bank (their booking's note) and go into the event, for the practice
    alone, only when they chose ``share_text``. Nothing here logs them.
    """
    offer = check_cancellation(
        await repository.offer_for_update(conn, offer_id), clinician_id=clinician.id, now=_now(now)
    )
    assert offer.starts_at is not None
    late = is_late(offer.starts_at, now=_now(now))
    text = (text or "").strip() or None
    await repository.set_offer_status(
        conn,
        offer.id,
        OfferStatus.CANCELLED_BY_ME,
        refusal=cancellation_note(category, text, shared=share_text),
    )
    if late:
        await repository.count_late_cancellation(conn, clinician.id)
    await emitter.emit(
        conn,
        BookingCancelled(
            offer_id=offer.id,
            session_id=offer.session_id,
            clinician_id=clinician.id,
            late=late,
            reason_category=category,
            reason_text=text if share_text else None,
        ),
        region=clinician.region,
    )
    return late


async def update_profile(
    conn: Conn, *, before: Clinician, changes: dict[str, Any], emitter: Emitter
) -> Clinician:
    """Apply the clinician's own changes; a new home sector or employer is published."""
    after = replace(before, **changes)
    await repository.save_profile(conn, after)
    if transferred(before, after):
        await emitter.emit(
            conn,
            ClinicianTransferred(
                clinician_id=after.id,
                profession=after.profession,
                from_sector=before.home_sector,
                to_sector=after.home_sector,
                from_organisation=before.home_organisation,
                to_organisation=after.home_organisation,
            ),
            region=after.region,
        )
    return after


def horizon_end(today: date) -> date:
    """Last date patterns are expanded to."""
    return today + HORIZON - timedelta(days=1)
