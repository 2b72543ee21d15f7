"""HTTP adapter: the dashboard page and the JSON it polls."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from services.monitor import repository
from services.monitor.domain import build_dashboard, sector_label
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


@router.get("/", response_class=HTMLResponse, summary="The ICB's live dashboard")
async def dashboard() -> HTMLResponse:
    """A self-contained page that polls ``/api/counts`` and ``/api/recent``."""
    return HTMLResponse(_PAGE, headers=_NO_STORE)


@router.get("/api/counts", summary="Sessions posted, offered and filled per region and sector")
async def counts(request: Request, response: Response) -> list[dict[str, Any]]:
    """Every region's sectors in display order, zero rows included, with fill rates."""
    response.headers.update(_NO_STORE)
    view = build_dashboard(await repository.all_counts(_runtime(request).pool))
    return [
        {
            "region": row.region,
            "sector": row.sector,
            "sector_label": row.label,
            "posted": row.posted,
            "offered": row.offered,
            "filled": row.filled,
            "fill_rate": row.fill_rate,
        }
        for region in view
        for row in region.rows
    ]


@router.get("/api/recent", summary="The latest session events, newest first")
async def recent(
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=repository.RECENT_KEPT)] = 10,
) -> list[dict[str, Any]]:
    """What just happened: stage, region, sector and when (no ids, nothing personal)."""
    response.headers.update(_NO_STORE)
    return [
        {
            "stage": a.stage.value,
            "region": a.region,
            "sector": a.sector,
            "sector_label": sector_label(a.sector),
            "occurred_at": a.occurred_at.isoformat(),
        }
        for a in await repository.recent(_runtime(request).pool, limit=limit)
    ]
