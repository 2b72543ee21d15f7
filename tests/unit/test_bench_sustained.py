"""The sustained benchmark's arithmetic: load shape, bodies, summaries and verdicts."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from fairshare import bench_sustained as calc
from fairshare.bench_intake import DEFAULT_ORG_RATE_PER_S
from services.vacancies.intake import SessionPostedHook
from shared.catalogue import may_fill

NOW = datetime(2026, 3, 2, 21, 30, tzinfo=UTC)
BASE = calc.day_zero(NOW)


# --- load shape -----------------------------------------------------------------


@pytest.mark.parametrize("rate", [1, 24, 25, 26, 100, 200, 1000])
def test_orgs_needed_keeps_every_organisation_under_half_its_limit(rate: float) -> None:
    orgs = calc.orgs_needed(rate)
    assert rate / orgs <= DEFAULT_ORG_RATE_PER_S * calc.ORG_SHARE_OF_LIMIT
    assert orgs == 1 or rate / (orgs - 1) > DEFAULT_ORG_RATE_PER_S * calc.ORG_SHARE_OF_LIMIT


def test_orgs_needed_at_the_target_rate_is_four() -> None:
    assert calc.orgs_needed(100) == 4
    assert calc.orgs_needed(0) == 1


def test_orgs_needed_refuses_more_organisations_than_codes() -> None:
    with pytest.raises(ValueError, match="organisations"):
        calc.orgs_needed(1e6)


def test_day_zero_is_midnight_utc_of_the_day() -> None:
    assert calc.day_zero(NOW) == datetime(2026, 3, 2, tzinfo=UTC)


def test_windows_cover_the_seven_coming_days_from_eight_to_six() -> None:
    windows = calc.windows(BASE)
    assert len(windows) == 7
    assert windows[0] == (datetime(2026, 3, 3, 8, tzinfo=UTC), datetime(2026, 3, 3, 18, tzinfo=UTC))
    assert windows[-1][0] == datetime(2026, 3, 9, 8, tzinfo=UTC)
    assert all(start > NOW for start, _ in windows)


def test_every_session_fits_a_window_of_a_clinician_who_may_fill_it() -> None:
    windows = calc.windows(BASE)
    professions = {calc.profession_of(i) for i in range(len(calc.MIX))}
    for index in range(2000):
        starts, ends = calc.session_times(index, BASE)
        assert ends - starts == timedelta(hours=calc.SESSION_H)
        assert any(a <= starts and ends <= b for a, b in windows), index
        assert any(may_fill(p, calc.role_of(index)) for p in professions)


def test_sessions_spread_over_every_day_hour_and_role() -> None:
    count = len(calc.MIX) * calc.DAYS * len(calc.START_HOURS)
    seen = {(calc.role_of(i), calc.session_times(i, BASE)) for i in range(count)}
    assert len(seen) == count  # one full cycle: no (role, start) twice
    days = {calc.session_times(i, BASE)[0].date() for i in range(len(calc.MIX) * calc.DAYS)}
    assert len(days) == calc.DAYS  # consecutive sessions go to different days first


def test_delivery_is_a_valid_future_session_posted() -> None:
    body = calc.delivery("sus-1", now=NOW, base=BASE, index=4)
    hook = SessionPostedHook.model_validate_json(json.dumps(body))
    assert hook.data.external_id == "sus-1"
    assert hook.data.role == calc.role_of(4)
    assert hook.data.starts_at > NOW


# --- posts ----------------------------------------------------------------------


def test_summarise_posts_reports_ms_rate_and_errors_by_kind() -> None:
    latencies = [0.010] * 98 + [0.040, 0.200]
    posts = calc.summarise_posts(
        latencies, accepted=98, error_kinds=Counter({"500": 1, "unanswered": 1}), wall_s=1.0
    )
    assert posts == calc.Posts(
        posts=100,
        accepted=98,
        errors=2,
        error_kinds={"500": 1, "unanswered": 1},
        rate_achieved_per_s=98.0,
        p50_ms=10.0,
        p99_ms=41.6,
        max_ms=200.0,
    )


def test_summarise_posts_of_nothing_is_null_not_zero() -> None:
    posts = calc.summarise_posts([], accepted=0, error_kinds={}, wall_s=0.0)
    assert posts.posts == 0
    assert posts.rate_achieved_per_s is None
    assert posts.p50_ms is None
    assert posts.p99_ms is None
    assert posts.max_ms is None


def test_percentile_ms_converts_and_keeps_none() -> None:
    assert calc.percentile_ms([0.5], 99) == 500.0
    assert calc.percentile_ms([], 99) is None


def test_recent_rate_counts_answers_in_the_window_only() -> None:
    history = [(0.0, 0), (1.0, 50), (2.0, 150), (3.0, 250)]
    assert calc.recent_rate(history, 2.0) == pytest.approx(100.0)
    assert calc.recent_rate(history, 10.0) == pytest.approx(250 / 3)
    assert calc.recent_rate(history[:1], 5.0) is None
    assert calc.recent_rate([], 5.0) is None


# --- health ---------------------------------------------------------------------


def _health(lag_s: float, total: int, outbox: int, status: str = "ok") -> dict[str, object]:
    return {
        "service": "matching",
        "outbox_pending": outbox,
        "consumer": {"total_lag": total, "lag_s": lag_s, "lag": {}},
        "status": status,
    }


def test_parse_health_reads_lag_backlog_and_outbox() -> None:
    sample = calc.parse_health(200, _health(0.4, 3, 7))
    assert sample == calc.Sample(200, lag_s=0.4, total_lag=3, outbox_pending=7)
    assert sample.ready
    assert not sample.quiet


def test_parse_health_of_an_unready_answer_keeps_its_numbers() -> None:
    sample = calc.parse_health(503, _health(12.5, 900, 0, "unready"))
    assert not sample.ready
    assert sample.lag_s == 12.5


def test_parse_health_without_answer_or_fields_is_none_not_zero() -> None:
    assert calc.parse_health(None, None) == calc.Sample(None)
    bare = calc.parse_health(200, {"service": "x", "status": "ok"})
    assert (bare.lag_s, bare.total_lag, bare.outbox_pending) == (None, None, None)
    odd = calc.parse_health(200, {"consumer": {"lag_s": "soon", "total_lag": True}})
    assert (odd.lag_s, odd.total_lag) == (None, None)


def test_all_quiet_needs_every_service_ready_with_nothing_waiting() -> None:
    quiet = calc.Sample(200, 0.0, 0, 0)
    assert calc.all_quiet({"a": quiet, "b": quiet})
    assert not calc.all_quiet({"a": quiet, "b": calc.Sample(200, 0.0, 1, 0)})
    assert not calc.all_quiet({"a": quiet, "b": calc.Sample(200, 0.0, 0, 2)})
    assert not calc.all_quiet({"a": quiet, "b": calc.Sample(503, 0.0, 0, 0)})
    assert not calc.all_quiet({"a": quiet, "b": calc.Sample(200)})
    assert not calc.all_quiet({})


def test_summarise_service_takes_worst_p99_and_time_unready() -> None:
    samples = [calc.Sample(200, 0.1 * i, i, 10 - i) for i in range(10)]
    samples += [calc.Sample(503, 3.0, 40, 0), calc.Sample(None)]
    service = calc.summarise_service(samples, every_s=1.0)
    assert service.samples == 12
    assert service.max_lag_s == 3.0
    assert service.p99_lag_s == pytest.approx(2.79, abs=1e-3)
    assert service.max_total_lag == 40
    assert service.max_outbox_pending == 10
    assert service.unready_s == 2.0
    assert service.unanswered == 1


def test_summarise_service_of_no_samples_is_null() -> None:
    service = calc.summarise_service([])
    assert service == calc.Service(0, None, None, None, None, None, 0)


def test_worst_lag_names_the_service() -> None:
    samples = {
        "bank": [calc.Sample(200, 0.2), calc.Sample(200, 0.1)],
        "matching": [calc.Sample(200, 1.5), calc.Sample(None)],
    }
    assert calc.worst_lag(samples) == ("matching", 1.5)
    assert calc.worst_lag({"bank": [calc.Sample(None)]}) is None


# --- verdicts -------------------------------------------------------------------

TARGETS = calc.Targets()


def _posts(p99_ms: float | None = 40.0, errors: int = 0, rate: float | None = 99.8) -> calc.Posts:
    return calc.Posts(
        posts=0 if p99_ms is None else 60_000,
        accepted=60_000 - errors,
        errors=errors,
        error_kinds={"500": errors} if errors else {},
        rate_achieved_per_s=rate,
        p50_ms=None if p99_ms is None else 10.0,
        p99_ms=p99_ms,
        max_ms=p99_ms,
    )


def _service(max_lag: float | None = 0.5, unready_s: float | None = 0.0) -> calc.Service:
    return calc.Service(600, max_lag, max_lag, 10, 5, unready_s, 0)


SERVICES = {name: _service() for name in ("vacancies", "bank", "matching", "monitor")}


def _verdict(
    posts: calc.Posts | None = None,
    services: dict[str, calc.Service] | None = None,
    rate: float = 100,
    seconds: float = 600,
    open_sessions: int | None = 5000,
) -> dict[str, bool | None]:
    return calc.verdict(
        posts or _posts(),
        SERVICES if services is None else services,
        rate_per_s=rate,
        seconds=seconds,
        open_sessions=open_sessions,
        targets=TARGETS,
    )


def test_verdict_meets_everything_at_load_within_targets() -> None:
    assert _verdict() == {"intake_p99_ms": True, "lag_s": True, "at_load": True, "all": True}


def test_verdict_fails_intake_when_p99_is_over_or_at_target() -> None:
    assert _verdict(_posts(p99_ms=100.0))["intake_p99_ms"] is False
    assert _verdict(_posts(p99_ms=250.0))["all"] is False


def test_verdict_fails_intake_on_any_error() -> None:
    assert _verdict(_posts(errors=1))["intake_p99_ms"] is False


def test_verdict_fails_lag_when_one_service_is_over_target() -> None:
    services = {**SERVICES, "matching": _service(max_lag=2.0)}
    verdict = _verdict(services=services)
    assert verdict["lag_s"] is False
    assert verdict["all"] is False


def test_verdict_fails_lag_when_a_service_was_unready_or_did_not_report() -> None:
    assert _verdict(services={**SERVICES, "bank": _service(unready_s=1.0)})["lag_s"] is False
    assert _verdict(services={**SERVICES, "bank": _service(max_lag=None)})["lag_s"] is False


def test_verdict_of_nothing_measured_is_null_not_a_pass() -> None:
    nothing = {name: calc.summarise_service([]) for name in SERVICES}
    verdict = _verdict(_posts(p99_ms=None, rate=None), nothing, open_sessions=None)
    assert verdict == {"intake_p99_ms": None, "lag_s": None, "at_load": False, "all": False}


@pytest.mark.parametrize(
    ("rate", "seconds", "achieved", "open_sessions"),
    [
        (50, 600, 49.9, 5000),  # below the target rate
        (100, 60, 99.9, 5000),  # too short
        (100, 600, 90.0, 5000),  # rate not held
        (100, 600, 99.9, 500),  # too few open sessions
        (100, 600, 99.9, None),  # open sessions not counted
    ],
)
def test_verdict_counts_only_at_the_issues_load(
    rate: float, seconds: float, achieved: float, open_sessions: int | None
) -> None:
    verdict = _verdict(
        _posts(rate=achieved), rate=rate, seconds=seconds, open_sessions=open_sessions
    )
    assert verdict["intake_p99_ms"] is True
    assert verdict["at_load"] is False
    assert verdict["all"] is False


def test_open_count_is_open_and_offered() -> None:
    assert calc.open_count({"open": 3, "offered": 2, "filled": 9, "cancelled": 1}) == 5
    assert calc.open_count({}) == 0
    assert calc.open_count(None) is None


def test_report_has_the_promised_shape() -> None:
    services = {name: calc.summarise_service([calc.Sample(200, 0.5, 1, 0)]) for name in SERVICES}
    out = calc.report(
        posts=_posts(),
        rate_per_s=100,
        seconds=600,
        posting_s=600.4,
        services=services,
        sessions_by_status={"open": 4000, "offered": 300, "filled": 1000},
        offers_made=1500,
        sessions_offered=1300,
        drain_s=1.234,
        interrupted=False,
        targets=TARGETS,
        setup={"region": "B01"},
    )
    json.dumps(out)  # it must print as JSON
    for key in ("posts", "errors", "error_kinds", "rate_achieved_per_s", "p50_ms", "p99_ms"):
        assert key in out
    assert out["open_sessions"] == 4300
    assert out["offers_made"] == 1500
    assert set(out["services"]) == set(SERVICES)
    assert set(out["services"]["bank"]) >= {
        "max_lag_s",
        "p99_lag_s",
        "max_total_lag",
        "max_outbox_pending",
        "unready_s",
    }
    assert out["targets"]["intake_p99_ms"] == 100
    assert out["targets"]["lag_s"] == 2
    assert out["met"]["all"] is True
    assert out["drain_s"] == 1.23
