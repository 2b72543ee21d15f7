"""Sign-in for ICB viewers: a one-time invite code becomes a session cookie.

Every monitor route but these, the health checks and the API docs asks for the
session through ``SignedIn`` (JSON: 401) or ``SignedInPage`` (the page: a redirect
here); ``tests/integration/test_monitor_access.py`` finds any route that does not.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import APIKeyCookie

from services.monitor import viewers
from services.monitor.access import Viewer, same_origin
from services.monitor.settings import MonitorSettings
from shared.http.problems import PROBLEM_JSON, Problem
from shared.http.ratelimit import RateLimiter, client_key, retry_after_header
from shared.runtime import Runtime

router = APIRouter(tags=["sign-in"])
# Not the bank's name: browsers send a host's cookies to every port on it, and the bank
# and the monitor share 127.0.0.1 locally.
COOKIE = "fs_monitor_session"
_cookie = APIKeyCookie(
    name=COOKIE,
    auto_error=False,
    description="The session cookie set by signing in at /signin with an invite code.",
)
_PAGE = (Path(__file__).with_name("static") / "signin.html").read_text(encoding="utf-8")
# A code is at most 64 characters; nothing legitimate sends more than this.
_MAX_FORM_BYTES = 1024
_NO_STORE = {"Cache-Control": "no-store"}


class _SignInFirst(Exception):  # noqa: N818 - a redirect, not an error
    """The page was asked for without a live session."""


def install(app: FastAPI, settings: MonitorSettings) -> None:
    """What sign-in keeps per process: its rate limiter (per source address as the
    server saw it: ``X-Forwarded-For`` only from a trusted proxy), the session length, and the
    page's redirect to this form."""
    app.state.signin_limiter = RateLimiter(settings.signin_per_s, settings.signin_burst)
    app.state.session_ttl = timedelta(hours=settings.session_hours)
    app.state.secure_cookie = settings.secure_cookie

    @app.exception_handler(_SignInFirst)
    async def _to_signin(_request: Request, _exc: _SignInFirst) -> RedirectResponse:
        return RedirectResponse("/signin", status_code=303, headers=_NO_STORE)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _viewer(request: Request, token: str | None) -> Viewer | None:
    if not token:
        return None
    return await viewers.by_session(_runtime(request).pool, token, now=datetime.now(UTC))


async def signed_in(request: Request, token: Annotated[str | None, Depends(_cookie)]) -> Viewer:
    """The viewer whose live session came with the request; 401 otherwise."""
    viewer = await _viewer(request, token)
    if viewer is None:
        raise Problem(401, "Sign in at /signin first: no live session came with this request.")
    return viewer


async def signed_in_page(
    request: Request, token: Annotated[str | None, Depends(_cookie)]
) -> Viewer:
    """The viewer whose live session came with the request; otherwise to the form."""
    viewer = await _viewer(request, token)
    if viewer is None:
        raise _SignInFirst
    return viewer


SignedIn = Annotated[Viewer, Depends(signed_in)]
SignedInPage = Annotated[Viewer, Depends(signed_in_page)]

# How the answers are documented (OpenAPI), so a client knows each one's body.
PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {"schema": {"type": "object"}}}}
_HTML: dict[str, Any] = {"content": {"text/html": {"schema": {"type": "string"}}}}
# For routes that ask for ``SignedIn`` / ``SignedInPage``.
SIGNED_IN_ANSWERS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No live session came with the request.", **PROBLEM}
}
PAGE_ANSWERS: dict[int | str, dict[str, Any]] = {
    303: {"description": "No live session: on to the sign-in form."}
}


def _page(status: int, error: str = "", headers: dict[str, str] | None = None) -> HTMLResponse:
    page = _PAGE
    if error:
        # GOV.UK's pattern: the title says there is an error, an alert says which.
        page = page.replace("<title>", "<title>Error: ", 1).replace(
            "<!--error-->",
            f'<div class="error" role="alert"><p>{html.escape(error)}</p></div>',
            1,
        )
    return HTMLResponse(page, status_code=status, headers={**_NO_STORE, **(headers or {})})


@router.get("/signin", response_class=HTMLResponse, summary="The sign-in form")
async def signin_form() -> HTMLResponse:
    """A plain form: the invite code from ``fairshare icb invite``."""
    return _page(200)


async def _typed_code(request: Request) -> str:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise Problem(413, f"A sign-in form is at most {_MAX_FORM_BYTES} bytes.")
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
    except ValueError:
        return ""
    return (fields.get("code") or [""])[0][:64]


@router.post(
    "/signin",
    summary="Exchange a one-time invite code for a session cookie",
    # The redirect has no body; the refusals are the form again, with the error.
    response_class=RedirectResponse,
    status_code=303,
    responses={
        303: {"description": "Signed in: the cookie is set; on to the dashboard."},
        401: {"description": "Not a live code (unknown, used, expired or revoked).", **_HTML},
        403: {"description": "Posted from another site.", **_HTML},
        413: {"description": f"A form over {_MAX_FORM_BYTES} bytes.", **PROBLEM},
        429: {"description": "Too many attempts from this address; see Retry-After.", **_HTML},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["code"],
                        "properties": {"code": {"type": "string", "maxLength": 64}},
                    }
                }
            },
        }
    },
)
async def signin(request: Request) -> Response:
    """Spend the code once; set the session cookie (HttpOnly, SameSite=Strict, Secure
    over https or when so configured) and go to the dashboard. Every wrong code gets
    the same answer."""
    if not same_origin(request.headers.get("origin"), request.headers.get("host")):
        return _page(403, "This form can only be sent from the monitor's own page.")
    limiter: RateLimiter = request.app.state.signin_limiter
    # The address the connection came from: X-Forwarded-For is believed only from a
    # configured trusted proxy (services/monitor/app.py), so a spoofed one changes nothing.
    if wait := limiter.take(client_key(request)):
        retry = retry_after_header(wait)
        return _page(
            429,
            f"Too many sign-in attempts from here; try again in {retry} seconds.",
            {"Retry-After": retry},
        )
    ttl: timedelta = request.app.state.session_ttl
    signed = await viewers.sign_in(
        _runtime(request).pool, await _typed_code(request), now=datetime.now(UTC), session_ttl=ttl
    )
    if signed is None:
        return _page(
            401,
            "That code is not valid: it may be mistyped, already used, expired or withdrawn."
            " Ask your ICB's administrator for a new one.",
        )
    _, token = signed
    response = RedirectResponse("/", status_code=303, headers=_NO_STORE)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.app.state.secure_cookie or request.url.scheme == "https",
        path="/",
    )
    return response


@router.post(
    "/signout",
    summary="End this session",
    response_class=RedirectResponse,
    status_code=303,
    responses={303: {"description": "Signed out; on to the sign-in form."}},
)
async def signout(request: Request, token: Annotated[str | None, Depends(_cookie)]) -> Response:
    """Forget this browser's session (if any) and go back to the form."""
    if token:
        await viewers.end_session(_runtime(request).pool, token)
    response = RedirectResponse("/signin", status_code=303, headers=_NO_STORE)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
