"""HTTP adapter: the dashboard page and the counts it polls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.monitor import repository
from shared.runtime import Runtime

router = APIRouter()
_PAGE = (Path(__file__).with_name("static") / "index.html").read_text()


@router.get("/", response_class=HTMLResponse, summary="The ICB's live dashboard")
async def dashboard() -> str:
    """A self-contained page that polls ``/api/counts``."""
    return _PAGE


@router.get("/api/counts", summary="Sessions posted, offered and filled per region and sector")
async def counts(request: Request) -> list[dict[str, Any]]:
    """Counts as the page draws them."""
    runtime: Runtime = request.app.state.runtime
    return [
        {
            "region": c.region,
            "sector": c.sector,
            "posted": c.posted,
            "offered": c.offered,
            "filled": c.filled,
            "fill_rate": c.fill_rate,
        }
        for c in await repository.all_counts(runtime.pool)
    ]
