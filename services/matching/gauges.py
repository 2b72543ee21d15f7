"""Matching's gauges for /metrics: open sessions per region, how many start within a day,
and each sector's share of its drain cap. Counts per region and sector only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from prometheus_client import Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.matching import ledger, repository
from shared.metrics import Metrics, set_all
from shared.runtime import Runtime

SOON = timedelta(hours=24)


def register(metrics: Metrics) -> None:
    """Register matching's gauges in the service's metrics."""
    open_sessions = Gauge(
        "fairshare_open_sessions",
        "Sessions open (not filled, cancelled or started) as matching holds them, per region.",
        ["region"],
        registry=metrics.registry,
    )
    starting_soon = Gauge(
        "fairshare_open_sessions_starting_within_24h",
        "Open sessions that start within 24 hours, per region: at risk of going unfilled.",
        ["region"],
        registry=metrics.registry,
    )

    async def refresh(runtime: Runtime) -> None:
        rows = await repository.open_session_counts(runtime.pool, datetime.now(UTC), SOON)
        set_all(open_sessions, (((region,), n) for region, n, _ in rows))
        set_all(starting_soon, (((region,), soon) for region, _, soon in rows))

    metrics.add("open_sessions", refresh)
    metrics.registry.register(_DrainShares())


class _DrainShares(Collector):
    """Each sector's net outflow over its cap, as the ledger last worked it out: read from
    memory at scrape time, so a scrape costs no query."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "fairshare_sector_drain_share",
            "A sector's net outflow of hours over its cap in the rolling window (1: at the"
            " cap; above 1: past it), per region with moves, and sector.",
            labels=["region", "sector"],
        )
        for (region, sector), share in sorted(ledger.DRAIN_SHARES.items()):
            family.add_metric([region, sector.value], share)
        yield family
