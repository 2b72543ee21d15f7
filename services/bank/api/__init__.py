"""HTTP adapter of the bank: thin routes over the use cases, one module per concern.

Every refusal is an RFC 9457 problem (``shared/http/problems.py``); the OpenAPI document
says so for each status a route can answer, so that a client generated from it, and the
schemathesis test that checks every answer against it, know the body of each.
"""

from __future__ import annotations

from typing import Any

from shared.http.problems import PROBLEM_JSON

Responses = dict[int | str, dict[str, Any]]

# What problem_response() writes: the RFC's members, and `errors` naming each field.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def problem(description: str) -> dict[str, Any]:
    """An error answer's documentation: what it means, and its problem+json body."""
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}


def limited(description: str) -> dict[str, Any]:
    """A 429's documentation: a problem, and the Retry-After header saying how long to wait."""
    return {
        **problem(description),
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        },
    }


# Given to every router whose routes need a session (``auth.signed_in``).
SIGNED_IN: Responses = {401: problem("No session came with the request, or it has ended.")}
# A route with parameters (path, query): FastAPI's own 422 says application/json, but
# the bank answers problem+json, so each such route documents this one instead.
INVALID: Responses = {422: problem("Invalid parameters or fields, each named with its rule.")}
# A route with a JSON body: one that is not UTF-8 text can't be parsed at all.
WITH_BODY: Responses = {
    400: problem("The body could not be read as JSON (it is not UTF-8 text)."),
    **INVALID,
}
