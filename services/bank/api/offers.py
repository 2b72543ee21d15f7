"""Offers and bookings: see them (live), answer them, give a booking up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from services.bank import repository, use_cases
from services.bank.api import INVALID, SIGNED_IN, WITH_BODY, Responses, problem
from services.bank.api.auth import Me, runtime_of
from services.bank.domain import Clinician, OfferRefused
from services.bank.live import OfferBroadcaster
from shared.events.contracts import REASON_TEXT_MAX, CancellationReason
from shared.http.problems import Problem
from shared.validation import Text

router = APIRouter(prefix="/api", tags=["offers and bookings"], responses=SIGNED_IN)
_ANSWER_ERRORS: Responses = {
    **INVALID,
    404: problem("No such offer for you."),
    409: problem("Already answered."),
    410: problem("Expired."),
}


def offer_json(row: Any) -> dict[str, Any]:
    """An offer as the app shows it: where, which sector, when, pay, distance, and why."""
    return {
        "offer_id": str(row["id"]),
        "session_id": str(row["session_id"]),
        "organisation": row["organisation"],
        "site_name": row["site_name"],
        "sector": row["sector"],
        "role": row["role"],
        "starts_at": row["starts_at"].isoformat(),
        "ends_at": row["ends_at"].isoformat(),
        "expires_at": row["expires_at"].isoformat(),
        "rate_pence_per_hour": row["rate_pence_per_hour"],
        "urgency": row["urgency"],
        "distance_km": row["distance_km"],
        "reasons": row["reasons"],
        "status": row["status"],
        "note": row["refusal"],
    }


async def _open_offers(pool: Any, clinician_id: uuid.UUID) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows = await repository.offers_of(pool, clinician_id, ["offered"])
    return [offer_json(r) for r in rows if r["expires_at"] > now]


@router.get("/offers", summary="Offers waiting for my answer")
async def my_offers(request: Request, me: Me) -> list[dict[str, Any]]:
    """Open offers that have not expired, soonest first."""
    return await _open_offers(runtime_of(request).pool, me.id)


@router.get(
    "/offers/stream",
    summary="Live offers (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def offer_stream(request: Request, me: Me) -> StreamingResponse:
    """An `offers` event with the open offers now, and again whenever they change."""
    broadcaster: OfferBroadcaster = request.app.state.offers
    pool = runtime_of(request).pool

    async def events() -> AsyncIterator[str]:
        async with broadcaster.listen(me.id) as changed:
            while not await request.is_disconnected():
                payload = json.dumps(await _open_offers(pool, me.id))
                yield f"event: offers\ndata: {payload}\n\n"
                with contextlib.suppress(TimeoutError):
                    # A keep-alive every 15 s also lets expired offers drop off the list.
                    await asyncio.wait_for(changed.get(), timeout=15)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/offers/{offer_id}",
    summary="One of my offers",
    responses={**INVALID, 404: problem("No such offer for you.")},
)
async def my_offer(request: Request, me: Me, offer_id: uuid.UUID) -> dict[str, Any]:
    """Where an offer stands; a refused, withdrawn or cancelled one says why (`note`)."""
    row = await repository.offer_of(runtime_of(request).pool, me.id, offer_id)
    if row is None:
        raise Problem(404, "No such offer for you.")
    return offer_json(row)


async def _answer(
    request: Request, me: Clinician, offer_id: uuid.UUID, *, accept: bool
) -> dict[str, str]:
    runtime = runtime_of(request)
    try:
        async with runtime.pool.acquire() as conn, conn.transaction():
            await use_cases.answer_offer(
                conn, clinician=me, offer_id=offer_id, accept=accept, emitter=runtime.emitter
            )
    except OfferRefused as exc:
        raise Problem(exc.status, exc.detail) from exc
    return {"offer_id": str(offer_id), "status": "accepted" if accept else "declined"}


@router.post(
    "/offers/{offer_id}/accept",
    summary="Accept an offer",
    status_code=202,
    responses=_ANSWER_ERRORS,
)
async def accept(request: Request, me: Me, offer_id: uuid.UUID) -> dict[str, str]:
    """Accept; matching confirms the booking (or says why not)."""
    return await _answer(request, me, offer_id, accept=True)


@router.post(
    "/offers/{offer_id}/decline",
    summary="Decline an offer",
    status_code=202,
    responses=_ANSWER_ERRORS,
)
async def decline(request: Request, me: Me, offer_id: uuid.UUID) -> dict[str, str]:
    """Say no; the session goes to the next clinician."""
    return await _answer(request, me, offer_id, accept=False)


@router.get("/bookings", summary="My bookings", responses=INVALID)
async def my_bookings(
    request: Request,
    me: Me,
    when: Annotated[Literal["upcoming", "past"], Query(description="Which ones.")] = "upcoming",
) -> list[dict[str, Any]]:
    """Upcoming (accepted or booked, not yet over) or past bookings."""
    now = datetime.now(UTC)
    pool = runtime_of(request).pool
    if when == "upcoming":
        rows = await repository.offers_of(pool, me.id, ["accepted", "booked"], ending_after=now)
    else:
        statuses = ["booked", "cancelled", "cancelled_by_me"]
        rows = await repository.offers_of(pool, me.id, statuses, ending_before=now)
    return [offer_json(r) for r in rows]


class CancelIn(BaseModel):
    """Why you are giving the booking up: the practice is told the category, and your own
    words only if you choose to share them."""

    model_config = ConfigDict(extra="forbid")

    category: CancellationReason = Field(
        description="Why, as a category the practice is told (the event carries it): illness,"
        " family_emergency (a family or caring emergency), transport, main_employer (called"
        " in by your main employer), another_commitment or other."
    )
    text: Text | None = Field(
        default=None,
        max_length=REASON_TEXT_MAX,
        description="Anything more, in your own words (at most 500 characters). Kept in the"
        " bank and shown in your bookings; the practice gets it only if"
        " `share_text_with_practice` is true. Never logged.",
    )
    share_text_with_practice: bool = Field(
        default=False, description="Give the practice your own words too (default: no)."
    )


@router.post(
    "/bookings/{offer_id}/cancel",
    summary="Cancel a booking",
    responses={
        **WITH_BODY,
        404: problem("No such booking for you."),
        409: problem("Not a live booking, or it has started."),
    },
)
async def cancel(request: Request, me: Me, offer_id: uuid.UUID, body: CancelIn) -> dict[str, Any]:
    """Give the booking up, saying why; within 48 hours of the start it counts as late.

    The practice is told the category, and your words only if you share them."""
    runtime = runtime_of(request)
    try:
        async with runtime.pool.acquire() as conn, conn.transaction():
            late = await use_cases.cancel_booking(
                conn,
                clinician=me,
                offer_id=offer_id,
                category=body.category,
                text=body.text,
                share_text=body.share_text_with_practice,
                emitter=runtime.emitter,
            )
    except OfferRefused as exc:
        raise Problem(exc.status, exc.detail) from exc
    return {"offer_id": str(offer_id), "status": "cancelled_by_me", "late": late}
