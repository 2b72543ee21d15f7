"""The arithmetic of ``fairshare bench sustained``: load shape, bodies, summaries, verdicts.

Pure: no clock, network or database here, so every number the benchmark prints can be
checked by a unit test. ``fairshare.bench_load`` does the sending, sampling and timing.

The target (issue): at 100 posts a second sustained for 10 minutes, with thousands of
open sessions, every service's lag stays under 2 s and intake p99 stays under 100 ms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from fairshare.bench_intake import DEFAULT_ORG_RATE_PER_S, percentile
from shared.catalogue import Profession, Role

TARGET_INTAKE_P99_MS = 100.0
TARGET_LAG_S = 2.0
TARGET_RATE_PER_S = 100.0
TARGET_SECONDS = 600.0
TARGET_OPEN_SESSIONS = 1000
""""Thousands of open sessions": the least the run must leave open to count."""
RATE_KEPT = 0.95
"""Share of the asked rate the run must achieve for it to count as held."""

ORG_SHARE_OF_LIMIT = 0.5
"""Each organisation posts at most half its rate limit: the limit is never what we measure."""
MAX_ORGS = 36**2
DAYS = 7
DAY_STARTS_H, DAY_ENDS_H = 8, 18
"""Clinicians offer 08:00-18:00 UTC on each of the coming ``DAYS`` days."""
SESSION_H = 4
START_HOURS = tuple(range(DAY_STARTS_H, DAY_ENDS_H - SESSION_H + 1))
"""Sessions start on the hour from 08:00 to 14:00 UTC, so every one fits a window."""

MIX: tuple[tuple[Role, Profession], ...] = (
    (Role.GP, Profession.GP),
    (Role.PRACTICE_NURSE, Profession.PRACTICE_NURSE),
    (Role.CLINICAL_PHARMACIST, Profession.PHARMACIST),
)
"""Roles posted, and the professions of the clinicians registered to fill them, in turn."""


def orgs_needed(
    rate_per_s: float, org_rate: float = DEFAULT_ORG_RATE_PER_S, share: float = ORG_SHARE_OF_LIMIT
) -> int:
    """Organisations to spread ``rate_per_s`` over so each posts at most ``share`` of its limit."""
    if rate_per_s <= 0:
        return 1
    needed = max(1, math.ceil(rate_per_s / (org_rate * share)))
    if needed > MAX_ORGS:
        msg = f"{rate_per_s:g}/s needs {needed} organisations; at most {MAX_ORGS} can be made"
        raise ValueError(msg)
    return needed


def profession_of(clinician: int) -> Profession:
    """The profession of the ``clinician``-th bench clinician."""
    return MIX[clinician % len(MIX)][1]


def role_of(index: int) -> Role:
    """The role the ``index``-th posted session needs."""
    return MIX[index % len(MIX)][0]


def day_zero(now: datetime) -> datetime:
    """Midnight (UTC) starting the day of ``now``: windows and sessions count days from it."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def windows(base: datetime, days: int = DAYS) -> list[tuple[datetime, datetime]]:
    """A clinician's windows: 08:00-18:00 on each of the ``days`` days after ``base``."""
    return [
        (base + timedelta(days=d, hours=DAY_STARTS_H), base + timedelta(days=d, hours=DAY_ENDS_H))
        for d in range(1, days + 1)
    ]


def session_times(index: int, base: datetime, days: int = DAYS) -> tuple[datetime, datetime]:
    """Start and end of the ``index``-th session: spread over the days and hours in turn.

    Consecutive sessions fall on different days, so the week fills evenly rather than
    one day at a time; every session lies inside the clinicians' window of its day.
    """
    slot = index // len(MIX)  # every role gets every slot
    day = 1 + slot % days
    hour = START_HOURS[(slot // days) % len(START_HOURS)]
    starts = base + timedelta(days=day, hours=hour)
    return starts, starts + timedelta(hours=SESSION_H)


def delivery(external_id: str, *, now: datetime, base: datetime, index: int) -> dict[str, Any]:
    """A ``session.posted`` delivery of the ``index``-th session."""
    starts, ends = session_times(index, base)
    return {
        "type": "session.posted",
        "timestamp": now.isoformat(),
        "data": {
            "external_id": external_id,
            "role": role_of(index).value,
            "starts_at": starts.isoformat(),
            "ends_at": ends.isoformat(),
            "rate_pence_per_hour": 9000,
            "notes": "fairshare bench sustained",
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def percentile_ms(values_s: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values_s`` (seconds) in ms; None for no values."""
    return _ms(percentile(values_s, q))


@dataclass(frozen=True)
class Posts:
    """What the posting measured."""

    posts: int
    accepted: int
    errors: int
    error_kinds: dict[str, int]
    rate_achieved_per_s: float | None
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def summarise_posts(
    latencies_s: Sequence[float], *, accepted: int, error_kinds: Mapping[str, int], wall_s: float
) -> Posts:
    """Accepted posts per second of wall time and latency in ms, failed posts included.

    ``latencies_s`` holds one entry per post sent (accepted, refused or unanswered):
    a slow refusal is as slow for the rota system as a slow acceptance.
    """
    posts = len(latencies_s)
    return Posts(
        posts=posts,
        accepted=accepted,
        errors=sum(error_kinds.values()),
        error_kinds=dict(sorted(error_kinds.items())),
        rate_achieved_per_s=round(accepted / wall_s, 2) if posts and wall_s > 0 else None,
        p50_ms=_ms(percentile(latencies_s, 50)),
        p99_ms=_ms(percentile(latencies_s, 99)),
        max_ms=_ms(max(latencies_s)) if latencies_s else None,
    )


def recent_rate(history: Sequence[tuple[float, int]], window_s: float) -> float | None:
    """Answers a second over the last ``window_s``, from (time, answers so far) readings."""
    if len(history) < 2:
        return None
    last_t, last_n = history[-1]
    first_t, first_n = history[0]
    for t, n in history:
        if t >= last_t - window_s:
            first_t, first_n = t, n
            break
    if last_t <= first_t:
        return None
    return (last_n - first_n) / (last_t - first_t)


@dataclass(frozen=True)
class Sample:
    """One reading of one service's ``GET /health``; None where it said nothing."""

    status: int | None  # None: no answer (refused, timed out, not JSON)
    lag_s: float | None = None
    total_lag: int | None = None
    outbox_pending: int | None = None

    @property
    def ready(self) -> bool:
        return self.status == 200

    @property
    def quiet(self) -> bool:
        """Ready, with nothing waiting to be consumed or published."""
        return self.ready and self.total_lag == 0 and self.outbox_pending == 0


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_health(status: int | None, body: object) -> Sample:
    """A sample from a health answer (200 ready, 503 unready; both carry the report)."""
    if status is None or not isinstance(body, dict):
        return Sample(status)
    consumer = body.get("consumer")
    consumer = consumer if isinstance(consumer, dict) else {}
    lag_s = _number(consumer.get("lag_s"))
    total_lag = _number(consumer.get("total_lag"))
    outbox = _number(body.get("outbox_pending"))
    return Sample(
        status,
        lag_s=lag_s,
        total_lag=None if total_lag is None else int(total_lag),
        outbox_pending=None if outbox is None else int(outbox),
    )


def all_quiet(latest: Mapping[str, Sample]) -> bool:
    """Whether every service's latest sample says nothing is waiting anywhere."""
    return bool(latest) and all(s.quiet for s in latest.values())


@dataclass(frozen=True)
class Service:
    """What one service's samples showed over the run."""

    samples: int
    max_lag_s: float | None
    p99_lag_s: float | None
    max_total_lag: int | None
    max_outbox_pending: int | None
    unready_s: float | None
    unanswered: int


def summarise_service(samples: Sequence[Sample], every_s: float = 1.0) -> Service:
    """Worst and p99 lag, worst backlogs and time unready (samples not 200 × the interval)."""
    lags = [s.lag_s for s in samples if s.lag_s is not None]
    totals = [s.total_lag for s in samples if s.total_lag is not None]
    outbox = [s.outbox_pending for s in samples if s.outbox_pending is not None]
    p99 = percentile(lags, 99)
    return Service(
        samples=len(samples),
        max_lag_s=round(max(lags), 3) if lags else None,
        p99_lag_s=None if p99 is None else round(p99, 3),
        max_total_lag=max(totals) if totals else None,
        max_outbox_pending=max(outbox) if outbox else None,
        unready_s=round(sum(every_s for s in samples if not s.ready), 3) if samples else None,
        unanswered=sum(1 for s in samples if s.status is None),
    )


def worst_lag(samples: Mapping[str, Sequence[Sample]]) -> tuple[str, float] | None:
    """The service that fell furthest behind so far, and by how many seconds."""
    worst: tuple[str, float] | None = None
    for name, series in samples.items():
        for s in series:
            if s.lag_s is not None and (worst is None or s.lag_s > worst[1]):
                worst = (name, s.lag_s)
    return worst


@dataclass(frozen=True)
class Targets:
    """What the issue asks, and the load at which it asks it."""

    intake_p99_ms: float = TARGET_INTAKE_P99_MS
    lag_s: float = TARGET_LAG_S
    rate_per_s: float = TARGET_RATE_PER_S
    seconds: float = TARGET_SECONDS
    open_sessions: int = TARGET_OPEN_SESSIONS


def verdict(
    posts: Posts,
    services: Mapping[str, Service],
    *,
    rate_per_s: float,
    seconds: float,
    open_sessions: int | None,
    targets: Targets,
) -> dict[str, bool | None]:
    """Whether each target was met; None for one that measured nothing.

    - ``intake_p99_ms``: p99 under the target and no post failed.
    - ``lag_s``: every service answered every sample ready and reported its lag, all
      under the target. None when no service reported any lag.
    - ``at_load``: the run was the issue's load: asked for at least the target rate
      and duration, kept 95 % of the rate, and left enough sessions open.
    - ``all``: the three together, the issue's target.
    """
    intake: bool | None = None
    if posts.p99_ms is not None:
        intake = posts.errors == 0 and posts.p99_ms < targets.intake_p99_ms
    lag: bool | None = None
    if any(s.max_lag_s is not None for s in services.values()):
        lag = all(
            s.max_lag_s is not None and s.max_lag_s < targets.lag_s and s.unready_s == 0
            for s in services.values()
        )
    at_load = (
        rate_per_s >= targets.rate_per_s
        and seconds >= targets.seconds
        and posts.rate_achieved_per_s is not None
        and posts.rate_achieved_per_s >= RATE_KEPT * targets.rate_per_s
        and open_sessions is not None
        and open_sessions >= targets.open_sessions
    )
    return {
        "intake_p99_ms": intake,
        "lag_s": lag,
        "at_load": at_load,
        "all": intake is True and lag is True and at_load,
    }


def open_count(by_status: Mapping[str, int] | None) -> int | None:
    """Sessions still wanting a clinician: open, or offered and not yet filled."""
    if by_status is None:
        return None
    return by_status.get("open", 0) + by_status.get("offered", 0)


def report(
    *,
    posts: Posts,
    rate_per_s: float,
    seconds: float,
    posting_s: float | None,
    services: Mapping[str, Service],
    sessions_by_status: Mapping[str, int] | None,
    offers_made: int | None,
    sessions_offered: int | None,
    drain_s: float | None,
    interrupted: bool,
    targets: Targets,
    setup: dict[str, Any],
) -> dict[str, Any]:
    """The one JSON object ``fairshare bench sustained --json`` prints."""
    open_sessions = open_count(sessions_by_status)
    return {
        **asdict(posts),
        "rate_per_s": rate_per_s,
        "seconds": seconds,
        "posting_s": None if posting_s is None else round(posting_s, 2),
        "services": {name: asdict(s) for name, s in services.items()},
        "open_sessions": open_sessions,
        "sessions_by_status": None if sessions_by_status is None else dict(sessions_by_status),
        "offers_made": offers_made,
        "sessions_offered": sessions_offered,
        "drain_s": None if drain_s is None else round(drain_s, 2),
        "interrupted": interrupted,
        "targets": asdict(targets),
        "met": verdict(
            posts,
            services,
            rate_per_s=rate_per_s,
            seconds=seconds,
            open_sessions=open_sessions,
            targets=targets,
        ),
        "setup": setup,
    }
