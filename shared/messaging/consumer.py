"""The idempotent consumer every service uses.

A service reads the streams of the services whose events it handles (one topic per
producer, keyed by region: see shared/events/registry.py). Each message is parsed
against the catalogue; one that cannot be parsed, whatever the reason (not JSON,
nested past any sane depth, a type that does not belong on the stream, failing
validation, a NUL character), goes to the dead-letter topic with the reason in its
headers and the consumer carries on. A valid one is handled in one transaction with
its inbox record, so a redelivery has no second effect; a type the service does not
handle is passed over.

A handler that fails is retried with backoff. Failures that can pass (the database
or network away, a serialisation conflict) are retried for as long as they last;
any other failure (a data error, a bug) dead-letters the message after
``max_attempts``, so one bad message never stalls its partition.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel, ValidationError

from shared.db import inbox
from shared.db.outbox import Publisher
from shared.db.types import Conn
from shared.events.envelope import Envelope
from shared.events.registry import EVENTS, dead_letter_topic, stream_for, topic_for
from shared.metrics import Metrics

log = structlog.get_logger(__name__)

Handler = Callable[[Conn, Envelope[Any]], Awaitable[None]]
ManyHandler = Callable[[Conn, list[Envelope[Any]]], Awaitable[None]]
DataT = TypeVar("DataT", bound=BaseModel)


@dataclass(frozen=True)
class Batched:
    """A handler that takes a run of events of one type in one call.

    In a batch, consecutive new events of the type go to ``many`` together, in stream
    order, so that a handler can lock, read and write their rows in a few statements
    instead of a few per event (a burst of thousands of one type was a service's lag).
    ``many`` must leave the same state as handling the events one by one, in order.
    Handled on its own (a retry), an event is a run of one.
    """

    many: ManyHandler

    async def __call__(self, conn: Conn, envelope: Envelope[Any]) -> None:
        await self.many(conn, [envelope])


@dataclass(frozen=True)
class Typed(Generic[DataT]):
    """A handler of one event's own type, as a ``Handler`` of any envelope.

    ``parse`` validates ``data`` as the catalogue's model for the envelope's type, so a
    handler can take ``Envelope[SessionPosted]``; this checks, at run time, that it was
    registered for a type whose model that is. A wrong registration raises TypeError
    (and the message is dead-lettered after its retries) rather than reading one
    model's fields off another.
    """

    model: type[DataT]
    handler: Callable[[Conn, Envelope[DataT]], Awaitable[None]]

    async def __call__(self, conn: Conn, envelope: Envelope[Any]) -> None:
        if not isinstance(envelope.data, self.model):
            msg = (
                f"handler for {envelope.type!r} takes {self.model.__name__},"
                f" got {type(envelope.data).__name__}: registered for the wrong event type?"
            )
            raise TypeError(msg)
        await self.handler(conn, envelope)


# Failures that say nothing about the message: wait them out, however long.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.TransactionRollbackError,  # serialisation failure, deadlock
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
)


class Undeliverable(Exception):  # noqa: N818 - reads as what it is: a message we can't use
    """A message that can never be handled: it belongs in the dead-letter topic."""


def _find_nul(node: Any, path: str = "") -> str | None:
    """The path of the first string holding a NUL character (PostgreSQL refuses them)."""
    if isinstance(node, str):
        return path or "(body)" if "\x00" in node else None
    if isinstance(node, dict):
        for key, value in node.items():
            found = _find_nul(key, path) or _find_nul(value, f"{path}.{key}" if path else key)
            if found:
                return found
    if isinstance(node, list):
        for i, value in enumerate(node):
            found = _find_nul(value, f"{path}[{i}]")
            if found:
                return found
    return None


def _decode(body: bytes) -> dict[str, Any]:
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"not JSON: {exc}"
        raise Undeliverable(msg) from exc
    except RecursionError as exc:  # a nesting bomb: json recurses per level
        msg = "not JSON we can read: nested too deeply"
        raise Undeliverable(msg) from exc
    if not isinstance(raw, dict):
        msg = "envelope must be a JSON object"
        raise Undeliverable(msg)
    return raw


def parse(stream: str, body: bytes) -> Envelope[Any]:
    """Validate ``body`` as an envelope published on ``stream`` (unprefixed topic name).

    Raises Undeliverable, with the reason, for anything that can't be used.
    """
    try:
        raw = _decode(body)
        spec = EVENTS.get(str(raw.get("type")))
        if spec is None or stream != stream_for(spec.producer):
            msg = f"type {raw.get('type')!r} does not belong on {stream!r}"
            raise Undeliverable(msg)
        if raw.get("schema_version") != spec.version:
            msg = (
                f"schema_version {raw.get('schema_version')!r} unsupported (expects {spec.version})"
            )
            raise Undeliverable(msg)
        nul = _find_nul(raw)
        if nul:
            msg = f"{nul}: NUL character not allowed"
            raise Undeliverable(msg)
        try:
            return Envelope[spec.model].model_validate(raw)  # type: ignore[name-defined]
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            msg = f"invalid envelope: {fields}"
            raise Undeliverable(msg) from exc
    except Undeliverable:
        raise
    except Exception as exc:  # anything else that parsing can throw is still the message's fault
        msg = f"unreadable message: {type(exc).__name__}: {exc}"
        raise Undeliverable(msg) from exc


async def _raw_body(message: Any) -> Any:
    """FastStream decoder that leaves the body undecoded."""
    return message.body


def _runs(
    work: list[tuple[Any, Envelope[Any], Handler]], new: set[uuid.UUID], fresh: list[bool]
) -> list[tuple[Handler, list[Envelope[Any]]]]:
    """The batch's new events in stream order, consecutive ones for one Batched as one
    run; ``fresh`` gets, per item of ``work``, whether it is new."""
    runs: list[tuple[Handler, list[Envelope[Any]]]] = []
    for _, envelope, handler in work:
        claimed = envelope.event_id in new
        new.discard(envelope.event_id)  # the same event twice in one fetch
        fresh.append(claimed)
        if not claimed:
            continue
        if isinstance(handler, Batched) and runs and runs[-1][0] is handler:
            runs[-1][1].append(envelope)
        else:
            runs.append((handler, [envelope]))
    return runs


@dataclass
class Progress:
    """What a consumer has done lately: what health and metrics report."""

    handled: int = 0
    duplicates: int = 0
    passed_over: int = 0
    dead_lettered: int = 0
    last_progress: float = field(default_factory=time.monotonic)
    failing_since: float | None = None
    last_error: str | None = None
    lag: dict[str, int] = field(default_factory=dict)
    lag_checked: float | None = None
    rewinds: int = 0
    last_age_s: float = 0.0
    lag_since: float | None = None

    def saw(self, occurred_at: datetime) -> None:
        """An event was read: remember how old it was when its turn came."""
        self.last_age_s = max(0.0, (datetime.now(UTC) - occurred_at).total_seconds())

    def measured(self, lag: dict[str, int]) -> None:
        """Messages waiting per partition, as just measured."""
        if sum(lag.values()) and not sum(self.lag.values()):
            self.lag_since = time.monotonic()
        self.lag = lag
        self.lag_checked = time.monotonic()

    def lag_s(self) -> float:
        """How far behind the consumer is, in seconds: 0 when nothing waits; else how old
        the last event was when its turn came, or, if longer, how long messages have
        waited with nothing handled."""
        if not sum(self.lag.values()):
            return 0.0
        waiting = time.monotonic() - max(self.last_progress, self.lag_since or 0.0)
        return max(self.last_age_s, waiting)

    def moved(self) -> None:
        """A message was dealt with, one way or another."""
        self.last_progress = time.monotonic()
        self.failing_since = None
        self.last_error = None


@dataclass
class EventConsumer:
    """Routes a service's subscribed event types to handlers, idempotently."""

    service: str
    pool: asyncpg.Pool
    dead_letters: Publisher
    handlers: dict[str, Handler]
    topic_prefix: str = ""
    retry_delay_s: float = 0.5
    max_retry_delay_s: float = 30.0
    max_attempts: int = 5
    # Records per fetch, handled in one transaction: bursts of thousands (a plan's news)
    # cost a fetch, a claim and a commit per batch.
    max_batch: int = 500
    session_timeout_ms: int = 6000
    progress: Progress = field(default_factory=Progress)
    subscriber: Any = None
    # Counts per topic and outcome, handler latency, dead letters (shared/metrics.py).
    metrics: Metrics = field(default_factory=Metrics)
    _attempts: dict[uuid.UUID, int] = field(default_factory=dict, repr=False)
    # Records already parked: a batch rewound for another message's retry brings them
    # back, and they should reach the dead-letter topic once, not once per retry.
    _parked: OrderedDict[tuple[str, int, int], None] = field(
        default_factory=OrderedDict, repr=False
    )

    @property
    def group_id(self) -> str:
        """Consumer group: one per service, so each service sees every event once."""
        return f"{self.topic_prefix}fairshare-{self.service}"

    def topics(self) -> list[str]:
        """The streams this consumer reads: those of every producer it handles."""
        return list(dict.fromkeys(topic_for(t, self.topic_prefix) for t in self.handlers))

    def subscribe(self, broker: KafkaBroker) -> None:
        """Register one subscriber for all topics (one group join, not one per topic)."""

        # NACK_ON_ERROR commits a batch after it is handled and rewinds each partition
        # to the batch's first record on an exception: at-least-once, where FastStream's
        # default would be at-most-once.
        subscriber = broker.subscriber(
            *self.topics(),
            group_id=self.group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            title=f"{self.service}-consumer",
            batch=True,
            max_records=self.max_batch,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.session_timeout_ms // 3,
            # The body stays bytes: parse() is the one place a message is read, and
            # FastStream's own JSON decoding would die of a nesting bomb before it.
            decoder=_raw_body,
        )

        @subscriber
        async def on_batch(message: KafkaMessage) -> None:
            records: tuple[ConsumerRecord[bytes, bytes], ...] = message.raw_message
            await self.handle_batch(records)

        self.subscriber = subscriber

    async def handle_batch(self, records: Sequence[Any]) -> None:
        """Handle what one fetch brought, in one transaction.

        One transaction (one commit) for the batch rather than one per message is what
        lets a consumer keep up with a busy region. Messages that can't be parsed are
        parked first; if any handler fails, the transaction is rolled back and each
        message is handled on its own, with its own retries and parking (those
        already handled on their own are then duplicates, dropped by the inbox).
        """
        started = time.perf_counter()
        work: list[tuple[Any, Envelope[Any], Handler]] = []
        # (topic, outcome) counts, added to the metrics once per batch, not per record.
        tally: Counter[tuple[str, str]] = Counter()
        for record in records:
            if self._not_ours(record):
                self.progress.passed_over += 1
                tally[record.topic, "passed_over"] += 1
                continue
            try:
                envelope = parse(record.topic.removeprefix(self.topic_prefix), record.value)
            except Undeliverable as exc:
                await self._dead_letter(record.topic, record.key, record.value, str(exc), record)
                continue
            self.progress.saw(envelope.occurred_at)
            handler = self.handlers.get(envelope.type)
            if handler is None:
                self.progress.passed_over += 1
                tally[record.topic, "passed_over"] += 1
                continue
            work.append((record, envelope, handler))
        self.metrics.count(tally)
        tally.clear()
        if not work:
            self.progress.moved()
            return
        fresh: list[bool] = []
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                # One statement claims the whole batch: a claim per event was a third of
                # a busy consumer's round trips.
                new = await inbox.claim_many(
                    conn, [(envelope.event_id, envelope.type) for _, envelope, _ in work]
                )
                for handler, envelopes in _runs(work, new, fresh):
                    run_started = time.perf_counter()
                    if isinstance(handler, Batched):
                        await handler.many(conn, envelopes)
                    else:
                        await handler(conn, envelopes[0])
                    self.metrics.handler_took(envelopes[0].type, time.perf_counter() - run_started)
        except Exception as exc:
            log.warning(
                "batch failed; handling its messages one by one",
                error=f"{type(exc).__name__}: {exc}"[:300],
                messages=len(work),
            )
            for record, _, _ in work:
                await self.handle(record.topic, record.key, record.value, record)
            return
        ms = round((time.perf_counter() - started) * 1000, 2)
        # One line per batch at info; a line per event at debug. Under load a line per
        # event was tens of thousands a minute, each rendered by the service and read
        # through the supervisor's pipe (both measurable in the sustained benchmark).
        log.info(
            "events handled",
            handled=dict(Counter(e.type for (_, e, _), c in zip(work, fresh, strict=True) if c)),
            duplicates=len(fresh) - sum(fresh),
            batch=len(work),
            batch_ms=ms,
        )
        for (_, envelope, _), claimed in zip(work, fresh, strict=True):
            log.debug(
                "event handled" if claimed else "duplicate event ignored",
                event_id=str(envelope.event_id),
                event_type=envelope.type,
                correlation_id=str(envelope.correlation_id),
                region=envelope.region,
            )
        self.progress.handled += sum(fresh)
        self.progress.duplicates += len(fresh) - sum(fresh)
        self.progress.moved()
        for (record, _, _), claimed in zip(work, fresh, strict=True):
            tally[record.topic, "handled" if claimed else "duplicate"] += 1
        self.metrics.count(tally)

    def _not_ours(self, record: Any) -> bool:
        """Whether the record's ``event-type`` header names a type of its stream that this
        service does not handle: passed over without reading the body. (A stream carries
        every event of its producer; most are some other service's business, and reading
        each one cost more than handling ours.) Without the header, the body decides."""
        for name, value in record.headers or ():
            if name == "event-type":
                spec = EVENTS.get(value.decode(errors="replace"))
                stream = record.topic.removeprefix(self.topic_prefix)
                return (
                    spec is not None
                    and spec.type not in self.handlers
                    and stream == stream_for(spec.producer)
                )
        return False

    async def handle(self, topic: str, key: bytes | None, body: bytes, record: Any = None) -> bool:
        """Handle one message; True if it had an effect, False if passed over or parked."""
        started = time.perf_counter()
        try:
            envelope = parse(topic.removeprefix(self.topic_prefix), body)
        except Undeliverable as exc:
            await self._dead_letter(topic, key, body, str(exc), record)
            return False
        self.progress.saw(envelope.occurred_at)
        handler = self.handlers.get(envelope.type)
        if handler is None:
            self.progress.passed_over += 1
            self.progress.moved()
            self._count(topic, "passed_over")
            return False  # on a stream we read, but another service's business
        with structlog.contextvars.bound_contextvars(
            event_id=str(envelope.event_id),
            event_type=envelope.type,
            correlation_id=str(envelope.correlation_id),
            region=envelope.region,
        ):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    fresh = await inbox.claim(
                        conn, event_id=envelope.event_id, event_type=envelope.type
                    )
                    if fresh:
                        handler_started = time.perf_counter()
                        await handler(conn, envelope)
                        self.metrics.handler_took(
                            envelope.type, time.perf_counter() - handler_started
                        )
            except Exception as exc:
                self._count(topic, "failed")
                return await self._failed(exc, envelope, topic, key, body, record)
            self._attempts.pop(envelope.event_id, None)
            if fresh:
                self.progress.handled += 1
            else:
                self.progress.duplicates += 1
            self._count(topic, "handled" if fresh else "duplicate")
            self.progress.moved()
            log.info(
                "event handled" if fresh else "duplicate event ignored",
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            return fresh

    async def _failed(
        self,
        exc: Exception,
        envelope: Envelope[Any],
        topic: str,
        key: bytes | None,
        body: bytes,
        record: Any,
    ) -> bool:
        """Park a message that will never succeed; otherwise back off and raise to retry."""
        attempts = self._attempts.get(envelope.event_id, 0) + 1
        transient = isinstance(exc, TRANSIENT)
        if not transient and attempts >= self.max_attempts:
            self._attempts.pop(envelope.event_id, None)
            reason = f"handler failed {attempts} times: {type(exc).__name__}: {exc}"
            log.error("event dead-lettered after repeated failures", error=reason[:500])
            await self._dead_letter(topic, key, body, reason, record)
            return False
        if len(self._attempts) > 10_000:  # bounded: only messages being retried live here
            self._attempts.clear()
        self._attempts[envelope.event_id] = attempts
        if self.progress.failing_since is None:
            self.progress.failing_since = time.monotonic()
        self.progress.last_error = f"{type(exc).__name__}: {exc}"[:300]
        delay = min(self.retry_delay_s * 2 ** (attempts - 1), self.max_retry_delay_s)
        log.exception(
            "handler failed; message will be redelivered",
            attempt=attempts,
            transient=transient,
            retry_in_s=delay,
        )
        await asyncio.sleep(delay)
        raise exc

    async def check_positions(self) -> None:
        """Measure lag, and rewind a partition whose position is past its log's end.

        A broker that lost its log (Tansu keeps it in memory) starts each partition
        again at offset 0, while this consumer still fetches, and commits, the old
        position: it would wait for ever. Rewound to the start, it reads the new log
        (the producers' outboxes publish their kept events again) and its inbox drops
        whatever it had already handled.
        """
        consumer = getattr(self.subscriber, "consumer", None)
        if consumer is None:
            return
        partitions = list(consumer.assignment())
        if not partitions:
            self.progress.measured({})
            return
        lag: dict[str, int] = {}
        for tp in partitions:
            # The high watermark of our own last fetch: Tansu's ListOffsets falls short
            # of the end (see shared/messaging/kafka.py). None until the first fetch.
            end = consumer.highwater(tp)
            if end is None:
                continue
            position = await asyncio.wait_for(consumer.position(tp), timeout=10)
            if position > end:
                log.warning(
                    "position past the end of the log: the broker lost it; reading it again",
                    topic=tp.topic,
                    partition=tp.partition,
                    position=position,
                    log_end=end,
                )
                await consumer.seek_to_beginning(tp)
                self.progress.rewinds += 1
                position = 0
            lag[f"{tp.topic}[{tp.partition}]"] = max(0, end - position)
        self.progress.measured(lag)

    async def watch(self, every_s: float) -> None:
        """Check positions every ``every_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.check_positions()
            except Exception as exc:
                self.progress.lag_checked = None
                log.warning("consumer position check failed", error=repr(exc))

    def stalled(self, after_s: float) -> str | None:
        """Why this consumer is not making progress, if it has not for ``after_s``."""
        now = time.monotonic()
        p = self.progress
        if p.failing_since is not None and now - p.failing_since > after_s:
            return f"handler failing for {now - p.failing_since:.0f} s: {p.last_error}"
        if sum(p.lag.values()) > 0 and now - p.last_progress > after_s:
            return f"{sum(p.lag.values())} messages waiting, none handled for {after_s:.0f} s"
        return None

    async def _dead_letter(
        self, topic: str, key: bytes | None, body: bytes, reason: str, record: Any
    ) -> None:
        if record is not None:
            where = (record.topic, record.partition, record.offset)
            if where in self._parked:
                return
        headers = {
            "dlq-reason": reason[:2000],
            "dlq-source-topic": topic,
            "dlq-consumer": self.group_id,
        }
        if record is not None:
            headers["dlq-source-partition"] = str(record.partition)
            headers["dlq-source-offset"] = str(record.offset)
        await self.dead_letters.publish(
            topic=dead_letter_topic(self.topic_prefix),
            key=(key or b"").decode(errors="replace"),
            value=body,
            headers=headers,
        )
        if record is not None:
            self._parked[(record.topic, record.partition, record.offset)] = None
            if len(self._parked) > 10_000:
                self._parked.popitem(last=False)
        self.progress.dead_lettered += 1
        self.progress.moved()
        self.metrics.dead_lettered(topic)
        log.warning("message dead-lettered", source_topic=topic, reason=reason[:300])

    def _count(self, topic: str, outcome: str) -> None:
        self.metrics.count({(topic, outcome): 1})
