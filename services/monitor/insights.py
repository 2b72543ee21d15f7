"""HTTP adapter: what the ICB acts on beyond the headline figures (trends, the at-risk
list, the sector flow, the live tail), the exports for analysts, and the live stream
that tells the page when to read them again. Each route is for a signed-in viewer
(``services/monitor/signin.py``) and answers only for the regions that viewer may see,
as every route of ``http.py`` does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from services.monitor import charts, exports, repository, session_store
from services.monitor.access import Viewer, may_see
from services.monitor.domain import (
    COUNTED,
    SectorCounts,
    Timeline,
    build_drain,
    drain_window_start,
    sector_label,
)
from services.monitor.live import EVERYTHING, LiveHub
from services.monitor.query import REFUSED, PeriodWindow, RegionQuery, region_asked, regions_for
from services.monitor.risk import (
    HORIZON,
    AtRisk,
    RegionRisk,
    at_risk,
    role_words,
    summarise_risk,
)
from services.monitor.signin import SIGNED_IN_ANSWERS, SignedIn
from services.monitor.summary import ALL_SECTORS, DayFigures, Window, build_trends, summarise
from services.monitor.tail import KINDS, TailLine
from shared.catalogue import Sector
from shared.http.problems import Problem
from shared.regions import ICB_CHOICES, icb_name

router = APIRouter()

# Figures change as events arrive: no cache may serve an old answer.
_NO_STORE = {"Cache-Control": "no-store"}
WidthQuery = Annotated[
    int | None,
    Query(
        ge=charts.MIN_WIDTH,
        le=charts.MAX_WIDTH,
        description="Width in CSS pixels to draw the chart at (its text stays readable).",
    ),
]
# The at-risk list shows this many sessions per region; the counts cover all of them.
AT_RISK_SHOWN = 100


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.runtime.pool
    return pool


@router.get("/api/regions", summary="The regions you may see, by name", responses=SIGNED_IN_ANSWERS)
async def regions(request: Request, response: Response, viewer: SignedIn) -> list[dict[str, Any]]:
    """The regions the viewer may choose, in the order of their names: a regional viewer
    their own; a national viewer every ICB of the catalogue and every other region the
    monitor holds figures of. ``region_name`` is null for a code the catalogue does not
    name (the page shows the code); ``counted`` says whether the monitor holds any
    figures of it (sessions, moves, alerts or a policy)."""
    response.headers.update(_NO_STORE)
    known = set(await repository.regions_with_data(_pool(request)))
    own = region_asked(viewer, None)
    codes = {own} if own else known | {icb.code for icb in ICB_CHOICES}
    return [
        {"region": code, "region_name": icb_name(code), "counted": code in known}
        for code in sorted(
            codes, key=lambda c: (icb_name(c) is None, (icb_name(c) or c).casefold())
        )
    ]


def _window_json(window: Window) -> dict[str, Any]:
    return {
        "period": window.period.value,
        "first_day": window.first.isoformat(),
        "last_day": window.last.isoformat(),
        "since": window.since.isoformat(),
        "until": window.until.isoformat(),
    }


def _day_json(d: DayFigures) -> dict[str, Any]:
    return {
        "day": d.day.isoformat(),
        "posted": d.posted,
        "filled": d.filled,
        "cancelled": d.cancelled,
        "fill_rate": d.fill_rate,
        "median_minutes": d.median_minutes,
    }


def _series_key(sector: str) -> str:
    return "all" if sector == ALL_SECTORS else sector


@router.get(
    "/api/trends",
    summary="Figures per day and sector over a period, and their chart",
    responses=REFUSED,
)
async def trends(
    request: Request,
    response: Response,
    viewer: SignedIn,
    window: PeriodWindow,
    region: RegionQuery = None,
    sector: Annotated[
        Sector | None, Query(description="The sector to chart; all sectors when left out.")
    ] = None,
    width: WidthQuery = None,
) -> list[dict[str, Any]]:
    """Per region and local day of the period, of the sessions starting that day as they
    stand now: posted, filled, cancelled, the fill rate (filled over posted less
    cancelled) and the median minutes to fill, for all sectors (``all``) and each
    sector. ``svg`` charts the chosen sector's (or all sectors') days, drawn at
    ``width``."""
    response.headers.update(_NO_STORE)
    pool = _pool(request)
    regions = await regions_for(pool, viewer, region)
    rows = await repository.daily(pool, regions=regions, since=window.since, until=window.until)
    key = sector.value if sector else ALL_SECTORS
    what = sector_label(key) if sector else "All sectors"
    return [
        {
            "region": t.region,
            "region_name": icb_name(t.region),
            **_window_json(window),
            "sector": sector.value if sector else None,
            "series": {
                _series_key(k): [_day_json(d) for d in days] for k, days in t.series.items()
            },
            "svg": charts.trend_svg(
                t.series.get(key, ()), what=what, width=width, id_prefix=f"trend-{t.region}"
            ),
        }
        for t in build_trends(rows, regions=regions, window=window)
    ]


def _at_risk_json(a: AtRisk) -> dict[str, Any]:
    return {
        "session_id": str(a.session_id),
        "region": a.region,
        "sector": a.sector,
        "sector_label": a.sector_label,
        "organisation": a.organisation,
        "site_name": a.site_name,
        "role": a.role,
        "role_label": role_words(a.role),
        "starts_at": a.starts_at.isoformat(),
        "ends_at": a.ends_at.isoformat(),
        "hours": a.hours,
        "within_24h": a.within_24h,
        "status": a.standing.status.value,
        "why": a.standing.why,
        "label": a.standing.label,
        "detail": a.standing.detail,
        "since": a.standing.since.isoformat() if a.standing.since else None,
    }


def _region_risk_json(r: RegionRisk, now: datetime) -> dict[str, Any]:
    return {
        "region": r.region,
        "region_name": icb_name(r.region),
        "as_of": now.isoformat(),
        "within_24h": r.within_24h,
        "within_48h": r.within_48h,
        "reasons": [{"key": k, "label": label, "sessions": n} for k, label, n in r.reasons],
        "sessions": [_at_risk_json(a) for a in r.sessions],
    }


@router.get(
    "/api/at-risk",
    summary="Open sessions starting within 48 hours, and why matching has not filled them",
    responses=REFUSED,
)
async def at_risk_now(
    request: Request, response: Response, viewer: SignedIn, region: RegionQuery = None
) -> list[dict[str, Any]]:
    """Per region, the sessions starting in the next 48 hours that are still open (not
    filled, cancelled or started unfilled), by start: how many start within 24 and 48
    hours, how many for each reason, and the first 100 with where matching stands:
    its reason for no offer (``no_offer``, with ``why`` and matching's own words in
    ``detail``), ``offered`` (awaiting an answer), ``given_up`` (a booking given up or
    released, to be offered again) or ``waiting`` (matching has said nothing yet)."""
    response.headers.update(_NO_STORE)
    pool = _pool(request)
    regions = await regions_for(pool, viewer, region)
    now = datetime.now(UTC)
    rows = await repository.open_sessions(pool, regions=regions, since=now, until=now + HORIZON)
    lines = [
        line
        for r in rows
        if (
            line := at_risk(
                r["session_id"],
                r["region"],
                r["sector"],
                session_store.facts_from(r["facts"]),
                now=now,
            )
        )
        is not None
    ]
    views = summarise_risk(lines, regions=regions, shown=AT_RISK_SHOWN)
    return [_region_risk_json(v, now) for v in views]


@router.get(
    "/api/flow",
    summary="Hours moved between sectors over 28 days, as a Sankey diagram",
    responses=REFUSED,
)
async def flow(
    request: Request,
    response: Response,
    viewer: SignedIn,
    region: RegionQuery = None,
    width: WidthQuery = None,
) -> list[dict[str, Any]]:
    """Per region, the rolling 28 days of moves as ``/api/drain`` counts them, drawn as
    a Sankey diagram (``svg``, at ``width``): sectors that lost hours on the left, those
    that gained on the right, each band as thick as the hours, each sector's net
    outflow and cap beside it."""
    response.headers.update(_NO_STORE)
    pool = _pool(request)
    regions = await regions_for(pool, viewer, region)
    now = datetime.now(UTC)
    since = drain_window_start(now)
    views = build_drain(
        [f for r in regions for f in await repository.flows(pool, since=since, region=r)],
        [a for r in regions for a in await repository.alerts(pool, region=r)],
        [p for r in regions for p in await repository.policies(pool, region=r)],
        now=now,
        regions=regions,
    )
    return [
        {
            "region": v.region,
            "region_name": icb_name(v.region),
            "window_days": v.window_days,
            "since": v.since.isoformat(),
            "moved_hours": round(sum(f.hours for f in v.flows), 2),
            "svg": charts.sankey_svg(v, width=width, id_prefix=f"flow-{v.region}"),
        }
        for v in views
    ]


def _tail_json(line: TailLine) -> dict[str, Any]:
    return {
        "event_type": line.event_type,
        "kind": KINDS.get(line.event_type, line.event_type),
        "region": line.region,
        "sector": line.sector,
        "sector_label": sector_label(line.sector),
        "to_sector": line.to_sector,
        "to_sector_label": sector_label(line.to_sector) if line.to_sector else None,
        "detail": line.detail,
        "occurred_at": line.occurred_at.isoformat(),
    }


@router.get("/api/tail", summary="The live tail of events, filtered", responses=REFUSED)
async def tail(
    request: Request,
    response: Response,
    viewer: SignedIn,
    region: RegionQuery = None,
    event_type: Annotated[
        list[str] | None,
        Query(alias="type", description="Event types to list (repeat for several); all if none."),
    ] = None,
    sector: Annotated[
        Sector | None, Query(description="Only events of this sector (moves: from or to it).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=repository.TAIL_KEPT)] = 30,
) -> dict[str, Any]:
    """The newest events, newest first: posted, changed, offered, filled, cancelled by
    either side, started unfilled, moves and drain alerts (``kinds`` lists them with
    their names), of the regions the viewer may see. No ids, nothing personal."""
    response.headers.update(_NO_STORE)
    unknown = sorted(set(event_type or ()) - set(KINDS))
    if unknown:
        raise Problem(
            422,
            "The request has invalid fields.",
            errors=[
                {"field": "query.type", "message": f"not an event type the tail lists: {t}"}
                for t in unknown
            ],
        )
    lines = await repository.tail(
        _pool(request),
        limit=limit,
        region=region_asked(viewer, region),
        types=event_type or (),
        sector=sector.value if sector else None,
    )
    return {
        "kinds": [{"type": t, "label": label} for t, label in KINDS.items()],
        "lines": [_tail_json(line) for line in lines],
    }


# --- Exports ---

FormatQuery = Annotated[
    exports.Format, Query(alias="format", description="csv (the default) or json.")
]


def _file_name(what: str, regions: list[str], window: Window, fmt: exports.Format) -> str:
    where = regions[0] if len(regions) == 1 else "all-regions"
    return f"fairshare-{where}-{what}-{window.first}-to-{window.last}.{fmt.value}"


def _export(
    what: str,
    regions: list[str],
    window: Window,
    fmt: exports.Format,
    chunks: AsyncIterator[str],
) -> StreamingResponse:
    name = _file_name(what, regions, window, fmt)
    return StreamingResponse(
        chunks,
        media_type=exports.MEDIA_TYPES[fmt],
        headers={**_NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _written(
    columns: tuple[str, ...], fmt: exports.Format, chunks: AsyncIterator[list[dict[str, Any]]]
) -> AsyncIterator[str]:
    """Rows a chunk at a time, as one CSV table or one JSON array."""
    first = True
    if fmt is exports.Format.JSON:
        yield "["
    async for rows in chunks:
        if fmt is exports.Format.CSV:
            yield exports.csv_lines(columns, rows, header=first)
        else:
            yield exports.json_items(rows, first=first)
        first = False
    if fmt is exports.Format.CSV and first:
        yield exports.csv_lines(columns, [], header=True)  # no rows: the header alone
    if fmt is exports.Format.JSON:
        yield "]"


_EXPORTED: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
        "description": "A table, as CSV (a header line, then a row each) or as a JSON array"
        " of rows with the same columns.",
    },
    **REFUSED,
}


@router.get(
    "/api/export/sessions",
    summary="Every session starting in a period, as CSV or JSON",
    response_class=StreamingResponse,
    responses=_EXPORTED,
)
async def export_sessions(
    request: Request,
    viewer: SignedIn,
    window: PeriodWindow,
    region: RegionQuery = None,
    fmt: FormatQuery = exports.Format.CSV,
) -> StreamingResponse:
    """One row per session starting in the period (its latest start), as it stands now:
    its region, sector, organisation, role and times, ``status`` (open, filled,
    cancelled, unfilled), when it was posted and filled and the minutes between."""
    pool = _pool(request)
    regions = await regions_for(pool, viewer, region)

    async def rows() -> AsyncIterator[list[dict[str, Any]]]:
        async for chunk in repository.export_sessions(
            pool, regions=regions, since=window.since, until=window.until
        ):
            yield [
                exports.session_row(
                    r["session_id"],
                    session_store.facts_from(r["facts"]),
                    SectorCounts(r["region"], r["sector"], *(r[c] for c in COUNTED)),
                    Timeline(r["starts_at"], r["ends_at"], r["posted_at"], r["filled_at"]),
                )
                for r in chunk
            ]

    body = _written(exports.SESSION_COLUMNS, fmt, rows())
    return _export("sessions", regions, window, fmt, body)


@router.get(
    "/api/export/moves",
    summary="Every move between sectors in a period, as CSV or JSON",
    response_class=StreamingResponse,
    responses=_EXPORTED,
)
async def export_moves(
    request: Request,
    viewer: SignedIn,
    window: PeriodWindow,
    region: RegionQuery = None,
    fmt: FormatQuery = exports.Format.CSV,
) -> StreamingResponse:
    """One row per move of matching's ledger that counts in the period (a session's
    start, or a transfer), reversed ones included with when (``counts`` false)."""
    pool = _pool(request)
    regions = await regions_for(pool, viewer, region)
    moves = await repository.export_moves(
        pool, regions=regions, since=window.since, until=window.until
    )

    async def rows() -> AsyncIterator[list[dict[str, Any]]]:
        yield [exports.move_row(m) for m in moves]

    return _export("moves", regions, window, fmt, _written(exports.MOVE_COLUMNS, fmt, rows()))


@router.get(
    "/api/export/summary",
    summary="The headline figures of a period, as CSV or JSON",
    response_class=StreamingResponse,
    responses=_EXPORTED,
)
async def export_summary(
    request: Request,
    viewer: SignedIn,
    window: PeriodWindow,
    region: RegionQuery = None,
    fmt: FormatQuery = exports.Format.CSV,
) -> StreamingResponse:
    """Per region, the headline figures of ``/api/summary`` for all sectors (sector
    ``all``) and for each sector."""
    pool = _pool(request)
    regions = await regions_for(pool, viewer, region)
    found, times = await repository.period_sectors(
        pool, regions=regions, since=window.since, until=window.until
    )
    summaries = summarise(found, regions=regions, window=window, fill_times=times)

    async def rows() -> AsyncIterator[list[dict[str, Any]]]:
        yield exports.summary_rows(summaries)

    return _export("summary", regions, window, fmt, _written(exports.SUMMARY_COLUMNS, fmt, rows()))


# --- Live updates ---

# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_S = 15.0
# A stream ends after this long and the browser opens another (after RETRY_MS): the
# viewer's session is checked again, so a revoked viewer's stream does not run on.
MAX_STREAM_S = 600.0
RETRY_MS = 1000
# Without a LISTEN connection (the database away, or an app run without its background
# jobs) a stream says hello and ends: the browser comes back after this, a slow poll.
FALLBACK_RETRY_MS = 30_000


def _event(data: dict[str, Any], *, retry_ms: int | None = None) -> str:
    # The reconnection delay rides on an event rather than alone: one event per block.
    retry = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    return f"{retry}event: change\ndata: {json.dumps(data)}\n\n"


def _shown(viewer: Viewer, asked: str | None, region: str) -> bool:
    return may_see(viewer, region) and (asked is None or asked == region)


@router.get(
    "/api/stream",
    summary="Server-sent events: which region's figures just changed",
    response_class=StreamingResponse,
    responses={
        200: {
            # Each event as schemathesis reads server-sent events: its fields by name.
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "required": ["event", "data"],
                        "properties": {
                            "event": {"type": "string", "enum": ["change"]},
                            "data": {
                                "type": "string",
                                "description": 'JSON: {"region": a code, or null for all}',
                            },
                        },
                    }
                }
            },
            "description": '`event: change` with `{"region": code or null}`, as they come.',
        },
        **REFUSED,
    },
)
async def stream(
    request: Request, viewer: SignedIn, region: RegionQuery = None
) -> StreamingResponse:
    """A `change` event whenever figures of a region the viewer may see (of ``region``,
    if given) change, with ``{"region": code}`` (``null``: anything may have changed,
    read everything again); one on opening too. The page reads its figures again on
    each; it never polls."""
    asked = region_asked(viewer, region)
    hub: LiveHub | None = getattr(request.app.state, "live", None)

    async def events() -> AsyncIterator[str]:
        if hub is None or not hub.listening:
            yield _event({"region": asked}, retry_ms=FALLBACK_RETRY_MS)
            return
        # Subscribed before the hello: news that comes while the page reads is kept.
        async with hub.subscribe() as news:
            yield _event({"region": asked}, retry_ms=RETRY_MS)
            ends = time.monotonic() + MAX_STREAM_S
            while time.monotonic() < ends and not await request.is_disconnected():
                changed = await news.next(min(KEEPALIVE_S, max(0.0, ends - time.monotonic())))
                if not changed:
                    yield ": keep-alive\n\n"
                    continue
                if EVERYTHING in changed:
                    yield _event({"region": None})
                    continue
                for code in sorted(changed):
                    if _shown(viewer, asked, code):
                        yield _event({"region": code})
                await asyncio.sleep(0)  # let a burst of news coalesce

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={**_NO_STORE, "X-Accel-Buffering": "no"},
    )
