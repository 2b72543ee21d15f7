"""What /metrics reports, without a broker or database: requests by route template,
a consumer's messages per topic and outcome, lag from end and committed offsets, the
outbox's backlog, each source read at most once per interval, and matching's drain
shares."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from aiokafka import TopicPartition
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families

from services.matching import gauges as matching_gauges
from services.matching import ledger
from shared.catalogue import Sector
from shared.http.app import service_app
from shared.messaging.consumer import EventConsumer
from shared.metrics import Metrics
from shared.settings import ServiceSettings


def _samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition a scraper gets, by name and labels."""
    body, _ = metrics.exposition(None)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return _samples(metrics).get((name, frozenset(labels.items())))


async def test_requests_are_counted_by_route_template_never_by_path() -> None:
    """A request to /things/{thing_id} is one series whatever the id; a path no route
    matches is "unmatched"; the ids and query strings asked for appear nowhere; /metrics
    answers Prometheus's text format without any sign-in."""
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app = service_app(
        ServiceSettings(),
        service="test",
        schema="test",
        migrations_dir=Path(),
        title="t",
        description="t",
        routers=[router],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for thing_id in ("QOP-secret-1", "QOP-secret-2"):
            assert (await client.get(f"/things/{thing_id}?who=Priya")).status_code == 200
        assert (await client.get("/no/such/QOP-secret-3")).status_code == 404
        scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    metrics: Metrics = app.state.metrics
    ok = {"method": "GET", "route": "/things/{thing_id}", "status": "200"}
    assert _value(metrics, "fairshare_http_requests_total", **ok) == 2
    missing = {"method": "GET", "route": "unmatched", "status": "404"}
    assert _value(metrics, "fairshare_http_requests_total", **missing) == 1
    latency = {"method": "GET", "route": "/things/{thing_id}"}
    assert _value(metrics, "fairshare_http_request_duration_seconds_count", **latency) == 2
    assert "secret" not in scraped.text
    assert "Priya" not in scraped.text


class _DeadLetters:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def publish(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> tuple[int, int] | None:
        self.sent.append(topic)
        return None


async def test_a_batch_counts_what_it_passed_over_and_dead_lettered_per_topic() -> None:
    """Another service's event type is passed over and an unreadable message parked:
    each is counted under its own topic, and the dead letter under its source topic."""

    async def handler(*_: object) -> None:
        raise AssertionError

    metrics = Metrics()
    publisher = _DeadLetters()
    unused: Any = None
    consumer = EventConsumer(
        service="monitor",
        pool=unused,
        dead_letters=publisher,
        handlers={"session.posted": handler},
        metrics=metrics,
    )

    def record(offset: int, event_type: str | None, body: bytes) -> SimpleNamespace:
        headers = [("event-type", event_type.encode())] if event_type else []
        return SimpleNamespace(
            topic="vacancies.events",
            partition=0,
            offset=offset,
            key=b"QOP",
            value=body,
            headers=headers,
        )

    await consumer.handle_batch(
        [record(1, "session.amended", b"{}"), record(2, None, b"not json"), record(3, None, b"[]")]
    )
    topic = {"topic": "vacancies.events"}
    assert _value(metrics, "fairshare_messages_total", outcome="passed_over", **topic) == 1
    assert _value(metrics, "fairshare_messages_total", outcome="dead_lettered", **topic) == 2
    assert _value(metrics, "fairshare_dead_letters_total", **topic) == 2
    assert publisher.sent == ["deadletter", "deadletter"]


class _Consumer:
    """An aiokafka consumer as the lag source sees it."""

    def __init__(self) -> None:
        self.tps = [TopicPartition("vacancies.events", p) for p in range(3)]
        # Partition 0: ListOffsets short of the end (Tansu, several records in the last
        # batch) while the consumer's own fetch saw 40. Partition 2: nothing committed.
        self.ends = {self.tps[0]: 35, self.tps[1]: 12, self.tps[2]: 9}
        self.highwaters = {self.tps[0]: 40, self.tps[1]: None, self.tps[2]: 9}
        self.commits: dict[TopicPartition, int | None] = {
            self.tps[0]: 30,
            self.tps[1]: 12,
            self.tps[2]: None,
        }

    def assignment(self) -> set[TopicPartition]:
        return set(self.tps)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.commits[tp]

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 4)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters[tp]


class _Pool:
    def __init__(self) -> None:
        self.queries = 0

    async def fetchrow(self, _query: str) -> dict[str, Any]:
        self.queries += 1
        return {"backlog": 7, "age": 12.5}


class _KafkaPublisher:
    """The publisher whose group-less reader lists offsets (the fake consumer does)."""

    def __init__(self, reader: _Consumer) -> None:
        self.reader = reader

    async def offsets_reader(self) -> _Consumer:
        return self.reader


def _runtime(consumer: _Consumer, pool: _Pool) -> Any:
    return SimpleNamespace(
        pool=pool,
        publisher=_KafkaPublisher(consumer),
        relay=SimpleNamespace(published=21, replays=1),
        consumer=SimpleNamespace(
            subscriber=SimpleNamespace(consumer=consumer),
            topics=lambda: ["vacancies.events"],
        ),
    )


async def test_scrape_reads_lag_and_outbox_once_per_interval() -> None:
    """Lag is the log end (the larger of ListOffsets and the last fetch's high
    watermark) minus the committed offset, or the log start where nothing is committed;
    a partition given away in a rebalance loses its series; the outbox's backlog and
    oldest age come from one query, made again only after the interval; a source that
    fails is counted and the others still report."""
    consumer, pool = _Consumer(), _Pool()
    metrics = Metrics(ttl_s=3600)
    metrics.bind(_runtime(consumer, pool))
    assert _value(metrics, "fairshare_dead_letters_total", topic="vacancies.events") == 0
    await metrics.refresh()
    lag = {
        p: _value(metrics, "fairshare_consumer_lag", topic="vacancies.events", partition=str(p))
        for p in range(3)
    }
    assert lag == {0: 10, 1: 0, 2: 5}
    partition = {"topic": "vacancies.events", "partition": "0"}
    assert _value(metrics, "fairshare_consumer_log_end_offset", **partition) == 40
    assert _value(metrics, "fairshare_consumer_committed_offset", **partition) == 30
    assert _value(metrics, "fairshare_outbox_backlog") == 7
    assert _value(metrics, "fairshare_outbox_oldest_unpublished_age_seconds") == 12.5
    assert _value(metrics, "fairshare_outbox_published_total") == 21

    await metrics.refresh()
    assert pool.queries == 1  # within the interval: nothing asked again

    metrics.ttl_s = 0
    consumer.tps = consumer.tps[:2]  # partition 2 went to another process
    consumer.commits[consumer.tps[0]] = 40

    async def broken(_runtime: Any) -> None:
        raise ConnectionError

    metrics.add("broken", broken)
    await metrics.refresh()
    assert pool.queries == 2
    assert _value(metrics, "fairshare_consumer_lag", **partition) == 0
    gone = {"topic": "vacancies.events", "partition": "2"}
    assert _value(metrics, "fairshare_consumer_lag", **gone) is None
    assert _value(metrics, "fairshare_metrics_refresh_failures_total", source="broken") == 1


def test_a_sectors_drain_share_is_its_net_outflow_over_its_cap() -> None:
    """As the ledger last worked it out: a ratio of the cap, infinite for any outflow
    against a cap of nothing, and no series while the sector offered no hours."""
    region = "ZZ9"
    ledger._note_share(region, Sector.DENTISTRY, offered=100, net_out=12, cap=10)
    ledger._note_share(region, Sector.OPTOMETRY, offered=100, net_out=1, cap=0)
    ledger._note_share(region, Sector.GENERAL_PRACTICE, offered=0, net_out=0, cap=0)
    metrics = Metrics()
    matching_gauges.register(metrics)
    shares = {
        sector: _value(metrics, "fairshare_sector_drain_share", region=region, sector=sector)
        for sector in ("dentistry", "optometry", "general_practice")
    }
    assert shares == {"dentistry": 1.2, "optometry": math.inf, "general_practice": None}
    ledger._note_share(region, Sector.DENTISTRY, offered=0, net_out=12, cap=0)
    gone = _value(metrics, "fairshare_sector_drain_share", region=region, sector="dentistry")
    assert gone is None
