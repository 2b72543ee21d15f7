"""The web hook intake use case: a verified delivery becomes a stored, published session."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from services.vacancies import repository
from services.vacancies.domain import NewSession, Organisation, check_session, new_session_id
from shared.catalogue import Profession
from shared.db.types import Conn
from shared.events import SessionPosted
from shared.http.problems import field_errors
from shared.messaging.emitter import Emitter


class SessionIn(BaseModel):
    """A vacant session as the organisation's rota system sends it."""

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=200, description="The sender's own id.")
    profession: Profession = Field(description="Profession the session needs.")
    starts_at: AwareDatetime = Field(description="Start, ISO 8601 with UTC offset.")
    ends_at: AwareDatetime = Field(description="End, ISO 8601 with UTC offset.")


class SessionPostedHook(BaseModel):
    """Body of a ``session.posted`` web hook delivery."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["session.posted"] = Field(description="Delivery type.")
    timestamp: AwareDatetime = Field(description="When the sender produced the delivery.")
    data: SessionIn


Outcome = tuple[int, dict[str, Any]]


def _problem(status: int, detail: str, errors: list[dict[str, str]]) -> Outcome:
    return status, {
        "type": "about:blank",
        "title": "Unprocessable content",
        "status": status,
        "detail": detail,
        "errors": errors,
    }


async def receive(
    conn: Conn,
    *,
    organisation: Organisation,
    body: bytes,
    emitter: Emitter,
    now: datetime | None = None,
) -> Outcome:
    """Validate and store one delivery; return the HTTP status and body to answer with.

    Runs inside the caller's transaction, so a refusal stores nothing but its receipt.
    """
    now = now or datetime.now(UTC)
    try:
        hook = SessionPostedHook.model_validate_json(body)
    except ValidationError as exc:
        return _problem(422, "The delivery has invalid fields.", field_errors(exc))
    session = NewSession(
        external_id=hook.data.external_id,
        profession=hook.data.profession,
        starts_at=hook.data.starts_at,
        ends_at=hook.data.ends_at,
    )
    broken = check_session(session, now=now)
    if broken:
        errors = [{"field": b.field, "message": b.message} for b in broken]
        return _problem(422, "The session breaks the posting rules.", errors)
    existing = await repository.session_by_external_id(
        conn, organisation=organisation.ods_code, external_id=session.external_id
    )
    if existing is not None:
        # The same external id again is the same session (amendments are a later feature).
        return 200, {
            "session_id": str(existing["id"]),
            "external_id": session.external_id,
            "status": existing["status"],
        }
    session_id = new_session_id()
    await repository.insert_session(
        conn, session_id=session_id, organisation=organisation.ods_code, session=session
    )
    await emitter.emit(
        conn,
        SessionPosted(
            session_id=session_id,
            organisation=organisation.ods_code,
            sector=organisation.sector,
            profession=session.profession,
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            latitude=organisation.latitude,
            longitude=organisation.longitude,
        ),
        region=organisation.region,
    )
    return 202, {
        "session_id": str(session_id),
        "external_id": session.external_id,
        "status": "open",
    }
