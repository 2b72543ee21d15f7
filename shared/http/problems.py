"""RFC 9457 problem details: every refusal names what was wrong and why."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorised",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    410: "Gone",
    413: "Request body too large",
    422: "Unprocessable content",
    429: "Too many requests",
}


class Problem(Exception):  # noqa: N818 - the RFC's own name for the thing
    """Raise from a route to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


def problem_response(
    status: int, detail: str, *, errors: list[dict[str, str]] | None = None, instance: str = ""
) -> JSONResponse:
    """Build the problem+json response for ``status``."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def field_errors(exc: ValidationError | RequestValidationError) -> list[dict[str, str]]:
    """One entry per bad field: a dotted pointer to it and the rule it broke."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        out.append({"field": ".".join(loc) or "(body)", "message": str(err.get("msg", ""))})
    return out


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error the app returns a problem+json body."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        response = problem_response(
            exc.status, exc.detail, errors=exc.errors, instance=request.url.path
        )
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            422,
            "The request has invalid fields.",
            errors=field_errors(exc),
            instance=request.url.path,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem_response(exc.status_code, str(exc.detail), instance=request.url.path)
        # The exception's own headers stay: a 405's Allow (RFC 9110 requires it), a 401's
        # WWW-Authenticate.
        response.headers.update(exc.headers or {})
        return response
