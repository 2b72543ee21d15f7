"""The consistency checker's judgement (fairshare/consistency.py), on snapshots built by hand.

A small world that agrees with itself: one practice in region QX1, three sessions (one
filled by Ann, one still open after Bob gave his booking up, one cancelled by the
practice), with everything the bank, matching and the monitor should hold of them.
Each test breaks one thing and checks the checker says so, in words.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from fairshare import consistency as c
from services.bank.handlers import handlers as bank_handlers
from services.matching.handlers import handlers as matching_handlers
from services.monitor.handlers import handlers as monitor_handlers
from services.vacancies.handlers import handlers as vacancies_handlers
from shared.messaging.emitter import Emitter

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
ANN, BOB = uuid.uuid4(), uuid.uuid4()
FILLED, REOPENED, CANCELLED = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
OFFER_ANN, OFFER_BOB, OFFER_LAPSED = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
MOVE = uuid.uuid4()


def _said(
    producer: str,
    kind: str,
    session: uuid.UUID,
    offer: uuid.UUID | None = None,
    clinician: uuid.UUID | None = None,
) -> c.Said:
    return c.Said(producer, uuid.uuid4(), kind, session, offer, clinician)


def world() -> c.Snapshot:
    """A snapshot in which every service agrees."""
    four = T0 + timedelta(hours=4)
    snap = c.Snapshot(taken_at=T0 - timedelta(days=1))
    snap.organisations = [c.Organisation("A81001", "general_practice", "QX1", "https://x/hook")]
    snap.sessions = [
        c.Session(FILLED, "A81001", "A81001", "r-1", "filled", ANN, OFFER_ANN, T0, four),
        c.Session(REOPENED, "A81001", "A81001", "r-2", "offered", None, None, T0, four),
        c.Session(CANCELLED, "A81001", "A81001", "r-3", "cancelled", None, None, T0, four),
    ]
    snap.cancelled_offers = {OFFER_BOB: REOPENED}
    snap.matching_sessions = [
        c.MatchingSession(FILLED, "QX1", "general_practice", "filled"),
        c.MatchingSession(REOPENED, "QX1", "general_practice", "open"),
        c.MatchingSession(CANCELLED, "QX1", "general_practice", "cancelled"),
    ]
    snap.matching_offers = [
        c.Offer(OFFER_ANN, FILLED, ANN, "accepted", T0, four),
        c.Offer(OFFER_BOB, REOPENED, BOB, "cancelled", T0, four),
        c.Offer(OFFER_LAPSED, CANCELLED, ANN, "withdrawn", T0, four),
    ]
    snap.bookings = [c.Booking(FILLED, OFFER_ANN, ANN, T0, four)]
    snap.bank_offers = [
        c.Offer(OFFER_ANN, FILLED, ANN, "booked", T0, four),
        c.Offer(OFFER_BOB, REOPENED, BOB, "cancelled_by_me", T0, four),
        c.Offer(OFFER_LAPSED, CANCELLED, ANN, "withdrawn", T0, four),
    ]
    snap.callbacks = [
        c.Callback(1, "A81001", FILLED, "session.offered", "delivered", 1, "offered", None),
        c.Callback(2, "A81001", FILLED, "session.filled", "delivered", 1, "filled", ANN),
        c.Callback(3, "A81001", REOPENED, "session.offered", "delivered", 1, "offered", None),
        c.Callback(4, "A81001", REOPENED, "session.filled", "delivered", 1, "filled", BOB),
        c.Callback(
            5, "A81001", REOPENED, "session.cancelled_by_clinician", "delivered", 1, "open", None
        ),
        c.Callback(6, "A81001", REOPENED, "session.offered", "delivered", 2, "offered", None),
    ]
    snap.stages = {
        "posted": {FILLED, REOPENED, CANCELLED},
        "offered": {FILLED, REOPENED, CANCELLED},
        # Bob gave his booking up: REOPENED is no longer counted filled.
        "filled": {FILLED},
    }
    snap.counts = [c.Counts("QX1", "general_practice", 3, 3, 1, cancelled=1)]
    move = c.Move(MOVE, "QX1", "session", "community_pharmacy", "general_practice", 4.0)
    snap.moves, snap.monitor_moves = [move], [move]
    snap.matching_alerts = snap.monitor_alerts = {("QX1", "community_pharmacy")}
    policy = c.Policy("QX1", True, 0.8, (("community_pharmacy", 30.0),))
    snap.matching_policies = [policy]
    snap.monitor_policies = [replace(policy, caps=(*policy.caps, ("dentistry", 10.0)))]
    snap.said = [
        *(_said("vacancies", "session.posted", s) for s in (FILLED, REOPENED, CANCELLED)),
        _said("matching", "session.filled", FILLED, OFFER_ANN, ANN),
        _said("matching", "session.filled", REOPENED, OFFER_BOB, BOB),
        _said("bank", "offer.accepted", FILLED, OFFER_ANN, ANN),
        _said("bank", "offer.accepted", REOPENED, OFFER_BOB, BOB),
        _said("bank", "booking.cancelled", REOPENED, OFFER_BOB, BOB),
    ]
    snap.unpublished = dict.fromkeys(c.SCHEMAS, 0)
    return snap


def test_a_world_that_agrees_has_no_problems_and_nothing_unsettled() -> None:
    assert c.problems(world()) == []
    assert c.unsettled(world()) == []
    assert c.report([], ["a note"]) == "consistent\nnote: a note"


def test_the_consumed_types_are_the_services_own_handler_tables() -> None:
    emitter = Emitter(producer="matching", schema="matching")
    assert {
        "vacancies": frozenset(vacancies_handlers(timedelta(hours=25))),
        "bank": frozenset(bank_handlers()),
        "matching": frozenset(matching_handlers(emitter)),
        "monitor": frozenset(monitor_handlers()),
    } == c.CONSUMES


def test_work_under_way_is_unsettled_not_a_problem() -> None:
    snap = world()
    snap.unpublished["bank"] = 2
    snap.unhandled[("monitor", "session.filled")] = 1
    snap.pending_callbacks, snap.plan_requests = 3, 1
    assert c.unsettled(snap) == [
        "bank: 2 event(s) not yet published",
        "monitor: 1 session.filled event(s) published but not handled",
        "vacancies: 3 callback(s) still pending",
        "matching: 1 region re-plan(s) still owed",
    ]
    assert c.unsettled(snap, background=False)[-1].startswith("monitor: 1")
    assert c.problems(snap) == []


def _session(snap: c.Snapshot, session_id: uuid.UUID) -> c.Session:
    return next(s for s in snap.sessions if s.id == session_id)


def test_a_fill_vacancies_missed_is_found() -> None:
    snap = world()
    s = _session(snap, FILLED)
    snap.sessions[snap.sessions.index(s)] = replace(
        s, status="open", clinician_id=None, offer_id=None
    )
    found = c.problems(snap)
    assert (
        f"session {c.short(FILLED)} (A81001/r-1) is open in vacancies but filled in matching"
        in (found)
    )
    assert any("but matching books clinician" in p for p in found)


def test_a_fill_by_another_offer_is_found() -> None:
    snap = world()
    s = _session(snap, FILLED)
    snap.sessions[snap.sessions.index(s)] = replace(s, clinician_id=BOB, offer_id=OFFER_BOB)
    found = c.problems(snap)
    assert any(f"is filled in vacancies by clinician {c.short(BOB)}" in p for p in found)
    assert any("whose booking the clinician cancelled" in p for p in found)


def test_a_session_offered_without_an_offer_is_found() -> None:
    snap = world()
    snap.matching_offers = [o for o in snap.matching_offers if o.session_id != REOPENED]
    snap.bank_offers = [o for o in snap.bank_offers if o.session_id != REOPENED]
    snap.stages["offered"].discard(REOPENED)
    snap.counts = [c.Counts("QX1", "general_practice", 3, 2, 1, cancelled=1)]
    assert c.problems(snap) == [
        f"session {c.short(REOPENED)} (A81001/r-2) is offered in vacancies but matching never"
        " offered it"
    ]


def test_a_session_matching_never_heard_of_is_found() -> None:
    snap = world()
    snap.matching_sessions = [m for m in snap.matching_sessions if m.id != CANCELLED]
    assert (
        f"session {c.short(CANCELLED)} (A81001/r-3) is cancelled in vacancies but matching"
        " has never heard of it"
    ) in c.problems(snap)


def test_a_cancellation_matching_missed_is_found() -> None:
    snap = world()
    snap.matching_sessions[2] = replace(snap.matching_sessions[2], status="open")
    assert "is cancelled in vacancies but open in matching" in c.problems(snap)[0]


def test_the_bank_and_matching_must_book_the_same() -> None:
    snap = world()
    snap.bank_offers[0] = replace(snap.bank_offers[0], status="accepted")
    found = c.problems(snap)
    assert any("matching books clinician" in p and "the bank does not show" in p for p in found)
    assert any("matching neither booked nor refused it" in p for p in found)


def test_an_offer_the_bank_shows_but_matching_never_made_is_found() -> None:
    snap = world()
    ghost = c.Offer(uuid.uuid4(), REOPENED, BOB, "offered", T0, T0 + timedelta(hours=1))
    snap.bank_offers.append(ghost)
    assert f"the bank shows offer {c.short(ghost.id)} (offered) that matching never made" in (
        c.problems(snap)
    )


def test_a_double_booking_is_found_wherever_it_is() -> None:
    snap = world()
    other = uuid.uuid4()
    overlapping = (T0 + timedelta(hours=3), T0 + timedelta(hours=7))
    snap.bookings.append(c.Booking(other, uuid.uuid4(), ANN, *overlapping))
    snap.bank_offers.append(c.Offer(uuid.uuid4(), other, ANN, "booked", *overlapping))
    found = [p for p in c.problems(snap) if "double-booked" in p]
    assert found == [
        f"clinician {c.short(ANN)} is double-booked in matching: sessions {c.short(FILLED)}"
        f" and {c.short(other)} overlap",
        f"clinician {c.short(ANN)} is double-booked in the bank: sessions {c.short(FILLED)}"
        f" and {c.short(other)} overlap",
    ]


def test_back_to_back_sessions_are_not_a_double_booking() -> None:
    spans = [
        (ANN, T0, T0 + timedelta(hours=4), FILLED),
        (ANN, T0 + timedelta(hours=4), T0 + timedelta(hours=8), REOPENED),
        (BOB, T0, T0 + timedelta(hours=8), CANCELLED),
    ]
    assert list(c._overlaps("matching", spans)) == []
    inside = [*spans, (ANN, T0 + timedelta(hours=1), T0 + timedelta(hours=2), CANCELLED)]
    assert len(list(c._overlaps("matching", inside))) == 1


def test_a_booking_of_a_cancelled_session_is_found() -> None:
    snap = world()
    day = T0 + timedelta(days=1)
    snap.bookings.append(c.Booking(CANCELLED, OFFER_LAPSED, ANN, day, day + timedelta(hours=4)))
    found = c.problems(snap)
    assert (
        f"matching books clinician {c.short(ANN)} for cancelled session {c.short(CANCELLED)}"
        in found
    )


def test_a_booking_the_clinician_gave_up_is_found() -> None:
    snap = world()
    snap.bank_offers[1] = replace(snap.bank_offers[1], status="booked")
    found = c.problems(snap)
    assert (
        f"the bank shows offer {c.short(OFFER_BOB)} booked though the clinician cancelled"
        " its booking"
    ) in found


def test_an_event_said_twice_is_found() -> None:
    snap = world()
    snap.said.append(_said("matching", "session.filled", FILLED, OFFER_ANN, ANN))
    snap.said.append(_said("vacancies", "session.posted", FILLED))
    found = c.problems(snap)
    assert (
        f"matching said session.filled 2 times for offer {c.short(OFFER_ANN)}:"
        " filled more than once"
    ) in found
    assert (
        f"vacancies said session.posted 2 times for session {c.short(FILLED)}:"
        " posted more than once"
    ) in found


def test_callbacks_given_up_twice_over_or_out_of_date_are_found() -> None:
    snap = world()
    snap.callbacks[1] = replace(snap.callbacks[1], status="failed", attempts=30)
    snap.callbacks.append(
        c.Callback(
            7, "A81001", REOPENED, "session.cancelled_by_clinician", "delivered", 1, "open", None
        )
    )
    found = c.problems(snap)
    assert "callback 2 (session.filled) to A81001 was given up after 30 attempts" in found
    assert any(
        "cancelled by the clinician 2 times, but clinicians gave it up 1" in p for p in found
    )
    assert any(
        "is offered but its last callback (session.cancelled_by_clinician)" in p for p in found
    )


def test_history_based_checks_are_skipped_once_outboxes_are_pruned() -> None:
    snap = world()
    snap.said = []
    assert any("never said session.posted" in p for p in c.problems(snap))
    snap.history_complete = False
    assert c.problems(snap) == []


def test_the_monitor_counting_twice_or_missing_a_session_is_found() -> None:
    snap = world()
    snap.counts = [c.Counts("QX1", "general_practice", 4, 3, 2, cancelled=1)]
    snap.stages["offered"].discard(CANCELLED)
    found = c.problems(snap)
    assert (
        "sessions posted in QX1 general_practice: the monitor shows 4, vacancies holds 3" in found
    )
    assert (
        f"the monitor never counted session {c.short(CANCELLED)} as offered (matching offered it)"
    ) in found
    assert any("shows 2 sessions filled in QX1 general_practice but has 1" in p for p in found)


def test_the_monitor_must_count_every_booking_as_filled() -> None:
    snap = world()
    snap.stages["filled"].discard(FILLED)
    snap.counts = [c.Counts("QX1", "general_practice", 3, 3, 0, cancelled=1)]
    assert f"the monitor never counted session {c.short(FILLED)} as filled (matching books it)" in (
        c.problems(snap)
    )


def test_the_monitor_must_not_count_a_released_booking_as_filled() -> None:
    snap = world()
    snap.stages["filled"].add(REOPENED)
    snap.counts = [c.Counts("QX1", "general_practice", 3, 3, 2, cancelled=1)]
    assert (
        f"the monitor counts session {c.short(REOPENED)} as filled, but matching books it says not"
    ) in c.problems(snap)


def test_the_services_give_the_dashboards_figures_per_region_and_sector() -> None:
    """Vacancies places a session in its poster's region and its site's sector, and
    gives posted, filled now, cancelled (late or not) and unfilled; matching, offered."""
    snap = world()
    snap.organisations.append(c.Organisation("FX123", "community_pharmacy", "QX1", None))
    late = _session(snap, CANCELLED)
    snap.sessions[snap.sessions.index(late)] = replace(late, cancelled_late=True)
    four = T0 + timedelta(hours=4)
    at_pharmacy = c.Session(
        uuid.uuid4(), "A81001", "FX123", "r-4", "unfilled", None, None, T0, four
    )
    snap.sessions.append(at_pharmacy)
    assert c.service_counts(snap) == {
        ("QX1", "community_pharmacy"): c.Counts("QX1", "community_pharmacy", 1, 0, 0, unfilled=1),
        ("QX1", "general_practice"): c.Counts(
            "QX1", "general_practice", 3, 3, 1, cancelled=1, late_cancelled=1
        ),
    }


@pytest.mark.parametrize(
    ("figure", "line"),
    [
        (
            "posted",
            "sessions posted in QX1 general_practice: the monitor shows 4, vacancies holds 3",
        ),
        (
            "offered",
            "sessions offered in QX1 general_practice: the monitor shows 4, matching offered 3",
        ),
        (
            "filled",
            "sessions filled now in QX1 general_practice: the monitor shows 2, vacancies holds 1",
        ),
        (
            "cancelled",
            "sessions cancelled in QX1 general_practice: the monitor shows 2, vacancies holds 1",
        ),
        (
            "unfilled",
            "sessions unfilled in QX1 general_practice: the monitor shows 1, vacancies holds 0",
        ),
        (
            "late_cancelled",
            "sessions cancelled late in QX1 general_practice: the monitor shows 1,"
            " vacancies holds 0",
        ),
    ],
)
def test_a_monitor_figure_the_services_disagree_with_is_found(figure: str, line: str) -> None:
    """One figure of the dashboard one too high: a line naming the region, the sector,
    the figure, and both values."""
    snap = world()
    [row] = snap.counts
    snap.counts = [replace(row, **{figure: getattr(row, figure) + 1})]
    assert line in c.problems(snap)


def test_the_monitor_following_a_session_that_went_unfilled_agrees() -> None:
    """Bob's session started with nobody booked: vacancies and matching say unfilled. A
    monitor that still shows it open is wrong; one that counts it unfilled agrees."""
    snap = world()
    reopened = _session(snap, REOPENED)
    snap.sessions[snap.sessions.index(reopened)] = replace(reopened, status="unfilled")
    snap.matching_sessions[1] = replace(snap.matching_sessions[1], status="unfilled")
    snap.callbacks.append(
        c.Callback(7, "A81001", REOPENED, "session.unfilled", "delivered", 1, "unfilled", None)
    )
    assert c.problems(snap) == [
        "sessions unfilled in QX1 general_practice: the monitor shows 0, vacancies holds 1"
    ]
    snap.counts = [replace(snap.counts[0], unfilled=1)]
    assert c.problems(snap) == []


def test_a_sector_only_the_monitor_shows_is_found() -> None:
    """Figures where vacancies holds no session at all are compared too (with nothing)."""
    snap = world()
    snap.counts.append(c.Counts("QX1", "dentistry", 0, 0, 0, cancelled=2))
    assert c.problems(snap) == [
        "sessions cancelled in QX1 dentistry: the monitor shows 2, vacancies holds 0"
    ]


def test_the_monitors_figures_are_not_compared_once_history_is_pruned() -> None:
    """Older data may have been counted before the monitor's figures were rebuilt, from
    events no longer kept: its figures are then not held against the services'."""
    snap = world()
    snap.counts = [replace(snap.counts[0], cancelled=0, unfilled=5)]
    assert len(c.problems(snap)) == 2
    snap.history_complete = False
    assert c.problems(snap) == []


def test_the_monitors_figures_are_not_compared_while_an_event_is_in_flight() -> None:
    """A cancellation the monitor has not read yet leaves it a session behind: not a
    problem while the event is unhandled (a wait that runs out reports the event)."""
    snap = world()
    snap.counts = [replace(snap.counts[0], cancelled=0)]
    assert len(c.problems(snap)) == 1
    snap.unhandled[("monitor", "session.cancelled")] = 1
    assert c.problems(snap) == []
    snap.unhandled.clear()
    snap.unpublished["vacancies"] = 1
    assert c.problems(snap) == []
    snap.pending_callbacks = snap.plan_requests = 1  # background work changes no figure
    snap.unpublished["vacancies"] = 0
    assert len(c.problems(snap)) == 1


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s.monitor_moves.clear(), "is missing from the monitor"),
        (
            lambda s: s.monitor_moves.__setitem__(0, replace(s.monitor_moves[0], reversed=True)),
            "is live in matching's ledger but reversed in the monitor",
        ),
        (lambda s: s.monitor_alerts.clear(), "the monitor does not show it"),
        (lambda s: s.matching_alerts.clear(), "that matching has cleared"),
        (lambda s: s.monitor_policies.clear(), "the monitor has none"),
    ],
)
def test_the_monitors_drain_picture_must_be_matchings(
    change: Callable[[c.Snapshot], object], words: str
) -> None:
    snap = world()
    snap.matching_alerts = set(snap.matching_alerts)
    snap.monitor_alerts = set(snap.monitor_alerts)
    change(snap)
    assert any(words in p for p in c.problems(snap)), c.problems(snap)


def test_many_problems_of_one_kind_are_summed_up() -> None:
    snap = world()
    for _ in range(c.SHOWN + 5):
        sid = uuid.uuid4()
        snap.matching_sessions.append(c.MatchingSession(sid, "QX1", "general_practice", "open"))
    found = [p for p in c.problems(snap) if "vacancies never had" in p or "more like" in p]
    assert len(found) == c.SHOWN + 1
    assert found[-1] == "... and 5 more like the above"
