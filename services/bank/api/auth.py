"""Sign-in: a one-time invite code becomes a session (httpOnly cookie for the app,
bearer token for the API). Tokens and codes are stored only as hashes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from services.bank import repository
from services.bank.api import SIGNED_IN, WITH_BODY, limited, problem
from services.bank.domain import SESSION_TTL, Clinician, hash_token, new_token
from shared.http.problems import Problem
from shared.http.ratelimit import RateLimiter, client_key, retry_after_header
from shared.runtime import Runtime
from shared.validation import Text

router = APIRouter(prefix="/api/auth", tags=["sign-in"])
COOKIE = "fs_session"
_bearer = HTTPBearer(auto_error=False, description="Your session token.")


def runtime_of(request: Request) -> Runtime:
    """The service's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def signed_in(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    fs_session: Annotated[str | None, Cookie(include_in_schema=False)] = None,
) -> Clinician:
    """The clinician whose session came with the request (header or cookie); 401 otherwise."""
    token = credentials.credentials if credentials else fs_session
    if not token:
        raise Problem(401, "Sign in first.")
    clinician = await repository.clinician_by_session(
        runtime_of(request).pool, hash_token(token), now=datetime.now(UTC)
    )
    if clinician is None:
        raise Problem(401, "Your session has ended or is not valid; sign in again.")
    return clinician


Me = Annotated[Clinician, Depends(signed_in)]


class CodeIn(BaseModel):
    """The code from your invitation."""

    model_config = ConfigDict(extra="forbid")

    code: Text = Field(min_length=4, max_length=64, description="One-time sign-in code.")


class SignedIn(BaseModel):
    """Who is signed in, and a token for API clients (the app uses the cookie)."""

    token: str = Field(description="Bearer token for the API; keep it secret.")
    clinician_id: str = Field(description="Your id.")
    display_name: str = Field(description="Your name.")


@router.post(
    "/exchange",
    summary="Exchange a one-time invite code for a session",
    responses={
        **WITH_BODY,
        401: problem("Unknown, used or expired code."),
        429: limited("Too many attempts."),
    },
)
async def exchange(request: Request, response: Response, body: CodeIn) -> SignedIn:
    """Spend the code once; set the session cookie and return the token."""
    limiter: RateLimiter = request.app.state.signin_limiter
    # The connection's own address, or the client a configured trusted proxy named.
    if wait := limiter.take(client_key(request)):
        retry = retry_after_header(wait)
        raise Problem(
            429,
            f"Too many sign-in attempts; try again in {retry} s.",
            headers={"Retry-After": retry},
        )
    now = datetime.now(UTC)
    pool = runtime_of(request).pool
    async with pool.acquire() as conn, conn.transaction():
        clinician_id = await repository.use_invite(
            conn, hash_token(body.code.strip().upper()), now=now
        )
        if clinician_id is None:
            raise Problem(
                401,
                "That code is not valid: it may be mistyped, already used or expired.",
                errors=[{"field": "code", "message": "not a live invite code"}],
            )
        token = new_token()
        await repository.add_session(
            conn,
            token_hash=hash_token(token),
            clinician_id=clinician_id,
            expires_at=now + SESSION_TTL,
        )
        clinician = await repository.clinician(conn, clinician_id)
    assert clinician is not None
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return SignedIn(
        token=token, clinician_id=str(clinician.id), display_name=clinician.display_name
    )


@router.post("/signout", summary="End this session", status_code=204, responses=SIGNED_IN)
async def signout(
    request: Request,
    response: Response,
    me: Me,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    fs_session: Annotated[str | None, Cookie(include_in_schema=False)] = None,
) -> None:
    """Forget this session everywhere."""
    token = credentials.credentials if credentials else fs_session
    assert token is not None
    await repository.end_session(runtime_of(request).pool, hash_token(token))
    response.delete_cookie(COOKIE, path="/")
    del me
