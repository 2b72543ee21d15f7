"""asyncpg access to each session's facts and figures, and to the counters they sum to."""

from __future__ import annotations

import json
import uuid
from dataclasses import fields
from datetime import datetime
from typing import Any

from services.monitor.domain import (
    COUNTED,
    Filled,
    Folded,
    GivenUp,
    Offered,
    Said,
    SectorCounts,
    SessionFacts,
    Stated,
    Timeline,
    Unmatched,
    record,
    timeline,
)
from services.monitor.equity import AREA_COLUMNS, area
from shared.db.types import Conn

# Facts as JSON: each kind in a list of its own, each fact an object of its fields.
_KINDS: dict[str, type[Stated | Offered | Filled | GivenUp | Unmatched]] = {
    "stated": Stated,
    "offered": Offered,
    "filled": Filled,
    "given_up": GivenUp,
    "unmatched": Unmatched,
}
_IDS = {"event_id", "offer_id", "clinician_id", "released"}
_TIMES = {"at", "starts_at", "ends_at"}


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _typed(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _IDS:
        return uuid.UUID(value)
    if name in _TIMES:
        return datetime.fromisoformat(value)
    if name == "said":
        return Said(value)
    if name == "skills":
        return tuple(value)
    return value


def facts_json(facts: SessionFacts) -> str:
    """``facts`` as the JSON kept in ``session_facts.facts``."""
    return json.dumps(
        {
            kind: [
                {f.name: _plain(getattr(fact, f.name)) for f in fields(fact)}
                for fact in getattr(facts, kind).values()
            ]
            for kind in _KINDS
        }
    )


def facts_from(raw: dict[str, Any]) -> SessionFacts:
    """The facts kept as ``raw`` (decoded JSON); an empty object is no facts."""
    facts = SessionFacts()
    for kind, cls in _KINDS.items():
        for item in raw.get(kind, []):
            facts = record(facts, cls(**{name: _typed(name, v) for name, v in item.items()}))
    return facts


async def lock(
    conn: Conn, session_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[SessionFacts, SectorCounts | None]]:
    """The sessions' facts and kept figures, locked until the transaction ends.

    One statement makes the row of a session never seen and locks and reads the rest:
    an upsert waits for another transaction inserting the same session and then reads
    what it committed, so two transactions at one new session (the live consumer and a
    rebuild) take turns instead of each starting from nothing. Ids in order, so that
    transactions lock rows in the same order and never wait on each other in a circle.
    """
    rows = await conn.fetch(
        "INSERT INTO session_facts (session_id) SELECT unnest($1::uuid[])"
        " ON CONFLICT (session_id) DO UPDATE SET session_id = EXCLUDED.session_id"
        f" RETURNING session_id, facts, region, sector, {', '.join(COUNTED)}",
        sorted(set(session_ids)),
    )
    known: dict[uuid.UUID, tuple[SessionFacts, SectorCounts | None]] = {}
    for r in rows:
        kept = None
        if r["region"] is not None:
            kept = SectorCounts(r["region"], r["sector"], *(r[c] for c in COUNTED))
        known[r["session_id"]] = (facts_from(r["facts"]), kept)
    return known


# The timeline's columns (domain.Timeline) and its minutes to fill, kept beside the
# figures so that periods, time to fill and the at-risk list are read by index rather
# than from the facts' JSON, and the percentiles are taken of the domain's own minutes.
TIMES: tuple[str, ...] = tuple(f.name for f in fields(Timeline))


async def save(conn: Conn, folded: Folded) -> None:
    """Keep the sessions' new facts, figures, timelines and areas (their rows exist: ``lock``
    made them) and add the change in figures to the counters: one statement, one round
    trip."""
    ids = list(folded.facts)
    figures = [folded.figures[sid] for sid in ids]
    timelines = [folded.timelines.get(sid) or timeline(folded.facts[sid]) for sid in ids]
    areas = [area(folded.facts[sid]) for sid in ids]
    n, t = len(COUNTED), len(TIMES)
    per_session = ", ".join(f"${i + 5}::int[]" for i in range(n))
    times = ", ".join(f"${i + n + 5}::timestamptz[]" for i in range(t))
    first = n + t + 6  # the counters' change, after the minutes to fill
    per_sector = ", ".join(f"${i + first + 2}::int[]" for i in range(n))
    where = first + n + 2  # each session's area (equity.Area), after the counters' change
    await conn.execute(
        "WITH kept AS (UPDATE session_facts AS s SET facts = u.facts::jsonb,"
        f" region = u.region, sector = u.sector, {', '.join(f'{c} = u.{c}' for c in COUNTED)},"
        f" {', '.join(f'{c} = u.{c}' for c in TIMES)}, fill_minutes = u.fill_minutes,"
        f" {', '.join(f'{c} = u.{c}' for c in AREA_COLUMNS)}"
        f" FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], {per_session}, {times},"
        f" ${first - 1}::float8[], ${where}::int[], ${where + 1}::text[], ${where + 2}::text[])"
        f" AS u(session_id, facts, region, sector, {', '.join(COUNTED)}, {', '.join(TIMES)},"
        f" fill_minutes, {', '.join(AREA_COLUMNS)})"
        " WHERE s.session_id = u.session_id RETURNING 1)"
        f" INSERT INTO sector_counts (region, sector, {', '.join(COUNTED)})"
        f" SELECT * FROM unnest(${first}::text[], ${first + 1}::text[], {per_sector})"
        " ON CONFLICT (region, sector) DO UPDATE SET "
        + ", ".join(f"{c} = sector_counts.{c} + EXCLUDED.{c}" for c in COUNTED),
        ids,
        [facts_json(folded.facts[sid]) for sid in ids],
        [f.region if f is not None else None for f in figures],
        [f.sector if f is not None else None for f in figures],
        *([getattr(f, c) if f is not None else 0 for f in figures] for c in COUNTED),
        *([getattr(line, c) for line in timelines] for c in TIMES),
        [line.minutes_to_fill() for line in timelines],
        [c.region for c in folded.changes],
        [c.sector for c in folded.changes],
        *([getattr(c, name) for c in folded.changes] for name in COUNTED),
        *([getattr(a, c) for a in areas] for c in AREA_COLUMNS),
    )
