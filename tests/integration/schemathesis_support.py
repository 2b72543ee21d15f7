"""What the schemathesis tests of every service share: drawing cases with a fixed seed,
sending them exactly as schemathesis would, and describing a failure."""

from __future__ import annotations

import traceback
import zlib
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.strategies import SearchStrategy
from schemathesis import Case

MIN_REQUESTS = 1000


def draw(strategy: SearchStrategy[Case[Any]], examples: int, name: str) -> list[Case[Any]]:
    """Generate up to ``examples`` cases; the seed is fixed per batch, so CI repeats it."""
    drawn: list[Case[Any]] = []

    @seed(zlib.crc32(name.encode()))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(case: Case[Any]) -> None:
        drawn.append(case)

    collect()
    return drawn


def prepare(case: Case[Any], base_url: str) -> tuple[str, str, dict[str, str], bytes]:
    """Method, URL, headers and body bytes exactly as schemathesis' transport sends them."""
    prepared = requests.Request(**case.as_transport_kwargs(base_url=base_url)).prepare()
    raw = prepared.body
    if raw is None:
        body = b""
    elif isinstance(raw, str):
        body = raw.encode()
    elif isinstance(raw, bytes):
        body = raw
    else:
        msg = f"unexpected streamed body {type(raw)}"
        raise TypeError(msg)
    headers = {
        k: v if isinstance(v, str) else v.decode()
        for k, v in prepared.headers.items()
        if k.lower() != "content-length"
    }
    return str(prepared.method), str(prepared.url), headers, body


def describe(method: str, url: str, headers: dict[str, str], body: bytes) -> str:
    """The request for a failure report, without its credentials."""
    shown = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
    return f"{method} {url}\n  headers: {shown}\n  body: {body[:2000]!r}"


def where(exc: BaseException) -> str:
    """The innermost frame of the service's own code that the exception passed through."""
    frames = [
        "/".join(frame.filename.split("/")[-3:]) + f":{frame.lineno} {frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)
        if "/services/" in frame.filename or "/shared/" in frame.filename
    ]
    return frames[-1] if frames else "?"
