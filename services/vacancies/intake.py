"""The web hook intake use case: verified deliveries become stored, published changes.

Every kind of delivery is handled one session at a time by the same functions, so a
500-session batch obeys exactly the rules a single post does, and reports per session.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from services.vacancies import repository
from services.vacancies.domain import (
    NewSession,
    Organisation,
    Outcome,
    RuleBroken,
    SessionStatus,
    StoredSession,
    amend,
    cancel,
    check_session,
    check_site,
    new_session_id,
)
from shared.catalogue import OdsCode, Role, Skill, Urgency
from shared.db.types import Conn
from shared.events import SessionAmended, SessionCancelled, SessionPosted
from shared.http.problems import field_errors
from shared.messaging.emitter import Emitter
from shared.validation import Instant, Text

MAX_BATCH = 500


class SessionIn(BaseModel):
    """A vacant session as the organisation's rota system sends it."""

    model_config = ConfigDict(extra="forbid")

    external_id: Text = Field(
        min_length=1, max_length=200, description="Your own id; posting it again amends."
    )
    site: OdsCode | None = Field(
        default=None,
        description="ODS code where it is worked: yours (the default), or, for a PCN, a member"
        " practice's.",
    )
    role: Role = Field(description="Role the session needs, from the role catalogue.")
    skills: list[Skill] = Field(default_factory=list, max_length=10, description="Skills needed.")
    starts_at: Instant = Field(description="Start, ISO 8601 with UTC offset.")
    ends_at: Instant = Field(description="End, ISO 8601 with UTC offset; at most 13 h on.")
    rate_pence_per_hour: int | None = Field(
        default=None, ge=0, le=100_000, description="Offered pay, pence per hour."
    )
    urgency: Urgency = Field(default=Urgency.ROUTINE, description="How soon it must be filled.")
    notes: Text | None = Field(
        default=None, max_length=2000, description="Free text for the clinician."
    )

    def to_domain(self) -> NewSession:
        """The session as the domain sees it."""
        return NewSession(
            external_id=self.external_id,
            role=self.role,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            site=self.site,
            skills=frozenset(self.skills),
            rate_pence_per_hour=self.rate_pence_per_hour,
            urgency=self.urgency,
            notes=self.notes,
        )


class CancelIn(BaseModel):
    """Which session to cancel, and why."""

    model_config = ConfigDict(extra="forbid")

    external_id: Text = Field(min_length=1, max_length=200, description="Your id of the session.")
    reason: Text | None = Field(
        default=None, max_length=500, description="Why; required if a clinician is booked."
    )


class BatchIn(BaseModel):
    """Up to 500 sessions at once (a month of a rota)."""

    model_config = ConfigDict(extra="forbid")

    sessions: list[SessionIn] = Field(min_length=1, max_length=MAX_BATCH)


class _Hook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timestamp: AwareDatetime = Field(description="When your system produced the delivery.")


class SessionPostedHook(_Hook):
    """Post a session (or amend it, if its external_id was posted before)."""

    type: Literal["session.posted"]
    data: SessionIn


class SessionAmendedHook(_Hook):
    """Amend a session posted before."""

    type: Literal["session.amended"]
    data: SessionIn


class SessionCancelledHook(_Hook):
    """Cancel a session posted before."""

    type: Literal["session.cancelled"]
    data: CancelIn


class SessionsPostedHook(_Hook):
    """Post (or amend) up to 500 sessions; each is answered on its own."""

    type: Literal["sessions.posted"]
    data: BatchIn


class _LooseBatch(BaseModel):
    sessions: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class _SessionsPostedLoose(_Hook):
    # Items are validated one by one, so one bad session doesn't sink the other 499.
    type: Literal["sessions.posted"]
    data: _LooseBatch


Delivery = Annotated[
    SessionPostedHook | SessionAmendedHook | SessionCancelledHook | SessionsPostedHook,
    Field(discriminator="type"),
]
_LOOSE: TypeAdapter[Any] = TypeAdapter(
    Annotated[
        SessionPostedHook | SessionAmendedHook | SessionCancelledHook | _SessionsPostedLoose,
        Field(discriminator="type"),
    ]
)


class ItemResult(BaseModel):
    """What happened to one session of a delivery."""

    external_id: str | None = Field(description="Your id of the session, if it could be read.")
    outcome: Outcome = Field(description="created, amended, unchanged, cancelled or rejected.")
    session_id: str | None = Field(default=None, description="Fairshare's id of the session.")
    status: SessionStatus | None = Field(default=None, description="The session's status now.")
    errors: list[dict[str, str]] = Field(
        default_factory=list, description="Each field refused and the rule it broke."
    )
    http_status: int = Field(default=200, exclude=True)


@dataclass
class Intake:
    """One delivery's context: the connection (in its transaction), poster and clock."""

    conn: Conn
    poster: Organisation
    emitter: Emitter
    now: datetime

    async def _site(self, code: str) -> Organisation | None:
        if code == self.poster.ods_code:
            return self.poster
        return await repository.organisation(self.conn, code)

    async def post(self, incoming: NewSession, *, prefix: str, must_exist: bool) -> ItemResult:
        """Create, amend or leave alone one session."""
        site_code = incoming.site or self.poster.ods_code
        incoming = replace(incoming, site=site_code)
        site = await self._site(site_code)
        broken = check_session(incoming, now=self.now, prefix=prefix)
        site_problem = check_site(self.poster, site, site_code)
        if site_problem:
            broken.append(replace(site_problem, field=site_problem.field.replace("data", prefix)))
        if broken:
            return _rejected(incoming.external_id, broken, 422)
        assert site is not None
        if not must_exist:
            # Insert first: most posts are new, and this saves the look-up round trip.
            session = StoredSession(
                new_session_id(), self.poster.ods_code, incoming, SessionStatus.OPEN, None
            )
            if await repository.insert_session(self.conn, session):
                await self.emitter.emit(
                    self.conn, SessionPosted(**self.state(session, site)), region=self.poster.region
                )
                return _result(session, Outcome.CREATED, 202)
        existing = await repository.session_by_external_id(
            self.conn, organisation=self.poster.ods_code, external_id=incoming.external_id
        )
        if existing is None:
            missing = RuleBroken(f"{prefix}.external_id", "no session with this id to amend")
            return _rejected(incoming.external_id, [missing], 404)
        change = amend(existing, incoming)
        if change.outcome is Outcome.REJECTED:
            assert change.refusal is not None
            return _rejected(incoming.external_id, [change.refusal], 409)
        if change.outcome is Outcome.AMENDED:
            await repository.save_session(self.conn, change.session)
            await self.emitter.emit(
                self.conn,
                SessionAmended(
                    **self.state(change.session, site),
                    released_clinician_id=change.released_clinician,
                ),
                region=self.poster.region,
            )
        return _result(change.session, change.outcome, 200)

    async def cancel(self, request: CancelIn) -> ItemResult:
        """Cancel one session."""
        existing = await repository.session_by_external_id(
            self.conn, organisation=self.poster.ods_code, external_id=request.external_id
        )
        if existing is None:
            missing = RuleBroken("data.external_id", "no session with this id")
            return _rejected(request.external_id, [missing], 404)
        decision = cancel(existing, request.reason, now=self.now)
        if decision.outcome is Outcome.REJECTED:
            assert decision.refusal is not None
            code = 422 if decision.refusal.field.endswith("reason") else 409
            return _rejected(request.external_id, [decision.refusal], code)
        if decision.outcome is Outcome.CANCELLED:
            await repository.mark_cancelled(
                self.conn, existing.id, reason=request.reason, late=decision.late
            )
            site = await self._site(existing.details.site or self.poster.ods_code)
            assert site is not None
            await self.emitter.emit(
                self.conn,
                SessionCancelled(
                    session_id=existing.id,
                    organisation=site.ods_code,
                    sector=site.sector,
                    reason=request.reason,
                    late=decision.late,
                    released_clinician_id=decision.released_clinician,
                    starts_at=existing.details.starts_at,
                    ends_at=existing.details.ends_at,
                ),
                region=self.poster.region,
            )
        cancelled = replace(existing, status=SessionStatus.CANCELLED)
        return _result(cancelled, decision.outcome, 200)

    def state(self, session: StoredSession, site: Organisation) -> dict[str, Any]:
        """The event fields of ``session`` worked at ``site``."""
        d = session.details
        return {
            "session_id": session.id,
            "organisation": site.ods_code,
            "posted_by": self.poster.ods_code,
            "site_name": site.name,
            "sector": site.sector,
            "role": d.role,
            "skills": sorted(d.skills),
            "rate_pence_per_hour": d.rate_pence_per_hour,
            "urgency": d.urgency,
            "starts_at": d.starts_at,
            "ends_at": d.ends_at,
            "latitude": site.latitude,
            "longitude": site.longitude,
            "imd_decile": site.imd_decile,
            "place": site.place,
            "pcn": site.pcn,
        }


def _result(session: StoredSession, outcome: Outcome, code: int) -> ItemResult:
    return ItemResult(
        external_id=session.details.external_id,
        outcome=outcome,
        session_id=str(session.id),
        status=session.status,
        http_status=code,
    )


def _rejected(external_id: str | None, broken: list[RuleBroken], code: int) -> ItemResult:
    return ItemResult(
        external_id=external_id,
        outcome=Outcome.REJECTED,
        errors=[{"field": b.field, "message": b.message} for b in broken],
        http_status=code,
    )


Answer = tuple[int, dict[str, Any]]


def _problem(status: int, detail: str, errors: list[dict[str, str]]) -> Answer:
    titles = {404: "Not found", 409: "Conflict", 422: "Unprocessable content"}
    return status, {
        "type": "about:blank",
        "title": titles.get(status, "Error"),
        "status": status,
        "detail": detail,
        "errors": errors,
    }


_TYPES = ("session.posted.", "session.amended.", "session.cancelled.", "sessions.posted.")


def _untagged(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    """Drop the union tag pydantic puts first: ``session.posted.data.role`` is ``data.role``."""
    out = []
    for error in errors:
        field = error["field"]
        for tag in _TYPES:
            field = field.removeprefix(tag)
        out.append({**error, "field": field})
    return out


def _single(result: ItemResult) -> Answer:
    if result.outcome is Outcome.REJECTED:
        return _problem(result.http_status, "The session was not accepted.", result.errors)
    return result.http_status, result.model_dump(mode="json", exclude={"errors"})


async def receive(
    conn: Conn,
    *,
    organisation: Organisation,
    body: bytes,
    emitter: Emitter,
    now: datetime | None = None,
) -> Answer:
    """Validate and apply one delivery; return the HTTP status and body to answer with.

    Runs inside the caller's transaction, so a refused single post stores nothing.
    """
    try:
        hook = _LOOSE.validate_json(body)
    except ValidationError as exc:
        return _problem(422, "The delivery has invalid fields.", _untagged(field_errors(exc)))
    intake = Intake(conn, organisation, emitter, now or datetime.now(UTC))
    if isinstance(hook, _SessionsPostedLoose):
        return 200, await _batch(intake, hook.data.sessions)
    if isinstance(hook, SessionCancelledHook):
        return _single(await intake.cancel(hook.data))
    must_exist = isinstance(hook, SessionAmendedHook)
    return _single(await intake.post(hook.data.to_domain(), prefix="data", must_exist=must_exist))


async def _batch(intake: Intake, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Answer every session of a batch; new sessions are stored in bulk.

    Set-based because a month of a rota is hundreds of sessions: one query for their
    sites, one for those already posted, one insert for the new ones and one for their
    events, instead of five round trips each. Re-posted ones (amendments, mostly
    unchanged) take the one-by-one path, each in a savepoint.
    """
    results: dict[int, ItemResult] = {}
    valid: list[tuple[int, NewSession]] = []
    seen: set[str] = set()
    for index, raw in enumerate(items):
        prefix = f"data.sessions.{index}"
        try:
            parsed = SessionIn.model_validate(raw)
        except ValidationError as exc:
            errors = [{**e, "field": f"{prefix}.{e['field']}"} for e in field_errors(exc)]
            given = raw.get("external_id")
            # Echoed back, so it must be storable in the receipt (no NUL).
            external = given.replace("\x00", "\ufffd") if isinstance(given, str) else None
            results[index] = ItemResult(
                external_id=external, outcome=Outcome.REJECTED, errors=errors
            )
            continue
        if parsed.external_id in seen:
            repeat = RuleBroken(f"{prefix}.external_id", "appears twice in this batch")
            results[index] = _rejected(parsed.external_id, [repeat], 422)
            continue
        seen.add(parsed.external_id)
        valid.append(
            (index, replace(parsed.to_domain(), site=parsed.site or intake.poster.ods_code))
        )

    poster = intake.poster
    codes = sorted({s.site for _, s in valid if s.site and s.site != poster.ods_code})
    sites = {poster.ods_code: poster, **(await repository.organisations(intake.conn, codes))}
    existing = await repository.sessions_by_external_ids(
        intake.conn, organisation=poster.ods_code, external_ids=[s.external_id for _, s in valid]
    )
    fresh: list[tuple[int, StoredSession]] = []
    for index, session in valid:
        prefix = f"data.sessions.{index}"
        assert session.site is not None
        broken = check_session(session, now=intake.now, prefix=prefix)
        site_problem = check_site(poster, sites.get(session.site), session.site)
        if site_problem:
            broken.append(replace(site_problem, field=f"{prefix}.site"))
        if broken:
            results[index] = _rejected(session.external_id, broken, 422)
        elif session.external_id in existing:
            async with intake.conn.transaction():
                results[index] = await intake.post(session, prefix=prefix, must_exist=True)
        else:
            stored = StoredSession(
                new_session_id(), poster.ods_code, session, SessionStatus.OPEN, None
            )
            fresh.append((index, stored))

    inserted = await repository.insert_sessions(intake.conn, [s for _, s in fresh])
    events: list[tuple[BaseModel, str]] = []
    for index, stored in fresh:
        if stored.id in inserted:
            site = sites[stored.details.site or poster.ods_code]
            events.append((SessionPosted(**intake.state(stored, site)), poster.region))
            results[index] = _result(stored, Outcome.CREATED, 202)
        else:
            raced = RuleBroken(f"data.sessions.{index}.external_id", "posted meanwhile; send again")
            results[index] = _rejected(stored.details.external_id, [raced], 409)
    await intake.emitter.emit_many(intake.conn, events)

    answers = [{"index": i, **results[i].model_dump(mode="json")} for i in range(len(items))]
    accepted = sum(a["outcome"] != Outcome.REJECTED for a in answers)
    return {"accepted": accepted, "rejected": len(answers) - accepted, "results": answers}
