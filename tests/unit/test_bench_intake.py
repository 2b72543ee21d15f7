"""The benchmark's arithmetic: percentiles, summaries, schedules, bodies and verdicts."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from fairshare import bench_intake as calc
from services.vacancies.intake import SessionPostedHook, SessionsPostedHook
from shared.catalogue import ODS_PATTERN, REGION_PATTERN

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_percentile_of_nothing_is_none_not_zero() -> None:
    assert calc.percentile([], 50) is None


def test_percentile_of_one_value_is_that_value() -> None:
    assert calc.percentile([0.25], 0) == 0.25
    assert calc.percentile([0.25], 99) == 0.25


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert calc.percentile(values, 0) == 1.0
    assert calc.percentile(values, 100) == 4.0
    assert calc.percentile(values, 50) == pytest.approx(2.5)
    # rank 0.99 * 3 = 2.97: 3 + 0.97 * (4 - 3)
    assert calc.percentile(values, 99) == pytest.approx(3.97)


def test_p99_of_a_hundred_values_sits_near_the_top() -> None:
    values = [float(i) for i in range(1, 101)]
    assert calc.percentile(values, 99) == pytest.approx(99.01)
    assert calc.percentile(values, 50) == pytest.approx(50.5)


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_refuses_a_q_outside_0_to_100(q: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        calc.percentile([1.0], q)


def test_summarise_rates_accepted_sessions_over_wall_time_and_reports_ms() -> None:
    latencies = [0.010] * 98 + [0.040, 0.200]
    summary = calc.summarise(latencies, errors=2, requests=100, sessions=98, wall_s=0.5)
    assert summary == calc.Summary(
        sessions_per_s=196.0, p50_ms=10.0, p99_ms=41.6, errors=2, requests=100
    )


def test_summarise_of_an_empty_phase_has_no_latencies_and_no_rate() -> None:
    summary = calc.summarise([], errors=0, requests=0, sessions=0, wall_s=0.0)
    assert summary.sessions_per_s == 0.0
    assert summary.p50_ms is None
    assert summary.p99_ms is None


def test_schedule_is_evenly_spaced_at_the_rate() -> None:
    offsets = calc.schedule(200, 10)
    assert len(offsets) == 2000
    assert offsets[0] == 0.0
    assert offsets[1] == pytest.approx(0.005)
    assert offsets[-1] == pytest.approx(9.995)


@pytest.mark.parametrize(("rate", "seconds"), [(0, 10), (200, 0)])
def test_schedule_of_no_rate_or_no_time_is_empty(rate: float, seconds: float) -> None:
    assert calc.schedule(rate, seconds) == []


def test_assign_goes_round_robin() -> None:
    assert calc.assign(5, ["A", "B"]) == ["A", "B", "A", "B", "A"]
    with pytest.raises(ValueError, match="organisation"):
        calc.assign(1, [])


def test_bench_ods_codes_are_valid_unique_and_of_the_run() -> None:
    codes = calc.bench_ods_codes(123_456, 40)
    assert len(set(codes)) == 40
    assert all(re.match(ODS_PATTERN, code) and len(code) == 8 for code in codes)
    assert len({code[:6] for code in codes}) == 1
    assert calc.bench_ods_codes(123_457, 1)[0][:6] != codes[0][:6]


@pytest.mark.parametrize("count", [0, 36**2 + 1])
def test_bench_ods_codes_refuse_impossible_counts(count: int) -> None:
    with pytest.raises(ValueError, match="organisations"):
        calc.bench_ods_codes(1, count)


def test_bench_region_is_a_valid_b_region() -> None:
    for run in (0, 35, 36**5 - 1):
        region = calc.bench_region(run)
        assert re.match(REGION_PATTERN, region)
        assert region.startswith("B")


def test_single_delivery_is_a_valid_future_session_posted() -> None:
    body = calc.single_delivery("bench-1", now=NOW, index=7)
    hook = SessionPostedHook.model_validate_json(json.dumps(body))
    assert hook.data.external_id == "bench-1"
    assert hook.data.starts_at > NOW + timedelta(days=7)
    assert hook.data.ends_at - hook.data.starts_at == timedelta(hours=4)


def test_batch_delivery_is_a_valid_sessions_posted_of_distinct_ids() -> None:
    ids = [f"bench-b0-{i}" for i in range(500)]
    body = calc.batch_delivery(ids, now=NOW, first=0)
    hook = SessionsPostedHook.model_validate_json(json.dumps(body))
    assert [s.external_id for s in hook.data.sessions] == ids
    assert all(s.starts_at > NOW for s in hook.data.sessions)


def _summary(rate: float = 199.0, p99: float | None = 30.0, errors: int = 0) -> calc.Summary:
    return calc.Summary(sessions_per_s=rate, p50_ms=5.0, p99_ms=p99, errors=errors, requests=2000)


def test_verdict_meets_both_targets_only_at_the_target_rate_without_errors() -> None:
    targets = calc.Targets()
    batch = _summary(rate=1200.0)
    assert calc.verdict(_summary(), 200, batch, targets) == {"single": True, "batch": True}
    # Fast, but at a tenth of the rate: says nothing about the target.
    assert not calc.verdict(_summary(rate=20.0), 20, batch, targets)["single"]
    # Scheduled at 200/s but only 150/s got through.
    assert not calc.verdict(_summary(rate=150.0), 200, batch, targets)["single"]
    assert not calc.verdict(_summary(p99=50.0), 200, batch, targets)["single"]
    assert not calc.verdict(_summary(errors=1), 200, batch, targets)["single"]
    assert not calc.verdict(_summary(p99=None), 200, batch, targets)["single"]


def test_verdict_on_batches_needs_the_rate_and_no_errors() -> None:
    targets = calc.Targets()
    single = _summary()
    assert not calc.verdict(single, 200, _summary(rate=999.9), targets)["batch"]
    assert not calc.verdict(single, 200, _summary(rate=5000.0, errors=1), targets)["batch"]
    empty = calc.Summary(sessions_per_s=0.0, p50_ms=None, p99_ms=None, errors=0, requests=0)
    assert not calc.verdict(single, 200, empty, targets)["batch"]


def test_report_has_the_promised_shape() -> None:
    out = calc.report(
        single=_summary(),
        single_rate=200,
        batch=_summary(rate=1100.0),
        batch_size=500,
        rejected_sessions=0,
        targets=calc.Targets(),
        setup={"orgs": 8},
    )
    assert set(out) == {"single", "batch", "targets", "met", "setup"}
    basics = {"sessions_per_s", "p50_ms", "p99_ms", "errors", "requests"}
    assert basics | {"target_rate"} <= set(out["single"])
    assert basics | {"batch_size", "rejected_sessions"} <= set(out["batch"])
    assert out["targets"] == {
        "batch_sessions_per_s": 1000.0,
        "single_rate_per_s": 200.0,
        "single_p99_ms": 50.0,
    }
    assert out["met"] == {"single": True, "batch": True}
    json.dumps(out)  # printable as it is


def test_rate_limit_note_explains_the_spread_and_warns_when_too_thin() -> None:
    assert "25/s each" in calc.rate_limit_note(200, 8)
    assert "WARNING" not in calc.rate_limit_note(200, 8)
    assert "WARNING" in calc.rate_limit_note(200, 2)
