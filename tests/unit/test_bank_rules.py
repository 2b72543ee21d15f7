"""The bank's pure rules: register numbers, weekly patterns, cancellations, transfers."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.bank.domain import (
    Clinician,
    Offer,
    OfferRefused,
    OfferStatus,
    check_cancellation,
    distance_km,
    is_late,
    transferred,
)
from services.bank.patterns import Pattern, occurrences
from services.bank.registers import FORMATS, Register, check_registration
from shared.catalogue import Profession, Sector

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("profession", "register", "number"),
    [
        (Profession.GP, Register.GMC, "1234567"),
        (Profession.PRACTICE_NURSE, Register.NMC, "01A2345N"),
        (Profession.PHARMACIST, Register.GPHC, "2012345"),
        (Profession.PHARMACY_TECHNICIAN, Register.GPHC, "5012345"),
        (Profession.DENTIST, Register.GDC, "81234"),
        (Profession.OPTOMETRIST, Register.GOC, "01-12345"),
        (Profession.DISPENSING_OPTICIAN, Register.GOC, "D-12345"),
        (Profession.PARAMEDIC, Register.HCPC, "PA123456"),
        (Profession.PHYSIOTHERAPIST, Register.HCPC, "ph12345"),
        (Profession.PODIATRIST, Register.HCPC, "CH1234"),
    ],
)
def test_well_formed_numbers_pass(profession: Profession, register: Register, number: str) -> None:
    """Real-shaped numbers for each register are accepted (case-insensitive letters)."""
    assert check_registration(profession, register, number) is None


@pytest.mark.parametrize(
    ("profession", "register", "number", "words"),
    [
        (Profession.PHARMACIST, Register.GPHC, "1012345", "7 digits starting with 2"),
        (Profession.GP, Register.GMC, "123456", "7 digits"),
        (Profession.PRACTICE_NURSE, Register.NMC, "1A2345N", "2 digits, a letter"),
        (Profession.PARAMEDIC, Register.HCPC, "PH123456", "PA and up to 6 digits"),
        (Profession.PARAMEDIC, Register.GMC, "1234567", "registered with the HCPC"),
    ],
)
def test_malformed_numbers_say_what_is_expected(
    profession: Profession, register: Register, number: str, words: str
) -> None:
    """A wrong number names the format it should have, with an example."""
    problem = check_registration(profession, register, number)
    assert problem is not None
    assert words in problem


def test_every_profession_has_a_register() -> None:
    """No profession in the catalogue is left without a register to check."""
    assert set(FORMATS) == set(Profession)


def test_weekly_pattern_keeps_london_time_across_the_clock_change() -> None:
    """Tuesdays 09:00-17:00 London: 09:00 UTC in winter, 08:00 UTC after 29 March 2026."""
    pattern = Pattern(uuid.uuid4(), 1, time(9), time(17), date(2026, 3, 1))
    found = occurrences(pattern, start=date(2026, 3, 20), end=date(2026, 4, 8))
    assert [o.on_date for o in found] == [date(2026, 3, 24), date(2026, 3, 31), date(2026, 4, 7)]
    assert [o.starts_at.hour for o in found] == [9, 8, 8]
    assert all(o.ends_at - o.starts_at == timedelta(hours=8) for o in found)


def test_pattern_respects_exceptions_and_its_dates() -> None:
    """A date taken out is skipped; nothing before valid_from or after valid_until."""
    pattern = Pattern(uuid.uuid4(), 0, time(8), time(12), date(2026, 12, 7), date(2026, 12, 21))
    found = occurrences(
        pattern,
        start=date(2026, 11, 30),
        end=date(2027, 1, 31),
        exceptions=frozenset({date(2026, 12, 14)}),
    )
    assert [o.on_date for o in found] == [date(2026, 12, 7), date(2026, 12, 21)]


def _booking(status: OfferStatus, start: datetime, owner: uuid.UUID) -> Offer:
    return Offer(uuid.uuid4(), uuid.uuid4(), owner, status, start - timedelta(days=1), start)


def test_only_your_live_bookings_may_be_cancelled() -> None:
    """Someone else's: 404. Not a booking, or already started: 409."""
    me = uuid.uuid4()
    future = NOW + timedelta(days=2)
    assert check_cancellation(_booking(OfferStatus.BOOKED, future, me), clinician_id=me, now=NOW)
    with pytest.raises(OfferRefused) as other:
        check_cancellation(
            _booking(OfferStatus.BOOKED, future, uuid.uuid4()), clinician_id=me, now=NOW
        )
    assert other.value.status == 404
    with pytest.raises(OfferRefused) as declined:
        check_cancellation(_booking(OfferStatus.DECLINED, future, me), clinician_id=me, now=NOW)
    assert declined.value.status == 409
    with pytest.raises(OfferRefused) as started:
        check_cancellation(
            _booking(OfferStatus.BOOKED, NOW - timedelta(hours=1), me), clinician_id=me, now=NOW
        )
    assert started.value.status == 409


def test_late_means_within_48_hours() -> None:
    """47 h ahead is late; 49 h is not."""
    assert is_late(NOW + timedelta(hours=47), now=NOW)
    assert not is_late(NOW + timedelta(hours=49), now=NOW)


def test_a_new_home_sector_or_employer_is_a_transfer() -> None:
    """Moving sector or employer counts; a new phone number does not."""
    before = Clinician(uuid.uuid4(), "Ann", Profession.PHARMACIST, Sector.COMMUNITY_PHARMACY, "QOP")
    assert transferred(before, replace(before, home_sector=Sector.GENERAL_PRACTICE))
    assert transferred(before, replace(before, home_organisation="U12345"))
    assert not transferred(before, replace(before, phone="07700900123"))


def test_distance_is_straight_line_kilometres() -> None:
    """Manchester to Liverpool is about 50 km as the crow flies."""
    assert distance_km(53.48, -2.24, 53.41, -2.98) == pytest.approx(50, abs=3)


def test_skills_belong_to_professions() -> None:
    """Every profession has a skill list; an optometrist can't hold cervical screening."""
    from shared.catalogue import SKILLS_FOR, Skill, foreign_skills  # noqa: PLC0415

    assert set(SKILLS_FOR) == set(Profession)
    wrong = foreign_skills(
        Profession.OPTOMETRIST, frozenset({Skill.CERVICAL_SCREENING, Skill.CONTACT_LENS})
    )
    assert wrong == [Skill.CERVICAL_SCREENING]
    assert foreign_skills(Profession.GP, frozenset(Skill)) == []
