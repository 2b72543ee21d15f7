"""Equity, without I/O: a session's area from its facts in any order, deprivation
quintiles, the groups of a region, the gap, and the chart."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.monitor.domain import Said, SessionFacts, Stated, record
from services.monitor.equity import (
    Area,
    AreaRow,
    area,
    build_equity,
    equity_svg,
    quintile,
)
from services.monitor.session_store import facts_from, facts_json
from services.monitor.summary import Period, Window

T0 = datetime(2026, 11, 30, 9, tzinfo=UTC)
WINDOW = Window(Period.CUSTOM, date(2026, 11, 30), date(2026, 11, 30))


def _said(
    said: Said,
    minutes: int,
    *,
    organisation: str = "A81001",
    imd_decile: int | None = None,
    place: str | None = None,
    pcn: str | None = None,
) -> Stated:
    return Stated(
        event_id=uuid.uuid4(),
        said=said,
        at=T0 + timedelta(minutes=minutes),
        region="QOP",
        sector="general_practice",
        organisation=organisation,
        starts_at=T0 + timedelta(days=1),
        ends_at=T0 + timedelta(days=1, hours=4),
        imd_decile=imd_decile,
        place=place,
        pcn=pcn,
    )


def test_quintiles_pair_the_deciles_most_deprived_first() -> None:
    assert [quintile(d) for d in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert (quintile(None), quintile(0), quintile(11)) == (None, None, None)


def test_the_area_is_the_one_vacancies_last_said_whatever_the_order_read() -> None:
    """Posted in Oldham (decile 2), amended to Bury (decile 8), then cancelled (a
    cancellation says no area): Bury, read in every order, and kept through the JSON."""
    posted = _said(Said.POSTED, 0, imd_decile=2, place="Oldham", pcn="U11111")
    amended = _said(Said.AMENDED, 30, imd_decile=8, place="Bury", pcn="U22222")
    cancelled = _said(Said.CANCELLED, 60)
    for order in itertools.permutations((posted, amended, cancelled)):
        facts = SessionFacts()
        for fact in order:
            facts = record(facts, fact)
        assert area(facts) == Area(8, "Bury", "U22222"), order
        assert area(facts_from(json.loads(facts_json(facts)))) == area(facts)
    assert area(SessionFacts()) == Area()


def test_a_session_at_a_pcn_itself_is_that_pcns_and_blank_places_are_not_recorded() -> None:
    at_pcn = record(SessionFacts(), _said(Said.POSTED, 0, organisation="U54321", place="  "))
    assert area(at_pcn) == Area(None, None, "U54321")
    pharmacy = record(SessionFacts(), _said(Said.POSTED, 0, organisation="FVR79"))
    assert area(pharmacy) == Area()


def _row(decile: int | None, place: str | None, posted: int, filled: int, **more: int) -> AreaRow:
    return AreaRow(
        "QOP",
        decile,
        place,
        None,
        posted,
        filled,
        more.get("cancelled", 0),
        more.get("unfilled", 0),
        4.0 * filled,
    )


def test_groups_add_up_in_order_with_not_recorded_last_and_the_gap_between_the_ends() -> None:
    """Deciles 1 and 2 make quintile 1; every quintile is listed; places by name, then
    not recorded; the gap is least deprived minus most deprived, in points."""
    rows = [
        _row(1, "Wigan", 3, 1, cancelled=1),
        _row(2, "Bolton", 2, 1),
        _row(10, "Bury", 4, 3, unfilled=1),
        _row(None, None, 1, 1),
    ]
    (view,) = build_equity(rows, regions=["QOP"], window=WINDOW)
    q1 = view.quintiles[0]
    assert (q1.posted, q1.cancelled, q1.wanted, q1.filled) == (5, 1, 4, 2)
    assert q1.fill_rate == pytest.approx(0.5)
    assert [g.key for g in view.quintiles] == ["1", "2", "3", "4", "5", ""]
    assert view.quintiles[2].fill_rate is None
    assert view.gap_points == pytest.approx(25.0)
    assert [g.label for g in view.places] == ["Bolton", "Bury", "Wigan", "Not recorded"]
    assert view.places[1].unfilled == 1
    assert view.quintiles[4].hours_filled == pytest.approx(12.0)

    (empty,) = build_equity([], regions=["ZZZ"], window=WINDOW)
    assert [g.key for g in empty.quintiles] == ["1", "2", "3", "4", "5"]
    assert (empty.places, empty.pcns, empty.gap_points) == ((), (), None)


def test_the_chart_is_one_image_with_its_figures_in_words_and_escaped_names() -> None:
    rows = [_row(1, "<b>Wigan & Leigh</b>", 2, 1), _row(9, "Bury", 1, 1)]
    (view,) = build_equity(rows, regions=["QOP"], window=WINDOW)
    svg = equity_svg(view, width=390, id_prefix="equity-QOP")
    assert svg.count('role="img"') == 1
    assert 'width="390"' in svg
    assert "<b>" not in svg
    assert "&lt;b&gt;Wigan &amp; Leigh&lt;/b&gt;: 50% filled (1 of 2 wanted)" in svg
    assert "1 · most deprived: 50% filled (1 of 2 wanted)" in svg
    assert "filled 50 points more than the most deprived" in svg
    # Bars as long as the fill rates: 50% and 100% of the same track.
    assert svg.count('data-rate="0.5000"') == 2
    assert svg.count('data-rate="1.0000"') == 2
