"""Offering time: one-off windows and weekly patterns, and taking them back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.bank import repository, use_cases
from services.bank.api import INVALID, SIGNED_IN, WITH_BODY, problem
from services.bank.api.auth import Me, runtime_of
from services.bank.domain import check_window
from services.bank.patterns import Pattern
from shared.http.problems import Problem
from shared.validation import Day, Instant, WallClock

router = APIRouter(prefix="/api/availability", tags=["availability"], responses=SIGNED_IN)


class WindowIn(BaseModel):
    """A window of time you are free to work."""

    model_config = ConfigDict(extra="forbid")

    starts_at: Instant = Field(description="Start, ISO 8601 with UTC offset.")
    ends_at: Instant = Field(description="End, ISO 8601 with UTC offset.")


class PatternIn(BaseModel):
    """Every week on one day, between two London times."""

    model_config = ConfigDict(extra="forbid")

    weekday: int = Field(ge=0, le=6, description="0 is Monday, 6 is Sunday.")
    start_time: WallClock = Field(description="London time, e.g. 09:00.")
    end_time: WallClock = Field(description="London time, e.g. 17:00; after start_time.")
    valid_from: Day | None = Field(default=None, description="First date (default today).")
    valid_until: Day | None = Field(default=None, description="Last date, if any.")

    @model_validator(mode="after")
    def _order(self) -> PatternIn:
        if self.end_time <= self.start_time:
            msg = "end_time must be after start_time"
            raise ValueError(msg)
        if self.valid_until and self.valid_from and self.valid_until < self.valid_from:
            msg = "valid_until must not be before valid_from"
            raise ValueError(msg)
        return self


class ExceptionIn(BaseModel):
    """A date to take out of a pattern."""

    model_config = ConfigDict(extra="forbid")

    on_date: Day = Field(description="The London date to leave out.")


def _conflict(exc: use_cases.BookingConflict) -> Problem:
    late = any(b["late"] == "true" for b in exc.bookings)
    counted = "; within 48 hours of the start it counts as a late cancellation" if late else ""
    return Problem(
        409,
        "You are booked during that time. Cancel the booking properly first (the practice"
        f" is told{counted}), then take the time back.",
        errors=[
            {
                "field": "booking",
                "offer_id": b["offer_id"],
                "late": b["late"],
                "message": f"{b['site_name']} {b['starts_at']}: {b['cancel_with']}",
            }
            for b in exc.bookings
        ],
    )


@router.get("", summary="My windows", responses=INVALID)
async def windows(
    request: Request,
    me: Me,
    starts_from: Annotated[Instant | None, Query(alias="from")] = None,
    starts_before: Annotated[Instant | None, Query(alias="to")] = None,
) -> list[dict[str, Any]]:
    """Your live windows, optionally within a range."""
    rows = await repository.availability_of(
        runtime_of(request).pool, me.id, starts_from=starts_from, starts_before=starts_before
    )
    return [
        {
            "availability_id": str(r["id"]),
            "starts_at": r["starts_at"],
            "ends_at": r["ends_at"],
            "pattern_id": str(r["pattern_id"]) if r["pattern_id"] else None,
        }
        for r in rows
    ]


@router.post(
    "",
    status_code=201,
    summary="Offer a window of time",
    responses={**WITH_BODY, 409: problem("It overlaps time you have already offered.")},
)
async def add_window(request: Request, me: Me, window: WindowIn) -> dict[str, Any]:
    """Store the window and let matching know."""
    problems = check_window(window.starts_at, window.ends_at, now=datetime.now(UTC))
    if problems:
        errors = [{"field": p.split(":")[0], "message": p.split(": ", 1)[1]} for p in problems]
        raise Problem(422, "The window is not valid.", errors=errors)
    runtime = runtime_of(request)
    async with runtime.pool.acquire() as conn, conn.transaction():
        try:
            availability_id = await use_cases.offer_window(
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


@router.delete(
    "/{availability_id}",
    status_code=204,
    summary="Take a window back",
    responses={
        **INVALID,
        404: problem("No such window of yours."),
        409: problem("A booking needs this time: cancel it first."),
    },
)
async def remove_window(request: Request, me: Me, availability_id: uuid.UUID) -> None:
    """Withdraw the window; unanswered offers in it go to someone else."""
    runtime = runtime_of(request)
    async with runtime.pool.acquire() as conn, conn.transaction():
        window = await repository.window_for_update(conn, me.id, availability_id)
        if window is None:
            raise Problem(404, "No such window of yours.")
        try:
            await use_cases.withdraw_window(
                conn, clinician=me, window=window, emitter=runtime.emitter
            )
        except use_cases.BookingConflict as exc:
            raise _conflict(exc) from exc


def _pattern_json(p: Pattern) -> dict[str, Any]:
    return {
        "pattern_id": str(p.id),
        "weekday": p.weekday,
        "start_time": p.start_time.isoformat("minutes"),
        "end_time": p.end_time.isoformat("minutes"),
        "valid_from": p.valid_from.isoformat(),
        "valid_until": p.valid_until.isoformat() if p.valid_until else None,
    }


@router.get("/patterns", summary="My weekly patterns")
async def patterns(request: Request, me: Me) -> list[dict[str, Any]]:
    """Your live weekly patterns."""
    return [_pattern_json(p) for p in await repository.patterns_of(runtime_of(request).pool, me.id)]


@router.post(
    "/patterns",
    status_code=201,
    summary="Offer the same time every week",
    responses=WITH_BODY,
)
async def add_pattern(request: Request, me: Me, body: PatternIn) -> dict[str, Any]:
    """Store the pattern and offer its windows for the next eight weeks."""
    today = datetime.now(UTC).date()
    valid_from = body.valid_from or today
    if body.valid_until is not None and body.valid_until < valid_from:
        # PatternIn checks this only when both dates are given.
        raise Problem(
            422,
            "The pattern is not valid.",
            errors=[
                {
                    "field": "valid_until",
                    "message": "must not be before valid_from (today when left out)",
                }
            ],
        )
    pattern = Pattern(
        uuid.uuid4(),
        body.weekday,
        body.start_time,
        body.end_time,
        valid_from,
        body.valid_until,
    )
    runtime = runtime_of(request)
    async with runtime.pool.acquire() as conn, conn.transaction():
        await repository.insert_pattern(conn, me.id, pattern)
        made = await use_cases.extend_pattern(
            conn, clinician=me, pattern=pattern, emitter=runtime.emitter, today=today
        )
    return {**_pattern_json(pattern), "windows_offered": made}


async def _pattern(conn: Any, me: Any, pattern_id: uuid.UUID) -> Pattern:
    pattern = await repository.pattern_for_update(conn, me.id, pattern_id)
    if pattern is None:
        raise Problem(404, "No such pattern of yours.")
    return pattern


@router.post(
    "/patterns/{pattern_id}/exceptions",
    status_code=204,
    summary="Leave one date out of a pattern",
    responses={
        **WITH_BODY,
        404: problem("No such pattern of yours."),
        409: problem("You are booked that day: cancel it first."),
    },
)
async def add_exception(request: Request, me: Me, pattern_id: uuid.UUID, body: ExceptionIn) -> None:
    """That date's window is withdrawn and not made again."""
    runtime = runtime_of(request)
    async with runtime.pool.acquire() as conn, conn.transaction():
        pattern = await _pattern(conn, me, pattern_id)
        try:
            await use_cases.except_date(
                conn, clinician=me, pattern=pattern, on_date=body.on_date, emitter=runtime.emitter
            )
        except use_cases.BookingConflict as exc:
            raise _conflict(exc) from exc


@router.delete(
    "/patterns/{pattern_id}",
    status_code=204,
    summary="Stop a weekly pattern",
    responses={
        **INVALID,
        404: problem("No such pattern of yours."),
        409: problem("Some of its windows are booked: cancel those first."),
    },
)
async def remove_pattern(request: Request, me: Me, pattern_id: uuid.UUID) -> None:
    """Withdraw the pattern's future windows and make no more."""
    runtime = runtime_of(request)
    async with runtime.pool.acquire() as conn, conn.transaction():
        pattern = await _pattern(conn, me, pattern_id)
        try:
            await use_cases.stop_pattern(
                conn, clinician=me, pattern=pattern, emitter=runtime.emitter
            )
        except use_cases.BookingConflict as exc:
            raise _conflict(exc) from exc
