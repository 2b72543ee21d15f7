"""Edges of the bank's input that once answered 500: the validation types that refuse
them (shared/validation.py), and a weekly pattern's window on the spring clock change."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from services.bank.patterns import Pattern, occurrences
from shared.validation import Day, WallClock


class _Shift(BaseModel):
    start_time: WallClock
    on_date: Day


def _refused(**fields: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as refused:
        _Shift.model_validate({"start_time": "09:00", "on_date": "2027-01-04", **fields})
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in refused.value.errors()]


@pytest.mark.parametrize(
    "sent",
    # The first is what schemathesis sent the bank: compared by the offset, it came
    # after an end time the database (which keeps the clock reading) had before it.
    ["04:45:45+14:21", "09:00Z", "09:00+01:00", "09:00:00-05:00"],
)
def test_a_wall_clock_time_with_a_utc_offset_is_refused_by_name(sent: str) -> None:
    """A pattern's times are read off London's clock: an offset is refused, naming the
    field, rather than stored as if it weren't there."""
    [(field, message)] = _refused(start_time=sent)
    assert field == "start_time"
    assert "without a UTC offset" in message


@pytest.mark.parametrize("sent", ["09:00", "09:00:30", "23:59:59.5"])
def test_a_wall_clock_time_as_the_clock_reads_is_accepted(sent: str) -> None:
    assert _Shift.model_validate({"start_time": sent, "on_date": "2027-01-04"}).start_time == (
        time.fromisoformat(sent)
    )


def test_the_document_describes_a_wall_clock_time_without_an_offset() -> None:
    """JSON Schema's `format: time` demands an offset (RFC 3339 full-time): the document
    gives the accepted shape instead, so generated clients send what is accepted."""
    schema = _Shift.model_json_schema()["properties"]["start_time"]
    assert "format" not in schema
    assert schema["pattern"].startswith("^([01][0-9]|2[0-3]):[0-5][0-9]")


@pytest.mark.parametrize("sent", ["9999-12-31", "0001-01-01", "2101-01-01", "1999-12-31"])
def test_a_date_outside_the_plausible_years_is_refused_by_name(sent: str) -> None:
    """9999-12-31 as a pattern's valid_until overflowed when a day was added to it (500)."""
    [(field, message)] = _refused(on_date=sent)
    assert field == "on_date"
    assert "between the years 2000 and 2100" in message


def test_no_window_comes_out_of_the_hour_the_clocks_skip() -> None:
    """Sundays 01:30-02:00 London: on 28 March 2027 the clock jumps from 01:00 to 02:00,
    so 01:30 (read as 02:30 BST) comes after 02:00 BST. That date has no window, rather
    than one ending before it starts (which the database refused: a 500 on posting the
    pattern, and a failed pattern sweep); the Sundays around it are offered as usual."""
    pattern = Pattern(uuid.uuid4(), 6, time(1, 30), time(2), date(2027, 3, 1))
    found = occurrences(pattern, start=date(2027, 3, 20), end=date(2027, 4, 5))
    assert [o.on_date for o in found] == [date(2027, 3, 21), date(2027, 4, 4)]
    assert all(o.ends_at > o.starts_at for o in found)
    # Just after the change, in summer time: 00:30 to 01:00 UTC.
    assert found[-1].starts_at == datetime(2027, 4, 4, 0, 30, tzinfo=UTC)


def test_a_window_reaching_past_the_skipped_hour_keeps_its_clock_times() -> None:
    """Sunday 01:30-05:00 on the change: from 02:30 BST (RFC 5545's reading of a
    skipped time) to 05:00 BST."""
    pattern = Pattern(uuid.uuid4(), 6, time(1, 30), time(5), date(2027, 3, 1))
    [found] = occurrences(pattern, start=date(2027, 3, 28), end=date(2027, 3, 29))
    assert (found.starts_at, found.ends_at) == (
        datetime(2027, 3, 28, 1, 30, tzinfo=UTC),
        datetime(2027, 3, 28, 4, 0, tzinfo=UTC),
    )
