"""The arithmetic of ``fairshare bench intake``: schedules, bodies, percentiles, verdicts.

Pure: no clock, network or database here, so every number the benchmark prints can be
checked by a unit test. ``fairshare.bench`` does the sending and timing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

BENCH_REGION_PREFIX = "B"
"""Benchmark regions are ``B`` and two characters: real ICB codes start with ``Q``."""

# What the issue asks of a 2-core machine running the whole system beside the benchmark.
TARGET_BATCH_SESSIONS_PER_S = 1000.0
TARGET_SINGLE_RATE_PER_S = 200.0
TARGET_SINGLE_P99_MS = 50.0

# The vacancies service's default per-organisation limit (FAIRSHARE_VACANCIES_RATE_PER_S).
DEFAULT_ORG_RATE_PER_S = 50.0

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks.

    None for no values: a benchmark that measured nothing must not print a zero.
    """
    if not 0 <= q <= 100:
        msg = f"percentile {q} is not between 0 and 100"
        raise ValueError(msg)
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """One phase's result, as printed."""

    sessions_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    requests: int


def summarise(
    latencies_s: Sequence[float], *, errors: int, requests: int, sessions: int, wall_s: float
) -> Summary:
    """Sessions accepted per second of wall time, and request latency percentiles in ms.

    ``latencies_s`` holds every request's latency, failed ones included: a slow refusal
    is as slow for the caller as a slow acceptance.
    """
    p50, p99 = percentile(latencies_s, 50), percentile(latencies_s, 99)
    return Summary(
        sessions_per_s=round(sessions / wall_s, 1) if wall_s > 0 else 0.0,
        p50_ms=None if p50 is None else round(p50 * 1000, 2),
        p99_ms=None if p99 is None else round(p99 * 1000, 2),
        errors=errors,
        requests=requests,
    )


def schedule(rate_per_s: float, seconds: float) -> list[float]:
    """Offsets (s from the start) of an open-loop schedule: ``rate_per_s`` evenly spaced.

    Open loop: each request is due at its offset whatever became of the ones before, so
    a slow server shows up as latency rather than as a politely slower benchmark.
    """
    if rate_per_s <= 0 or seconds <= 0:
        return []
    count = round(rate_per_s * seconds)
    return [i / rate_per_s for i in range(count)]


def assign(count: int, organisations: Sequence[str]) -> list[str]:
    """The organisation of each of ``count`` requests, round-robin."""
    if not organisations:
        msg = "at least one organisation is needed"
        raise ValueError(msg)
    return [organisations[i % len(organisations)] for i in range(count)]


def _base36(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 36)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def bench_ods_codes(run: int, count: int) -> list[str]:
    """``count`` ODS-shaped codes unique to the run: ``Z``, 5 run characters, 2 of index.

    Eight characters, the most an ODS code has; the run number picks one of 36⁵ prefixes.
    """
    if not 1 <= count <= 36**2:
        msg = f"between 1 and {36**2} organisations, not {count}"
        raise ValueError(msg)
    prefix = "Z" + _base36(run, 5)
    return [prefix + _base36(i, 2) for i in range(count)]


def bench_region(run: int) -> str:
    """A region of the run's own, so no run inherits another's open sessions.

    Matching plans a region as a whole on every posted session, so the open sessions
    earlier runs left in a shared region would slow every later run down.
    """
    return BENCH_REGION_PREFIX + _base36(run, 2)


def session_item(external_id: str, *, now: datetime, index: int) -> dict[str, Any]:
    """One valid session: a 4-hour GP session a week or more ahead, starts spread by minute."""
    starts = (now + timedelta(days=7, minutes=index % 20_000)).replace(microsecond=0)
    return {
        "external_id": external_id,
        "role": "gp",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=4)).isoformat(),
        "rate_pence_per_hour": 9000,
        "notes": "fairshare bench",
    }


def single_delivery(external_id: str, *, now: datetime, index: int) -> dict[str, Any]:
    """A ``session.posted`` delivery of one session."""
    return {
        "type": "session.posted",
        "timestamp": now.isoformat(),
        "data": session_item(external_id, now=now, index=index),
    }


def batch_delivery(external_ids: Sequence[str], *, now: datetime, first: int) -> dict[str, Any]:
    """A ``sessions.posted`` delivery of one session per id."""
    return {
        "type": "sessions.posted",
        "timestamp": now.isoformat(),
        "data": {
            "sessions": [
                session_item(eid, now=now, index=first + i) for i, eid in enumerate(external_ids)
            ]
        },
    }


@dataclass(frozen=True)
class Targets:
    """The speeds asked for."""

    batch_sessions_per_s: float = TARGET_BATCH_SESSIONS_PER_S
    single_rate_per_s: float = TARGET_SINGLE_RATE_PER_S
    single_p99_ms: float = TARGET_SINGLE_P99_MS


def verdict(
    single: Summary, single_rate: float, batch: Summary, targets: Targets
) -> dict[str, bool]:
    """Whether each target was met by this run, with no errors.

    The single-post target counts only at the target rate or above, sustained (the
    schedule kept to within 5 %): a fast p99 at 20 posts/s says nothing about 200.
    """
    at_rate = (
        single_rate >= targets.single_rate_per_s
        and single.sessions_per_s >= 0.95 * targets.single_rate_per_s
    )
    single_ok = (
        at_rate
        and single.errors == 0
        and single.p99_ms is not None
        and single.p99_ms < targets.single_p99_ms
    )
    batch_ok = (
        batch.errors == 0
        and batch.requests > 0
        and batch.sessions_per_s >= targets.batch_sessions_per_s
    )
    return {"single": single_ok, "batch": batch_ok}


def report(
    *,
    single: Summary,
    single_rate: float,
    batch: Summary,
    batch_size: int,
    rejected_sessions: int,
    targets: Targets,
    setup: dict[str, Any],
) -> dict[str, Any]:
    """The one JSON object ``fairshare bench intake --json`` prints."""
    return {
        "single": {**asdict(single), "target_rate": single_rate},
        "batch": {
            **asdict(batch),
            "batch_size": batch_size,
            "rejected_sessions": rejected_sessions,
        },
        "targets": asdict(targets),
        "met": verdict(single, single_rate, batch, targets),
        "setup": setup,
    }


def rate_limit_note(single_rate: float, orgs: int, org_rate: float = DEFAULT_ORG_RATE_PER_S) -> str:
    """Why the single posts are spread over several organisations, and whether enough."""
    per_org = single_rate / orgs
    note = (
        f"single posts spread round-robin over {orgs} organisations ({per_org:g}/s each):"
        f" the service limits each organisation to {org_rate:g}/s (burst 100) by default,"
        " so one organisation at this rate would measure 429s, not intake"
    )
    if per_org > org_rate:
        note += f"; WARNING: {per_org:g}/s per organisation is over the limit, use more --orgs"
    return note
