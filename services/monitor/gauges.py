"""The monitor's gauges for /metrics: the page's session figures per region and sector,
totals only (no session, organisation or viewer appears)."""

from __future__ import annotations

from prometheus_client import Gauge

from services.monitor import repository
from services.monitor.domain import COUNTED
from shared.metrics import Metrics, set_all
from shared.runtime import Runtime


def register(metrics: Metrics) -> None:
    """Register the monitor's gauges in the service's metrics."""
    sessions = Gauge(
        "fairshare_sessions",
        "Sessions per region, sector and figure, as the monitor's page counts them: "
        + ", ".join(COUNTED)
        + ". Fill rate: filled / (posted - cancelled).",
        ["region", "sector", "figure"],
        registry=metrics.registry,
    )

    async def refresh(runtime: Runtime) -> None:
        counts = await repository.all_counts(runtime.pool)
        set_all(
            sessions,
            (
                ((c.region, c.sector, figure), value)
                for c in counts
                for figure, value in zip(COUNTED, c.numbers(), strict=True)
            ),
        )

    metrics.add("session_figures", refresh)
