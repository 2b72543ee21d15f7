"""HTTP adapter: the query parameters several monitor routes share, checked once.

``PeriodWindow`` turns ``period``, ``from`` and ``to`` into the window of days asked for,
or a 422 problem naming each wrong field and why; ``regions_for`` is who may see what
(a viewer's own region, or every region for a national viewer).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Query

from services.monitor import repository
from services.monitor.access import Viewer, may_see, scope
from services.monitor.signin import PROBLEM, SIGNED_IN_ANSWERS
from services.monitor.summary import MAX_CUSTOM_DAYS, Period, PeriodError, Window, window_for
from shared.catalogue import REGION_PATTERN
from shared.http.problems import Problem

# How every signed-in route is documented: who is refused, and how, in problem+json.
REFUSED: dict[int | str, dict[str, Any]] = {
    **SIGNED_IN_ANSWERS,
    403: {"description": "A region you may not see.", **PROBLEM},
    422: {"description": "An invalid parameter, named with the rule it broke.", **PROBLEM},
}

RegionQuery = Annotated[
    str | None,
    Query(
        pattern=REGION_PATTERN,
        description="ICB code of one region (e.g. QOP); every region you may see when left out.",
    ),
]


def period_window(
    period: Annotated[
        Period | None,
        Query(
            description="today, 7d or 28d (whole days in England ending with today), or"
            " custom with `from` and `to`; today when nothing is given."
        ),
    ] = None,
    first: Annotated[
        date | None,
        Query(
            alias="from",
            description="First day of a custom period (YYYY-MM-DD, in England).",
        ),
    ] = None,
    last: Annotated[
        date | None,
        Query(
            alias="to",
            description="Last day of a custom period, included; at most"
            f" {MAX_CUSTOM_DAYS} days from `from`.",
        ),
    ] = None,
) -> Window:
    """The window asked for, or 422 naming each field that is wrong (``query.from``,
    ``query.to``) and why, as the other validation errors do."""
    try:
        return window_for(period, first, last, now=datetime.now(UTC))
    except PeriodError as exc:
        raise Problem(
            422,
            "The period is not valid.",
            errors=[{"field": f"query.{name}", "message": why} for name, why in exc.errors],
        ) from exc


PeriodWindow = Annotated[Window, Depends(period_window)]


def region_asked(viewer: Viewer, asked: str | None) -> str | None:
    """The one region to answer for (None: every region), or 403 for a region the viewer
    may not see. A regional viewer who names none gets their own."""
    if asked is None:
        return scope(viewer)
    if not may_see(viewer, asked):
        raise Problem(403, f"You may see region {viewer.region} only, not {asked}.")
    return asked


async def regions_for(pool: asyncpg.Pool, viewer: Viewer, asked: str | None) -> list[str]:
    """The regions to answer for: the one asked for or the viewer's own, else (a national
    viewer naming none) every region the monitor has counted a session of."""
    region = region_asked(viewer, asked)
    return [region] if region else await repository.known_regions(pool)
