"""What operators scrape at ``/metrics``: one Prometheus registry per service process.

Hot paths only count: a consumer's batch adds its tally per topic once, and a request
adds one count and one latency, a few microseconds each. Whatever costs a query or a
broker round trip (the outbox's backlog, consumer lag, a service's business gauges) is
read when ``/metrics`` is scraped, at most once per ``ttl_s`` however many scrapers ask
(and never when nobody scrapes, as in a benchmark), each source bounded by a timeout;
a source that fails keeps its last values and counts the failure.

Several processes: each process has its own registry (one ``Metrics`` per app) and
serves it on its own port, so Prometheus scrapes each process as a target of its own
and ``sum by (job)`` adds them up. prometheus_client's multiprocess mode (files shared
by the workers of one port) is not used, because no port here is shared by processes;
matching's plan worker process records nothing, its parent does.

Only aggregates: counts and gauges per topic, partition, event type, route template,
region or sector; never an id, a name, a path with its parameters or a query string.
``/metrics`` asks for no sign-in (a scraper can't sign in), the monitor's included, so
it belongs on the operators' internal network: see deploy/README.md.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = structlog.get_logger(__name__)

Refresh = Callable[["Runtime"], Awaitable[None]]
# How a consumer dealt with a message: handled (its effect happened), duplicate (the
# inbox had it), passed_over (another service's type), failed (an attempt raised and
# will be retried), dead_lettered (parked for good).
OUTCOMES = ("handled", "duplicate", "passed_over", "failed", "dead_lettered")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Handlers and requests take milliseconds; a plan's batch or a slow commit, seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """A service process's registry, its standard metrics, and its scrape-time sources."""

    def __init__(self, *, ttl_s: float = 1.0, timeout_s: float = 2.0) -> None:
        self.registry = CollectorRegistry()
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        r = self.registry
        ProcessCollector(registry=r)  # CPU, memory, open files: read from /proc per scrape
        self.messages = Counter(
            "fairshare_messages",
            "Messages a consumer read, per topic and outcome (handled, duplicate,"
            " passed_over, failed: an attempt raised and is retried, dead_lettered).",
            ["topic", "outcome"],
            registry=r,
        )
        self.handler_seconds = Histogram(
            "fairshare_handler_duration_seconds",
            "Time a handler took for one call: one event, or a run of consecutive events of"
            " one type in a batch; commit excluded.",
            ["event_type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            "fairshare_dead_letters",
            "Messages this service's consumer parked on the dead-letter topic, per source topic.",
            ["topic"],
            registry=r,
        )
        self.http_requests = Counter(
            "fairshare_http_requests",
            "HTTP requests answered, per method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "fairshare_http_request_duration_seconds",
            "Time from a request's arrival to its last byte (a live stream: its whole life).",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "fairshare_outbox_backlog",
            "Events written to this service's outbox and not yet published.",
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "fairshare_outbox_oldest_unpublished_age_seconds",
            "How long the oldest unpublished outbox row has waited; 0 when none waits.",
            registry=r,
        )
        partition = ["topic", "partition"]
        self.consumer_lag = Gauge(
            "fairshare_consumer_lag",
            "Messages not yet committed by this service's consumer group: log end offset"
            " minus committed offset, per assigned partition.",
            partition,
            registry=r,
        )
        self.consumer_committed = Gauge(
            "fairshare_consumer_committed_offset",
            "The consumer group's committed offset, per assigned partition.",
            partition,
            registry=r,
        )
        self.log_end = Gauge(
            "fairshare_consumer_log_end_offset",
            "Where the partition's log ends (the next offset), per assigned partition.",
            partition,
            registry=r,
        )
        self.refresh_failures = Counter(
            "fairshare_metrics_refresh_failures",
            "Scrape-time sources that failed or timed out (their gauges keep old values).",
            ["source"],
            registry=r,
        )
        r.register(_RelayCounters(self))
        self._sources: list[tuple[str, Refresh]] = [
            ("outbox", self._outbox),
            ("consumer_lag", self._lag),
        ]
        self.runtime: Runtime | None = None
        self._fresh_at = -math.inf
        self._lock = asyncio.Lock()

    def add(self, name: str, refresh: Refresh) -> None:
        """A scrape-time source: ``refresh(runtime)`` sets gauges the service registered."""
        self._sources.append((name, refresh))

    def bind(self, runtime: Runtime) -> None:
        """Read the running service from now on; its consumer's series start at zero, so
        the first dead letter is an increase Prometheus can see."""
        self.runtime = runtime
        if runtime.consumer is not None:
            for topic in runtime.consumer.topics():
                self.dead_letters.labels(topic)
                for outcome in OUTCOMES:
                    self.messages.labels(topic, outcome)

    def unbind(self) -> None:
        """The service is stopping: scrapes no longer reach its pool or broker."""
        self.runtime = None

    def count(self, tally: Mapping[tuple[str, str], int]) -> None:
        """Add a batch's (topic, outcome) counts."""
        for (topic, outcome), n in tally.items():
            self.messages.labels(topic, outcome).inc(n)

    def handler_took(self, event_type: str, seconds: float) -> None:
        """One handler call's duration."""
        self.handler_seconds.labels(event_type).observe(seconds)

    def dead_lettered(self, topic: str) -> None:
        """A message from ``topic`` was parked."""
        self.dead_letters.labels(topic).inc()
        self.messages.labels(topic, "dead_lettered").inc()

    def request(self, *, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request; ``route`` is its template, never the path itself."""
        method = method if method in HTTP_METHODS else "OTHER"
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(method, route).observe(seconds)

    async def refresh(self) -> None:
        """Run every scrape-time source unless they ran within ``ttl_s``."""
        async with self._lock:
            runtime = self.runtime
            if runtime is None or time.monotonic() - self._fresh_at < self.ttl_s:
                return
            for name, source in self._sources:
                try:
                    await asyncio.wait_for(source(runtime), timeout=self.timeout_s)
                except Exception as exc:  # a scrape must still answer with the rest
                    self.refresh_failures.labels(name).inc()
                    log.warning("metrics source failed", source=name, error=repr(exc)[:300])
            self._fresh_at = time.monotonic()

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format the scraper asked for, and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    async def _outbox(self, runtime: Runtime) -> None:
        # The partial index on unpublished rows makes this a short scan, as the health
        # check's count already is; the oldest by id is the oldest written.
        row = await runtime.pool.fetchrow(
            "SELECT count(*) AS backlog, extract(epoch FROM now() - (SELECT created_at"
            " FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1))::float8 AS age"
            " FROM outbox WHERE published_at IS NULL"
        )
        if row is not None:  # an aggregate always has its one row
            self.outbox_backlog.set(row["backlog"])
            self.outbox_oldest_age.set(max(0.0, row["age"] or 0.0))

    async def _lag(self, runtime: Runtime) -> None:
        consumer = getattr(getattr(runtime.consumer, "subscriber", None), "consumer", None)
        if consumer is None or runtime.publisher is None:  # no consumer, or not started yet
            return
        figures = await partition_lag(consumer, await runtime.publisher.offsets_reader())
        # Set all at once, after every await: a partition given to another process in a
        # rebalance disappears from this one's series instead of standing still.
        for gauge in (self.consumer_lag, self.consumer_committed, self.log_end):
            gauge.clear()
        for (topic, partition), (end, committed) in figures.items():
            labels = (topic, str(partition))
            self.log_end.labels(*labels).set(end)
            self.consumer_committed.labels(*labels).set(committed)
            self.consumer_lag.labels(*labels).set(max(0, end - committed))


async def partition_lag(consumer: Any, reader: Any) -> dict[tuple[str, int], tuple[int, int]]:
    """(log end, committed offset) of each partition assigned to an aiokafka consumer;
    ``reader``, an aiokafka consumer that does not fetch, lists the logs' offsets.

    The end is the larger of the listed end (fresh even while the consumer is stuck;
    Tansu lists it short of the end when the last record batch held several records,
    see shared/messaging/kafka.py) and the high watermark of the consumer's own last
    fetch (exact when it was taken). Committed offsets come from the group coordinator.
    A partition with nothing committed yet counts from the log's start, where the
    group's ``auto_offset_reset=earliest`` reads it.
    """
    partitions = sorted(consumer.assignment())
    if not partitions:
        return {}
    ends: dict[Any, int] = await reader.end_offsets(partitions)
    committed: list[int | None] = list(
        await asyncio.gather(*(consumer.committed(tp) for tp in partitions))
    )
    unset = [tp for tp, c in zip(partitions, committed, strict=True) if c is None]
    starts: dict[Any, int] = await reader.beginning_offsets(unset) if unset else {}
    figures: dict[tuple[str, int], tuple[int, int]] = {}
    for tp, done in zip(partitions, committed, strict=True):
        end = max(ends.get(tp) or 0, consumer.highwater(tp) or 0)
        figures[(tp.topic, tp.partition)] = (end, done if done is not None else starts.get(tp, 0))
    return figures


class _RelayCounters(Collector):
    """The outbox relay's own totals, read at scrape time from the running relay."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        relay = getattr(self._metrics.runtime, "relay", None)
        published = CounterMetricFamily(
            "fairshare_outbox_published",
            "Outbox rows this process's relay has published (again after a broker loss too).",
        )
        replays = CounterMetricFamily(
            "fairshare_outbox_replays",
            "Times this process's relay found the broker had lost published events and"
            " queued every kept row again.",
        )
        if relay is not None:
            published.add_metric([], relay.published)
            replays.add_metric([], relay.replays)
        yield published
        yield replays


def set_all(gauge: Gauge, values: Iterable[tuple[tuple[str, ...], float]]) -> None:
    """Replace every series of a labelled gauge, so label sets no longer present go."""
    gauge.clear()
    for labels, value in values:
        gauge.labels(*labels).set(value)
