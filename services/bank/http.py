"""HTTP adapter: the clinicians' API. Thin: authenticate, validate, call a use case."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.bank import repository, use_cases
from services.bank.domain import Clinician, OfferRefused, check_window, hash_token
from shared.http.problems import Problem
from shared.runtime import Runtime

router = APIRouter(prefix="/api")
_bearer = HTTPBearer(auto_error=False, description="The sign-in token from your invite.")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def signed_in(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Clinician:
    """The clinician whose token came with the request; 401 otherwise."""
    if credentials is None:
        raise Problem(401, "Sign in: send your token as 'Authorization: Bearer <token>'.")
    clinician = await repository.clinician_by_token_hash(
        _runtime(request).pool, hash_token(credentials.credentials)
    )
    if clinician is None:
        raise Problem(401, "That sign-in token is not valid.")
    return clinician


Me = Annotated[Clinician, Depends(signed_in)]


class WindowIn(BaseModel):
    """A window of time the clinician is free to work."""

    model_config = ConfigDict(extra="forbid")

    starts_at: AwareDatetime = Field(description="Start, ISO 8601 with UTC offset.")
    ends_at: AwareDatetime = Field(description="End, ISO 8601 with UTC offset.")


@router.post("/availability", status_code=201, summary="Offer the bank a window of time")
async def add_availability(request: Request, me: Me, window: WindowIn) -> dict[str, Any]:
    """Store the window and let matching know."""
    problems = check_window(window.starts_at, window.ends_at, now=datetime.now(UTC))
    if problems:
        errors = [{"field": p.split(":")[0], "message": p.split(": ", 1)[1]} for p in problems]
        raise Problem(422, "The window is not valid.", errors=errors)
    runtime = _runtime(request)
    async with runtime.pool.acquire() as conn, conn.transaction():
        try:
            availability_id = await use_cases.offer_availability(
                conn,
                clinician=me,
                starts_at=window.starts_at,
                ends_at=window.ends_at,
                emitter=runtime.emitter,
            )
        except use_cases.WindowOverlaps as exc:
            raise Problem(
                409,
                "This window overlaps time you have already offered.",
                errors=[{"field": "starts_at", "message": "overlaps an existing window"}],
            ) from exc
    return {"availability_id": str(availability_id), **window.model_dump(mode="json")}


@router.get("/availability", summary="My windows")
async def my_availability(request: Request, me: Me) -> list[dict[str, Any]]:
    """The windows the clinician has offered."""
    rows = await repository.availability_of(_runtime(request).pool, me.id)
    return [
        {"availability_id": str(r["id"]), "starts_at": r["starts_at"], "ends_at": r["ends_at"]}
        for r in rows
    ]


def _offer_json(row: Any) -> dict[str, Any]:
    return {
        "offer_id": str(row["id"]),
        "session_id": str(row["session_id"]),
        "organisation": row["organisation"],
        "sector": row["sector"],
        "role": row["role"],
        "starts_at": row["starts_at"],
        "ends_at": row["ends_at"],
        "expires_at": row["expires_at"],
        "reasons": row["reasons"],
        "status": row["status"],
        "refusal": row["refusal"],
    }


@router.get("/offers", summary="Offers waiting for my answer")
async def my_offers(request: Request, me: Me) -> list[dict[str, Any]]:
    """Open offers that have not expired."""
    rows = await repository.offers_of(_runtime(request).pool, me.id, ["offered"])
    now = datetime.now(UTC)
    return [_offer_json(r) for r in rows if r["expires_at"] > now]


@router.get(
    "/offers/{offer_id}",
    summary="One of my offers, with where it stands",
    responses={404: {"description": "No such offer for you."}},
)
async def my_offer(request: Request, me: Me, offer_id: uuid.UUID) -> dict[str, Any]:
    """The offer's status; a refused acceptance says why (``refusal``)."""
    row = await repository.offer_of(_runtime(request).pool, me.id, offer_id)
    if row is None:
        raise Problem(404, "No such offer for you.")
    return _offer_json(row)


@router.post(
    "/offers/{offer_id}/accept",
    summary="Accept an offer",
    status_code=202,
    responses={
        404: {"description": "No such offer for you."},
        409: {"description": "Already answered."},
        410: {"description": "Expired."},
    },
)
async def accept(request: Request, me: Me, offer_id: uuid.UUID) -> dict[str, str]:
    """Accept; matching confirms the booking (or refuses it if the session went)."""
    runtime = _runtime(request)
    try:
        async with runtime.pool.acquire() as conn, conn.transaction():
            await use_cases.accept_offer(
                conn, clinician=me, offer_id=offer_id, emitter=runtime.emitter
            )
    except OfferRefused as exc:
        raise Problem(exc.status, exc.detail) from exc
    return {"offer_id": str(offer_id), "status": "accepted"}


@router.get("/bookings", summary="My accepted and booked sessions")
async def my_bookings(request: Request, me: Me) -> list[dict[str, Any]]:
    """Sessions the clinician accepted (awaiting confirmation) or is booked into."""
    rows = await repository.offers_of(_runtime(request).pool, me.id, ["accepted", "booked"])
    return [_offer_json(r) for r in rows]
