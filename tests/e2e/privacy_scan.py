"""A privacy scan of what an end-to-end run left behind: every record of every Kafka
topic (from the earliest offset), every outbox row in PostgreSQL (they keep a day of
published events, so what a lost broker dropped is still read), and every line of the
system's logs, searched for the personal data and secrets the run's world made.

Events may carry ids, ODS codes, site names and figures; they must not carry a
person's name, e-mail, phone or register number, an invite code, a session token, an
API key or a web hook secret. Logs must carry none of these, nor any free text. A
needle may be allowed in the events of named types only, where their contract carries
it (a clinician's own words, when they chose to share them with the practice), with
the reason next to it.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.e2e.chaos import PRACTICE_REASON, World


@dataclass(frozen=True)
class Needle:
    """Something that must not be found, and where (if anywhere) it may be."""

    kind: str
    text: str
    allowed_in: frozenset[str] = frozenset()  # event types whose contract carries it
    why_allowed: str = ""


@dataclass(frozen=True)
class Item:
    """One thing scanned: an event (Kafka record or outbox row) or a log line."""

    where: str
    text: str
    event_type: str | None = None


@dataclass
class Result:
    """What the scan read and found."""

    counts: Counter[str] = field(default_factory=Counter)  # items read, by source
    needles: Counter[str] = field(default_factory=Counter)  # searched for, by kind
    findings: list[str] = field(default_factory=list)
    allowed: Counter[str] = field(default_factory=Counter)  # hits where a contract allows


def needles(world: World) -> list[Needle]:
    """Everything personal or secret the world made, and the free text it wrote."""
    found: list[Needle] = []
    for c in world.clinicians:
        found += [Needle("clinician name", c.name), Needle("session token", c.token)]
        found += [Needle("e-mail", c.email), Needle("register number", c.register_number)]
        found += [Needle("phone", c.phone), Needle("phone", re.sub(r"\D", "", c.phone))]
        found += [Needle("invite code", c.invite_code)]
    for o in world.orgs:
        found += [Needle("web hook secret", o.secret), Needle("API key", o.api_key)]
        found += [Needle("web hook secret", o.secret.removeprefix("whsec_"))]
    for text, shared in world.cancellation_texts.items():
        found.append(
            Needle(
                "a clinician's own words",
                text,
                frozenset({"booking.cancelled"}) if shared else frozenset(),
                "shared with the practice by the clinician's choice (BookingCancelled.reason_text)",
            )
        )
    if world.figures.org_cancellations:
        found.append(
            Needle(
                "a practice's free-text reason",
                PRACTICE_REASON,
                frozenset({"session.cancelled"}),
                "the practice's own reason, which the released clinician is told"
                " (SessionCancelled.reason)",
            )
        )
    empty = [n.kind for n in found if not n.text]
    assert not empty, f"the world lost some of what it made: {empty}"
    return found


def _type_of(text: str) -> str | None:
    try:
        found = json.loads(text)
    except ValueError:
        return None
    kind = found.get("type") if isinstance(found, dict) else None
    return kind if isinstance(kind, str) else None


async def kafka_records(bootstrap: str) -> list[Item]:
    """Every record of every topic, from the earliest offset to the end: its key,
    headers and value."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    items: list[Item] = []
    try:
        parts = [
            TopicPartition(topic, p)
            for topic in sorted(await consumer.topics())
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not parts:
            return items
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        left = {tp for tp in parts if ends[tp] > await consumer.position(tp)}
        while left:
            batch = await consumer.getmany(*left, timeout_ms=1000, max_records=5000)
            if not batch:
                raise AssertionError(f"no records came from {sorted(map(str, left))[:5]}")
            for tp, records in batch.items():
                for r in records:
                    value = (r.value or b"").decode("utf-8", "replace")
                    headers = " ".join(f"{k}={v.decode('utf-8', 'replace')}" for k, v in r.headers)
                    key = (r.key or b"").decode("utf-8", "replace")
                    items.append(
                        Item(
                            f"kafka {tp.topic}[{tp.partition}]@{r.offset}",
                            f"{key} {headers} {value}",
                            _type_of(value),
                        )
                    )
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return items


async def outbox_rows(dsn: str) -> list[Item]:
    """Every row of every service's outbox, published or not."""
    conn = await asyncpg.connect(dsn)
    try:
        schemas = await conn.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
            " ORDER BY 1"
        )
        items = []
        for row in schemas:
            schema = row["table_schema"]
            for r in await conn.fetch(
                f'SELECT id, event_type, row_to_json(o)::text AS t FROM "{schema}".outbox o'
            ):
                items.append(Item(f"outbox {schema}#{r['id']}", r["t"], r["event_type"]))
        return items
    finally:
        await conn.close()


async def table_rows(dsn: str, table: str) -> list[Item]:
    """Every row of ``table`` (schema-qualified), as JSON: where the data is meant to be,
    to show that the needles match it as it is stored."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"SELECT row_to_json(t)::text AS t FROM {table} t")
    finally:
        await conn.close()
    return [Item(f"{table} row {n}", r["t"]) for n, r in enumerate(rows, 1)]


def found_in(items: list[Item], needle: Needle) -> bool:
    """Whether ``needle`` is in any of ``items``, as the scan would find it."""
    pattern = _boundary(needle.text)
    return any(pattern.search(item.text.lower()) for item in items)


def log_lines(root: Path) -> list[Item]:
    """Every line of every log file under ``root``: the system's (every service's and
    the supervisor's lines), the broker's, and PostgreSQL's (``pg/log``)."""
    items = []
    logs = [p for p in root.rglob("*") if p.is_file() and (p.suffix == ".log" or p.name == "log")]
    assert any(p.name == "log" for p in logs), f"PostgreSQL's log is not under {root}"
    for path in sorted(logs):
        lines = path.read_text(errors="replace").splitlines()
        items += [Item(f"{path.relative_to(root)}:{n}", line) for n, line in enumerate(lines, 1)]
    return items


def _boundary(needle: str) -> re.Pattern[str]:
    """The needle, not as part of a longer run of letters and digits."""
    return re.compile(rf"(?<![0-9a-z]){re.escape(needle.lower())}(?![0-9a-z])")


def scan(items: list[Item], needles: list[Needle], source: str, result: Result) -> None:
    """Search ``items`` (all from one ``source``) for every needle, case-insensitively."""
    result.counts[source] += len(items)
    starts, chunks, at = [], [], 0
    for item in items:
        starts.append(at)
        chunks.append(item.text.lower())
        at += len(chunks[-1]) + 1
    corpus = "\n".join(chunks)
    for needle in needles:
        text = needle.text.lower()
        if text not in corpus:  # the common case, fast
            continue
        for hit in _boundary(needle.text).finditer(corpus):
            index = bisect.bisect_right(starts, hit.start()) - 1
            item = items[index]
            if item.event_type is not None and item.event_type in needle.allowed_in:
                result.allowed[f"{needle.kind} in {item.event_type} ({needle.why_allowed})"] += 1
                continue
            start = max(0, hit.start() - starts[index] - 80)
            excerpt = item.text[start : start + 200]
            result.findings.append(
                f"{needle.kind} {needle.text!r} in {item.where}"
                f" ({item.event_type or 'log'}): ...{excerpt}..."
            )
