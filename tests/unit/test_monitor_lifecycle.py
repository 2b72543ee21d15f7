"""Each session's figures from every event about it, in any order (hypothesis).

A small world is simulated as the services would live it: sessions posted, offered,
filled, given up by clinicians, amended (changes that release the booking and changes
that don't, some read by matching before a fill of the old shape), cancelled and
started unfilled. Its events, shuffled across sessions and services, some delivered
twice and split into batches as a consumer reads them, are folded as the monitor folds
them; every session's figures, and the counters summed from the changes, must be what
the world says; so must each session's timeline (when it was posted and when the
booking that stands was made: time to fill) and, for a session still open, where it
stands with matching (the at-risk list's reason).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.monitor.domain import (
    COUNTED,
    Fact,
    Filled,
    GivenUp,
    Offered,
    Said,
    SectorCounts,
    SessionFacts,
    Stated,
    Unmatched,
    figures,
    fold,
    timeline,
)
from services.monitor.risk import Status, standing

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# (organisation, sector): an amendment moving a session between them moves its figures.
SITES = [("A81001", "general_practice"), ("FVR79", "community_pharmacy")]
ROLES = ["gp", "clinical_pharmacist"]
ACTIONS = [
    "offer",
    "fill",
    "give_up",
    "amend",
    "amend_same",
    "amend_in_flight",
    "unmatched",
    "close",
]
WHYS = ["no_eligible_clinician", "held_by_drain_guard", "declined_by_all", "clinicians_taken"]


@dataclass
class World:
    """The region as vacancies and matching agree it is, and the events they said."""

    rng: random.Random
    clock: int = 0
    events: list[tuple[uuid.UUID, Fact]] = field(default_factory=list)
    truth: dict[uuid.UUID, SectorCounts] = field(default_factory=dict)
    # (posted at, the standing booking's time) and, for an open session, (status, why).
    times: dict[uuid.UUID, tuple[datetime, datetime | None]] = field(default_factory=dict)
    standing: dict[uuid.UUID, tuple[Status, str | None]] = field(default_factory=dict)

    def tick(self) -> datetime:
        self.clock += 1
        return T0 + timedelta(seconds=self.clock)


def _stated(shape: Stated, said: Said, at: datetime, **extra: object) -> Stated:
    return replace(shape, event_id=uuid.uuid4(), said=said, at=at, **extra)  # type: ignore[arg-type]


def _changed(rng: random.Random, now: Stated, *, skills_too: bool) -> Stated:
    """A change that releases the booking: another time, site, role (or skills)."""
    kinds = ["time", "site", "role", *(["skills"] if skills_too else [])]
    kind = rng.choice(kinds)
    if kind == "time":
        hours = timedelta(hours=rng.choice([1, 2, 24]))
        return replace(now, starts_at=now.starts_at + hours, ends_at=now.ends_at + hours)
    if kind == "site":
        organisation, sector = next(s for s in SITES if s[0] != now.organisation)
        return replace(now, organisation=organisation, sector=sector)
    if kind == "role":
        return replace(now, role=next(r for r in ROLES if r != now.role))
    return replace(now, skills=() if now.skills else ("minor_illness",))


def live_one_session(world: World, region: str, steps: list[str]) -> None:
    """One session's life, its events appended to the world's, its truth recorded."""
    rng, sid = world.rng, uuid.uuid4()
    organisation, sector = rng.choice(SITES)
    start = T0 + timedelta(days=2)
    now = Stated(
        event_id=uuid.uuid4(),
        said=Said.POSTED,
        at=world.tick(),
        region=region,
        sector=sector,
        organisation=organisation,
        starts_at=start,
        ends_at=start + timedelta(hours=4),
        role=rng.choice(ROLES),
    )
    world.events.append((sid, now))
    offer: Offered | None = None  # the live offer
    booked: Filled | None = None
    offered = cancelled = unfilled = late_cancelled = late_given_up = 0
    ever_filled = False
    # Where it stands with matching: its last offer, reason, booking given up, or
    # change that withdrew offers (a booking released, if one was ever made).
    status: tuple[Status, str | None] = (Status.WAITING, None)

    def say(fact: Fact) -> None:
        world.events.append((sid, fact))

    for step in steps:
        # Filling makes its offer first if none is live: lives then fill more often.
        if step in ("offer", "fill") and booked is None and offer is None:
            offer = Offered(
                uuid.uuid4(), uuid.uuid4(), world.tick(), region, now.sector, now.role or ""
            )
            offered = 1
            status = (Status.OFFERED, None)
            say(offer)
        if step == "fill" and offer is not None:
            booked = Filled(
                uuid.uuid4(),
                offer.offer_id,
                uuid.uuid4(),
                world.tick(),
                region,
                now.sector,
                now.organisation,
                now.starts_at,
                now.ends_at,
            )
            offer = None
            ever_filled = True
            say(booked)
        elif step == "give_up" and booked is not None:
            late = rng.random() < 0.5
            late_given_up += late
            say(GivenUp(uuid.uuid4(), booked.offer_id, booked.clinician_id, world.tick(), late))
            booked = None
            status = (Status.GIVEN_UP, None)
        elif step == "amend":
            # Vacancies names the clinician released only if it had read the fill.
            released = booked.clinician_id if booked and rng.random() < 0.7 else None
            now = _stated(_changed(rng, now, skills_too=True), Said.AMENDED, world.tick())
            now = replace(now, released=released)
            say(now)
            offer = booked = None  # matching withdraws offers and releases the booking
            status = (Status.GIVEN_UP if ever_filled else Status.WAITING, None)
        elif step == "unmatched" and booked is None:
            # Matching plans it and finds nobody: its offer, if any, is gone.
            why = rng.choice(WHYS)
            say(Unmatched(uuid.uuid4(), world.tick(), why, f"because {why}"))
            offer = None
            status = (Status.NO_OFFER, why)
        elif step == "amend_same":
            now = _stated(now, Said.AMENDED, world.tick(), released=None)  # a new rate, say
            say(now)
        elif step == "amend_in_flight" and offer is not None and booked is None:
            # The amendment is said first, but matching books the old offer before it
            # reads it, then releases that booking when it does: a fill of the old shape.
            old = now
            now = _stated(_changed(rng, now, skills_too=False), Said.AMENDED, world.tick())
            say(replace(now, released=None))
            status = (Status.GIVEN_UP if ever_filled else Status.WAITING, None)
            ever_filled = True
            say(
                Filled(
                    uuid.uuid4(),
                    offer.offer_id,
                    uuid.uuid4(),
                    world.tick(),
                    region,
                    old.sector,
                    old.organisation,
                    old.starts_at,
                    old.ends_at,
                )
            )
            offer = None
        elif step == "close":
            if booked is None and rng.random() < 0.3:
                say(_stated(now, Said.UNFILLED, world.tick(), released=None))
                unfilled = 1
            else:
                late = rng.random() < 0.5
                say(_stated(now, Said.CANCELLED, world.tick(), released=None, late=late))
                cancelled, late_cancelled = 1, int(late)
            booked = None
            break
    posted_at = next(f.at for i, f in world.events if i == sid and isinstance(f, Stated))
    world.times[sid] = (posted_at, booked.at if booked is not None else None)
    if booked is None and not cancelled and not unfilled:
        world.standing[sid] = status
    world.truth[sid] = SectorCounts(
        region=region,
        sector=now.sector,
        posted=1,
        offered=offered,
        filled=int(booked is not None),
        cancelled=cancelled,
        unfilled=unfilled,
        late_cancelled=late_cancelled,
        late_given_up=late_given_up,
    )


@st.composite
def a_world(draw: st.DrawFn) -> World:
    """A few sessions in two regions, each living up to a dozen steps."""
    world = World(random.Random(draw(st.integers(0, 2**32))))
    lives = st.lists(st.sampled_from(ACTIONS), max_size=12)
    for _ in range(draw(st.integers(1, 4))):
        live_one_session(world, draw(st.sampled_from(["QOP", "QE1"])), draw(lives))
    return world


def _counters(truth: dict[uuid.UUID, SectorCounts]) -> dict[tuple[str, str], tuple[int, ...]]:
    sums: dict[tuple[str, str], Counter[str]] = {}
    for t in truth.values():
        sums.setdefault((t.region, t.sector), Counter()).update(
            {name: getattr(t, name) for name in COUNTED}
        )
    return {key: tuple(c[name] for name in COUNTED) for key, c in sums.items() if any(c.values())}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(world=a_world())
def test_in_the_order_said_every_session_has_the_worlds_figures(world: World) -> None:
    """Folded one by one as they were said, the events give each session the figures
    the world has: cancelled or released bookings are not filled, amendments move it."""
    known: dict[uuid.UUID, SessionFacts] = {}
    for sid, fact in world.events:
        known[sid] = fold({sid: (known.get(sid, SessionFacts()), None)}, [(sid, fact)]).facts[sid]
    assert {sid: figures(f) for sid, f in known.items()} == world.truth
    _check_times_and_standing(world, known)


def _check_times_and_standing(world: World, known: dict[uuid.UUID, SessionFacts]) -> None:
    """Each session's post and standing booking times, and each open one's standing."""
    lines = {sid: timeline(f) for sid, f in known.items()}
    assert {sid: (t.posted_at, t.filled_at) for sid, t in lines.items()} == world.times
    for sid, (posted_at, filled_at) in world.times.items():
        minutes = lines[sid].minutes_to_fill()
        if filled_at is None:
            assert minutes is None
        else:
            assert minutes == (filled_at - posted_at).total_seconds() / 60
    found = {sid: standing(known[sid]) for sid in world.standing}
    assert {sid: (s.status, s.why) for sid, s in found.items()} == world.standing


@settings(max_examples=300, deadline=None, derandomize=True)
@given(world=a_world(), data=st.data())
def test_any_order_any_batches_and_duplicates_give_the_same_figures(
    world: World, data: st.DataObject
) -> None:
    """Shuffled across sessions and services, some delivered again, read in batches:
    each session's figures and the counters (summed from the changes alone, as the
    adapter adds them) are what the world says."""
    again = data.draw(st.lists(st.sampled_from(world.events), max_size=6))
    delivered = data.draw(st.permutations(world.events + again))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(delivered) - 1)), max_size=5)))
    batches = [delivered[a:b] for a, b in zip([0, *cuts], [*cuts, len(delivered)], strict=True)]

    kept: dict[uuid.UUID, tuple[SessionFacts, SectorCounts | None]] = {}
    counters: Counter[tuple[str, str, str]] = Counter()
    for batch in batches:
        folded = fold({sid: kept[sid] for sid, _ in batch if sid in kept}, batch)
        for change in folded.changes:
            for name in COUNTED:
                counters[(change.region, change.sector, name)] += getattr(change, name)
        kept.update({sid: (folded.facts[sid], folded.figures[sid]) for sid in folded.facts})

    assert {sid: figs for sid, (_, figs) in kept.items()} == world.truth
    _check_times_and_standing(world, {sid: facts for sid, (facts, _) in kept.items()})
    summed = {
        (region, sector): tuple(counters[(region, sector, name)] for name in COUNTED)
        for region, sector, _ in counters
    }
    assert {k: v for k, v in summed.items() if any(v)} == _counters(world.truth)


def test_a_fill_read_before_the_post_counts_where_matching_says() -> None:
    """Before vacancies' post is read, a fill alone counts the session filled in the
    fill's sector, not posted: nothing else says where it is yet."""
    sid = uuid.uuid4()
    fill = Filled(
        uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), T0, "QOP", "dentistry", "V12345", T0, T0
    )
    folded = fold({}, [(sid, fill)])
    assert folded.figures[sid] == SectorCounts("QOP", "dentistry", 0, 0, 1)
    assert folded.changes == [SectorCounts("QOP", "dentistry", 0, 0, 1)]


def test_a_booking_given_up_before_anything_else_is_read_counts_nowhere() -> None:
    """A clinician's cancellation says nothing of where the session is: no figures yet."""
    sid = uuid.uuid4()
    given_up = GivenUp(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), T0, late=True)
    folded = fold({}, [(sid, given_up)])
    assert folded.figures[sid] is None
    assert folded.changes == []


def test_an_amendment_naming_the_released_clinician_undoes_the_fill_before_the_post() -> None:
    """A change of skills only (the fill's time and place still fit) that vacancies says
    released the clinician: read before the post, so with nothing to compare the change
    against, it still takes the earlier fill back."""
    sid, clinician = uuid.uuid4(), uuid.uuid4()
    end = T0 + timedelta(hours=4)
    fill = Filled(uuid.uuid4(), uuid.uuid4(), clinician, T0, "QOP", "dentistry", "V12345", T0, end)
    amended = Stated(
        event_id=uuid.uuid4(),
        said=Said.AMENDED,
        at=T0 + timedelta(minutes=5),
        region="QOP",
        sector="dentistry",
        organisation="V12345",
        starts_at=T0,
        ends_at=end,
        role="dentist",
        skills=("minor_illness",),
        released=clinician,
    )
    assert figures(fold({}, [(sid, fill), (sid, amended)]).facts[sid]) == SectorCounts(
        "QOP", "dentistry", posted=1, offered=0, filled=0
    )
