"""HTTP adapter: equity, the fill rate of a region's sessions by deprivation quintile of
the organisation's area, by place and by PCN (``services/monitor/equity.py``), as JSON
with its chart and as an export. Each route is for a signed-in viewer and answers only
for the regions that viewer may see, as every route of ``http.py`` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from services.monitor import charts, exports
from services.monitor.equity import (
    AREA_COLUMNS,
    AreaRow,
    Group,
    RegionEquity,
    build_equity,
    equity_svg,
)
from services.monitor.query import REFUSED, PeriodWindow, RegionQuery, regions_for
from services.monitor.signin import SignedIn
from services.monitor.summary import Window
from shared.db.types import Conn
from shared.regions import icb_name

router = APIRouter()

_NO_STORE = {"Cache-Control": "no-store"}


async def area_rows(
    conn: Conn | asyncpg.Pool, *, regions: list[str], since: datetime, until: datetime
) -> list[AreaRow]:
    """Per region and area (decile, place, PCN), the sessions that start in [since,
    until) as they stand now: posted, filled, cancelled, unfilled and hours filled."""
    area = ", ".join(AREA_COLUMNS)
    rows = await conn.fetch(
        f"SELECT region, {area}, sum(posted) AS posted, sum(filled) AS filled,"
        " sum(cancelled) AS cancelled, sum(unfilled) AS unfilled,"
        " coalesce(sum(extract(epoch FROM ends_at - starts_at) / 3600)"
        " FILTER (WHERE filled > 0), 0)::float8 AS hours_filled"
        " FROM session_facts"
        " WHERE region = ANY($1::text[]) AND starts_at >= $2 AND starts_at < $3"
        f" GROUP BY region, {area} ORDER BY region, {area}",
        regions,
        since,
        until,
    )
    return [
        AreaRow(
            r["region"],
            r["imd_decile"],
            r["place"],
            r["pcn"],
            r["posted"],
            r["filled"],
            r["cancelled"],
            r["unfilled"],
            r["hours_filled"],
        )
        for r in rows
    ]


def _group_json(g: Group) -> dict[str, Any]:
    return {
        "key": g.key or None,
        "label": g.label,
        "posted": g.posted,
        "cancelled": g.cancelled,
        "wanted": g.wanted,
        "filled": g.filled,
        "unfilled": g.unfilled,
        "fill_rate": g.fill_rate,
        "hours_filled": g.hours_filled,
    }


def _window_json(window: Window) -> dict[str, Any]:
    return {
        "period": window.period.value,
        "first_day": window.first.isoformat(),
        "last_day": window.last.isoformat(),
        "since": window.since.isoformat(),
        "until": window.until.isoformat(),
    }


def _equity_json(view: RegionEquity, width: int | None) -> dict[str, Any]:
    return {
        "region": view.region,
        "region_name": icb_name(view.region),
        **_window_json(view.window),
        "deprivation_gap_points": view.gap_points,
        "quintiles": [_group_json(g) for g in view.quintiles],
        "places": [_group_json(g) for g in view.places],
        "pcns": [_group_json(g) for g in view.pcns],
        "svg": equity_svg(view, width=width, id_prefix=f"equity-{view.region}"),
    }


async def _views(
    request: Request, viewer: SignedIn, window: Window, region: str | None
) -> tuple[list[str], list[RegionEquity]]:
    pool: asyncpg.Pool = request.app.state.runtime.pool
    regions = await regions_for(pool, viewer, region)
    rows = await area_rows(pool, regions=regions, since=window.since, until=window.until)
    return regions, build_equity(rows, regions=regions, window=window)


@router.get(
    "/api/equity",
    summary="Fill rate by deprivation quintile of the area, by place and by PCN",
    responses=REFUSED,
)
async def equity(
    request: Request,
    response: Response,
    viewer: SignedIn,
    window: PeriodWindow,
    region: RegionQuery = None,
    width: Annotated[
        int | None,
        Query(
            ge=charts.MIN_WIDTH,
            le=charts.MAX_WIDTH,
            description="Width in CSS pixels to draw the chart at (its text stays readable).",
        ),
    ] = None,
) -> list[dict[str, Any]]:
    """Per region, of the sessions starting in the period as they stand now, grouped by
    where their organisation is: by the deprivation quintile of its area (``quintiles``:
    1 the most deprived fifth, IMD deciles 1–2, to 5; all five always, then "not
    recorded" if any session's decile is unknown), by ICB place (``places``) and by PCN
    (``pcns``), each with posted, cancelled, wanted (posted less cancelled), filled,
    unfilled, the fill rate (filled over wanted) and hours filled. ``key`` is null for
    the group whose area is not recorded. ``deprivation_gap_points``: the least deprived
    fifth's fill rate minus the most deprived's, in percentage points. ``svg`` charts
    the quintiles and places, drawn at ``width``."""
    response.headers.update(_NO_STORE)
    _, views = await _views(request, viewer, window, region)
    return [_equity_json(v, width) for v in views]


EQUITY_COLUMNS: tuple[str, ...] = (
    "region",
    "region_name",
    "first_day",
    "last_day",
    "breakdown",
    "group",
    "label",
    "posted",
    "cancelled",
    "wanted",
    "filled",
    "unfilled",
    "fill_rate",
    "hours_filled",
)


def equity_rows(views: list[RegionEquity]) -> list[dict[str, Any]]:
    """A row per region, breakdown and group, in the page's order."""
    return [
        {
            "region": v.region,
            "region_name": icb_name(v.region),
            "first_day": v.window.first,
            "last_day": v.window.last,
            "breakdown": breakdown.value,
            "group": g.key or None,
            "label": g.label,
            "posted": g.posted,
            "cancelled": g.cancelled,
            "wanted": g.wanted,
            "filled": g.filled,
            "unfilled": g.unfilled,
            "fill_rate": None if g.fill_rate is None else round(g.fill_rate, 4),
            "hours_filled": g.hours_filled,
        }
        for v in views
        for breakdown, groups in v.breakdowns()
        for g in groups
    ]


@router.get(
    "/api/export/equity",
    summary="Fill rate by deprivation quintile, place and PCN for a period, as CSV or JSON",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
            "description": "A table, as CSV (a header line, then a row each) or as a JSON"
            " array of rows with the same columns.",
        },
        **REFUSED,
    },
)
async def export_equity(
    request: Request,
    viewer: SignedIn,
    window: PeriodWindow,
    region: RegionQuery = None,
    fmt: Annotated[
        exports.Format, Query(alias="format", description="csv (the default) or json.")
    ] = exports.Format.CSV,
) -> StreamingResponse:
    """The figures of ``/api/equity``, one row per region, breakdown
    (``deprivation_quintile``, ``place``, ``pcn``) and group (``group`` empty for the
    sessions whose area is not recorded)."""
    regions, views = await _views(request, viewer, window, region)
    rows = equity_rows(views)
    if fmt is exports.Format.CSV:
        body = exports.csv_lines(EQUITY_COLUMNS, rows, header=True)
    else:
        body = "[" + exports.json_items(rows, first=True) + "]"
    where = regions[0] if len(regions) == 1 else "all-regions"
    name = f"fairshare-{where}-equity-{window.first}-to-{window.last}.{fmt.value}"

    async def chunks() -> AsyncIterator[str]:
        yield body

    return StreamingResponse(
        chunks(),
        media_type=exports.MEDIA_TYPES[fmt],
        headers={**_NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'},
    )
