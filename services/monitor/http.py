"""HTTP adapter: the dashboard page and the JSON it polls, each for a signed-in viewer
(``services/monitor/signin.py``) and only for the regions that viewer may see."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from services.monitor import cap_base, repository
from services.monitor.cap_base import CapBase, cap_json
from services.monitor.domain import (
    COUNTED,
    DrainAlert,
    RegionDrain,
    build_dashboard,
    build_drain,
    drain_window_start,
    sector_label,
)
from services.monitor.query import REFUSED, PeriodWindow, RegionQuery, region_asked
from services.monitor.signin import (
    PAGE_ANSWERS,
    SIGNED_IN_ANSWERS,
    SignedIn,
    SignedInPage,
)
from services.monitor.summary import FillTimes, SectorPeriod, Summary, summarise
from shared.regions import icb_name
from shared.runtime import Runtime

router = APIRouter()

# Read once at start-up: the page is static, and a missing file should stop the
# service from starting rather than fail the first request.
_PAGE = (Path(__file__).with_name("static") / "index.html").read_text(encoding="utf-8")
# Counts change every few seconds; no cache may serve an old answer to the poller.
_NO_STORE = {"Cache-Control": "no-store"}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.get(
    "/", response_class=HTMLResponse, summary="The ICB's live dashboard", responses=PAGE_ANSWERS
)
async def dashboard(viewer: SignedInPage) -> HTMLResponse:
    """A self-contained page that reads the ``/api/...`` routes of ``http.py`` and
    ``insights.py`` again whenever ``/api/stream`` says its region changed (a browser
    without a live session is sent to ``/signin``)."""
    del viewer  # the page is the same for all; what it fetches is each viewer's own
    return HTMLResponse(_PAGE, headers=_NO_STORE)


@router.get(
    "/api/me", summary="Who is signed in, and what they may see", responses=SIGNED_IN_ANSWERS
)
async def me(viewer: SignedIn, response: Response) -> dict[str, Any]:
    """The viewer's id and name, whether they see every region (``national``), and their
    ``home_region`` (the one region a regional viewer sees)."""
    response.headers.update(_NO_STORE)
    return {
        "viewer_id": str(viewer.id),
        "name": viewer.name,
        "national": viewer.national,
        "home_region": viewer.region,
    }


@router.get(
    "/api/counts",
    summary="Sessions posted, offered and filled per region and sector",
    responses=REFUSED,
)
async def counts(
    request: Request, response: Response, viewer: SignedIn, region: RegionQuery = None
) -> list[dict[str, Any]]:
    """Every region's sectors in display order, zero rows included: sessions posted,
    offered (ever), filled (now), cancelled by the organisation, started unfilled,
    late cancellations by the organisation (``late_cancelled``) and bookings given up
    late by clinicians (``late_given_up``, both within 48 hours of the start), and the
    fill rate: filled over posted less cancelled (null when none is wanted).

    Only the regions the viewer may see."""
    response.headers.update(_NO_STORE)
    pool = _runtime(request).pool
    view = build_dashboard(await repository.all_counts(pool, region=region_asked(viewer, region)))
    return [
        {
            "region": row.region,
            "sector": row.sector,
            "sector_label": row.label,
            **{name: getattr(row.counts, name) for name in COUNTED},
            "fill_rate": row.fill_rate,
        }
        for region in view
        for row in region.rows
    ]


@router.get("/api/recent", summary="The latest session events, newest first", responses=REFUSED)
async def recent(
    request: Request,
    response: Response,
    viewer: SignedIn,
    limit: Annotated[int, Query(ge=1, le=repository.RECENT_KEPT)] = 10,
    region: RegionQuery = None,
) -> list[dict[str, Any]]:
    """What just happened: stage, region, sector and when (no ids, nothing personal), in
    the regions the viewer may see."""
    response.headers.update(_NO_STORE)
    pool = _runtime(request).pool
    return [
        {
            "stage": a.stage.value,
            "region": a.region,
            "sector": a.sector,
            "sector_label": sector_label(a.sector),
            "occurred_at": a.occurred_at.isoformat(),
        }
        for a in await repository.recent(pool, limit=limit, region=region_asked(viewer, region))
    ]


def _alert_json(alert: DrainAlert | None, *, standing: bool) -> dict[str, Any] | None:
    if alert is None:
        return None
    return {
        "used_pct": alert.used_pct,
        "net_out_hours": alert.net_out_hours,
        "offered_hours": alert.offered_hours,
        "cap_pct": alert.cap_pct,
        "window_days": alert.window_days,
        "raised_at": alert.raised_at.isoformat(),
        "standing": standing,
    }


def _region_json(
    view: RegionDrain, bases: dict[tuple[str, str], CapBase], now: datetime
) -> dict[str, Any]:
    policy = view.policy
    return {
        "region": view.region,
        "window_days": view.window_days,
        "since": view.since.isoformat(),
        "policy": None
        if policy is None
        else {
            "changed_at": policy.changed_at.isoformat(),
            "home_first": policy.home_first,
            "alert_share": policy.alert_share,
        },
        "sectors": [
            {
                "sector": s.sector,
                "sector_label": s.label,
                "out_hours": s.out_hours,
                "in_hours": s.in_hours,
                "net_out_hours": s.net_out_hours,
                "cap_pct": s.cap_pct,
                **cap_json(s, bases.get((s.region, s.sector)), now=now),
                "alert": _alert_json(s.alert, standing=s.alert_standing),
            }
            for s in view.sectors
        ],
        "matrix": [
            {"from_sector": f.from_sector, "to_sector": f.to_sector, "hours": f.hours}
            for f in view.flows
        ],
    }


@router.get(
    "/api/drain",
    summary="Hours moved between sectors per region, over 28 days",
    responses=REFUSED,
)
async def drain(
    request: Request, response: Response, viewer: SignedIn, region: RegionQuery = None
) -> list[dict[str, Any]]:
    """Per region and sector over the rolling 28 days: hours moved out, hours moved in,
    net outflow (out minus in, what matching's cap holds), the cap in percent (from the
    region's last `policy.changed`, else 10) and the latest drain alert, with a from→to
    matrix of hours. ``cap_hours``: the cap in hours, of the hours the sector offered as
    matching last said them in a drain alert or clearing (``cap_base``, with when), and
    ``headroom_hours``, what it may still lose; null where matching has not said that
    base within the window. As in matching, moves already booked after today count now.

    A region asked for by code is answered even if nothing has moved there (all zero),
    as is a regional viewer's own region. Only the regions the viewer may see.
    """
    response.headers.update(_NO_STORE)
    pool = _runtime(request).pool
    region = region_asked(viewer, region)
    now = datetime.now(UTC)
    views = build_drain(
        await repository.flows(pool, since=drain_window_start(now), region=region),
        await repository.alerts(pool, region=region),
        await repository.policies(pool, region=region),
        now=now,
        regions=[region] if region else [],
    )
    known = {(b.region, b.sector): b for b in await cap_base.bases(pool, region=region)}
    return [_region_json(view, known, now) for view in views]


def _figures_json(row: SectorPeriod) -> dict[str, Any]:
    return {
        "posted": row.posted,
        "filled": row.filled,
        "cancelled": row.cancelled,
        "unfilled": row.unfilled,
        "late_cancelled": row.late_cancelled,
        "late_given_up": row.late_given_up,
        "hours_filled": row.hours_filled,
        **_fill_times_json(row.fill_times),
    }


def _fill_times_json(times: FillTimes) -> dict[str, Any]:
    return {
        "fill_minutes_median": times.median,
        "fill_minutes_p90": times.p90,
        "fill_times_counted": times.count,
    }


def _summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "region": summary.region,
        "region_name": icb_name(summary.region),
        "period": summary.period.value,
        "first_day": summary.window.first.isoformat(),
        "last_day": summary.window.last.isoformat(),
        "since": summary.since.isoformat(),
        "until": summary.until.isoformat(),
        **_figures_json(summary.totals),
        "fill_rate": summary.fill_rate,
        "sectors": [
            {"sector": s.sector, "sector_label": sector_label(s.sector), **_figures_json(s)}
            for s in summary.sectors
        ],
    }


@router.get(
    "/api/summary",
    summary="Headline figures of a region for today, 7 or 28 days, or custom days",
    responses=REFUSED,
)
async def summary(
    request: Request,
    response: Response,
    viewer: SignedIn,
    window: PeriodWindow,
    region: RegionQuery = None,
) -> list[dict[str, Any]]:
    """Per region, of the sessions that start in the period (their latest start): posted,
    filled now, the fill rate (filled over posted less cancelled), cancelled by the
    organisation, started unfilled, late cancellations by the organisation
    (``late_cancelled``) and by clinicians (``late_given_up``), the hours of the
    filled ones, and the median and 90th percentile of the minutes from posting to the
    booking that stands (``fill_minutes_*``, over ``fill_times_counted`` sessions; null
    with none), in total and per sector.

    A region asked for by code is answered even if it has no sessions (all zero), as is
    a regional viewer's own; a national viewer naming none gets every region counted.
    """
    response.headers.update(_NO_STORE)
    pool = _runtime(request).pool
    region = region_asked(viewer, region)
    regions = [region] if region else await repository.known_regions(pool)
    rows, times = await repository.period_sectors(
        pool, regions=regions, since=window.since, until=window.until
    )
    views = summarise(rows, regions=regions, window=window, fill_times=times)
    return [_summary_json(view) for view in views]
