"""HTTP adapter: the signed web hook and the organisations' read API.

Thin: authenticate, limit, then hand to a use case or a repository query. The order is
the point: an organisation's budget is spent only by requests that prove they are
its own (signed, or with its API key), or anyone could use it up and lock it out.
Until a request has proved that, it is the source address that pays: each refusal
(no or bad signature or key, unknown organisation, body too large) takes from that
address's budget, and an address with none left is refused before any work is done.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.vacancies import intake, repository, timesheet_hooks
from services.vacancies.domain import Organisation, SessionStatus
from shared.catalogue import ODS_PATTERN
from shared.http.problems import PROBLEM_JSON, Problem
from shared.http.ratelimit import RateLimiter, client_key, retry_after_header
from shared.runtime import Runtime
from shared.validation import Instant

router = APIRouter()
OdsPath = Annotated[str, Path(pattern=ODS_PATTERN, description="Your ODS code.")]
_PROBLEM = {"content": {PROBLEM_JSON: {"schema": {"type": "object"}}}}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@dataclass(frozen=True)
class Limits:
    """What requests may cost, kept on ``app.state.limits``."""

    organisations: RateLimiter  # per ODS code, charged once a request is authenticated
    failures: RateLimiter  # per source address, charged by each unauthenticated refusal
    max_body_bytes: int


def _limits(request: Request) -> Limits:
    limits: Limits = request.app.state.limits
    return limits


def _too_many(detail: str, wait: float) -> Problem:
    retry = retry_after_header(wait)
    return Problem(429, f"{detail} Retry in {retry} s.", headers={"Retry-After": retry})


def _address_allowed(limits: Limits, address: str) -> None:
    """Refuse, before reading or looking anything up, an address out of failures."""
    if wait := limits.failures.wait(address):
        raise _too_many("Too many unauthenticated requests from your address.", wait)


@contextmanager
def _failures_charged(limits: Limits, address: str) -> Iterator[None]:
    """Each refusal raised inside costs the source address one of its failures."""
    try:
        yield
    except Problem:
        limits.failures.take(address)
        raise


def _organisation_allowed(limits: Limits, ods_code: str) -> None:
    """Spend one of an authenticated organisation's requests."""
    if wait := limits.organisations.take(ods_code):
        raise _too_many(f"Too many requests for {ods_code}; slow down.", wait)


_SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


async def _body(request: Request, max_body: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise Problem(413, f"The body is over the limit of {max_body} bytes.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            raise Problem(413, f"The body is over the limit of {max_body} bytes.")
    return body


def _verify(raw: bytes, headers: dict[str, str], secrets: list[str]) -> None:
    """Accept a signature by any secret valid now (old and new during a rotation)."""
    failure = "no signature"
    for secret in secrets:
        try:
            Webhook(secret).verify(raw, headers, json_parse=False)
        except WebhookVerificationError as exc:
            failure = str(exc)
        except (ValueError, UnicodeDecodeError):
            # The library raises these for a malformed signature header or a body that is
            # not UTF-8 text: neither can carry a valid signature.
            failure = "malformed signature header or body"
        else:
            return
    raise Problem(401, f"Signature could not be verified: {failure}.")


@router.post(
    "/webhooks/{ods_code}",
    summary="Post, amend or cancel sessions (Standard Webhooks signed)",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Delivery"}}},
        }
    },
    responses={
        200: {
            "description": "Amended, unchanged or cancelled; or a batch's per-session results.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        202: {
            "description": "A new session was stored and published.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        401: {
            "description": "Unknown organisation, or missing, wrong or stale signature.",
            **_PROBLEM,
        },
        403: {"description": "The organisation is deactivated.", **_PROBLEM},
        404: {
            "description": "No such session (amend or cancel) or timesheet of yours.",
            **_PROBLEM,
        },
        409: {
            "description": "The session is cancelled or already started; or the timesheet"
            " is approved already (a query), queried (an approval: answer the correction),"
            " or was corrected since the revision given.",
            **_PROBLEM,
        },
        413: {"description": "The body is too large.", **_PROBLEM},
        422: {"description": "Invalid fields, each named with the rule broken.", **_PROBLEM},
        429: {
            "description": "Too many signed requests for this organisation, or too many"
            " refused ones from your address; see Retry-After.",
            **_PROBLEM,
        },
    },
)
async def post_webhook(request: Request, ods_code: OdsPath) -> JSONResponse:
    """Verify the delivery, then apply it once, whatever retries follow."""
    runtime = _runtime(request)
    limits = _limits(request)
    address = client_key(request)
    _address_allowed(limits, address)
    with _failures_charged(limits, address):
        # An unsigned request is refused before its body is read or the database asked.
        if missing := [h for h in _SIGNATURE_HEADERS if h not in request.headers]:
            raise Problem(401, f"Signature could not be verified: no {', '.join(missing)}.")
        raw = await _body(request, limits.max_body_bytes)
    # One connection for the whole request: each pool round (acquire, reset, release)
    # costs round trips the intake benchmark could see.
    async with runtime.pool.acquire() as conn:
        with _failures_charged(limits, address):
            found = await repository.organisation_with_secrets(
                conn, ods_code, now=datetime.now(UTC)
            )
            if found is None:
                # Unknown and wrongly signed look the same: nothing to learn by probing.
                raise Problem(401, "Signature could not be verified.")
            organisation, secrets = found
            _verify(raw, dict(request.headers), secrets)
        # Signed by the organisation: from here on it is its own budget that pays.
        _organisation_allowed(limits, ods_code)
        if not organisation.active:
            raise Problem(403, "This organisation is deactivated and may not post sessions.")
        webhook_id = request.headers["webhook-id"]
        async with conn.transaction():
            prior = await repository.claim_receipt(
                conn, organisation=ods_code, webhook_id=webhook_id
            )
            if prior is not None:
                status, body = prior
            else:
                # Every refusal is decided before anything is written, so a refused post
                # stores nothing but its receipt, without a savepoint.
                status, body = await (
                    timesheet_hooks.receive
                    if timesheet_hooks.is_timesheet_delivery(raw)
                    else intake.receive
                )(conn, organisation=organisation, body=raw, emitter=runtime.emitter)
                await repository.save_receipt(
                    conn,
                    organisation=ods_code,
                    webhook_id=webhook_id,
                    status_code=status,
                    response=body,
                )
    media = PROBLEM_JSON if status >= 400 else "application/json"
    return JSONResponse(body, status_code=status, media_type=media)


_bearer = HTTPBearer(auto_error=False, description="Your organisation's API key (fsk_...).")


def hash_api_key(key: str) -> str:
    """Stored form of an API key (256-bit random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


async def _reader(
    request: Request,
    ods_code: OdsPath,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Organisation:
    limits = _limits(request)
    address = client_key(request)
    _address_allowed(limits, address)
    with _failures_charged(limits, address):
        if credentials is None:
            raise Problem(401, "Send your API key as 'Authorization: Bearer fsk_...'.")
        organisation = await repository.organisation_by_api_key(
            _runtime(request).pool, hash_api_key(credentials.credentials)
        )
        if organisation is None:
            raise Problem(401, "That API key is not valid.")
    # The key's own organisation pays, whichever path it asked for: a key holder
    # probing other organisations' paths spends its own budget, never theirs.
    _organisation_allowed(limits, organisation.ods_code)
    if organisation.ods_code != ods_code:
        raise Problem(404, "No such organisation for this key.")
    return organisation


Reader = Annotated[Organisation, Depends(_reader)]


class SessionOut(BaseModel):
    """A session as its organisation sees it."""

    session_id: uuid.UUID = Field(description="Fairshare's id.")
    external_id: str = Field(description="Your id.")
    site: str = Field(description="ODS code where it is worked.")
    role: str = Field(description="Role needed.")
    skills: list[str] = Field(description="Skills needed.")
    starts_at: datetime = Field(description="Start.")
    ends_at: datetime = Field(description="End.")
    status: SessionStatus = Field(description="open, offered, filled, unfilled or cancelled.")
    clinician_id: uuid.UUID | None = Field(description="Pseudonymous id of the booked clinician.")
    rate_pence_per_hour: int | None = Field(description="Offered pay, pence per hour.")
    urgency: str = Field(description="routine or urgent.")
    notes: str | None = Field(description="Your notes.")
    cancel_reason: str | None = Field(description="Why it was cancelled.")
    cancelled_late: bool | None = Field(description="Cancelled within 48 h of the start.")
    unmatched_why: str | None = Field(
        description="Why matching has no offer for it (open or unfilled sessions only):"
        " no_eligible_clinician, held_by_drain_guard, declined_by_all or clinicians_taken."
    )
    unmatched_detail: str | None = Field(description="That reason in plain words.")
    updated_at: datetime = Field(description="Last change.")


def _session_out(row: Any) -> SessionOut:
    without_offer = row["status"] in (SessionStatus.OPEN, SessionStatus.UNFILLED)
    return SessionOut(
        session_id=row["id"],
        external_id=row["external_id"],
        site=row["site"],
        role=row["role"],
        skills=list(row["skills"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        status=SessionStatus(row["status"]),
        clinician_id=row["clinician_id"],
        rate_pence_per_hour=row["rate_pence_per_hour"],
        urgency=row["urgency"],
        notes=row["notes"],
        cancel_reason=row["cancel_reason"],
        cancelled_late=row["cancelled_late"],
        unmatched_why=row["unmatched_why"] if without_offer else None,
        unmatched_detail=row["unmatched_detail"] if without_offer else None,
        updated_at=row["updated_at"],
    )


_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key.", **_PROBLEM},
    404: {"description": "Not yours, or no such session.", **_PROBLEM},
    422: {"description": "Invalid filter.", **_PROBLEM},
    429: {
        "description": "Too many requests with this key, or too many refused ones from"
        " your address; see Retry-After.",
        **_PROBLEM,
    },
}
READ_ERRORS = _READ_ERRORS  # the timesheet read routes answer the same way


@router.get(
    "/organisations/{ods_code}/sessions",
    summary="Your sessions, to reconcile your rota",
    responses=_READ_ERRORS,
)
async def list_sessions(
    request: Request,
    me: Reader,
    status: Annotated[SessionStatus | None, Query(description="Only this status.")] = None,
    starts_from: Annotated[
        Instant | None, Query(alias="from", description="Starting at or after.")
    ] = None,
    starts_before: Annotated[
        Instant | None, Query(alias="to", description="Starting before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 500,
) -> list[SessionOut]:
    """Sessions you posted, by start time."""
    rows = await repository.list_sessions(
        _runtime(request).pool,
        organisation=me.ods_code,
        status=status.value if status else None,
        starts_from=starts_from,
        starts_before=starts_before,
        limit=limit,
    )
    return [_session_out(r) for r in rows]


@router.get(
    "/organisations/{ods_code}/sessions/{session_id}",
    summary="One of your sessions",
    responses=_READ_ERRORS,
)
async def get_session(request: Request, me: Reader, session_id: uuid.UUID) -> SessionOut:
    """One session you posted; another organisation's is 404, exactly like a missing one."""
    row = await _runtime(request).pool.fetchrow(
        "SELECT * FROM sessions WHERE id = $1 AND organisation = $2", session_id, me.ods_code
    )
    if row is None:
        raise Problem(404, "No such session of yours.")
    return _session_out(row)
