"""Logging: exceptions are rendered in full in JSON, and repeated errors are rate-limited."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import pytest
import structlog

from shared.logging import configure_logging


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def _configured(fmt: Literal["console", "json"], **limits: Any) -> Iterator[None]:
    """configure_logging for the body of a test, then put logging back as it was.

    Restoring inside the test (not in a fixture teardown) matters: pytest attaches
    its own capture handlers per test phase and removes them at the phase's end.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("aiokafka", "uvicorn.access")}
    configure_logging("svc", fmt, **limits)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, lvl in quiet.items():
            logging.getLogger(name).setLevel(lvl)
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()


def _json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]


def _raise_boom() -> None:
    raise ValueError("boom 42")


def _via_structlog(event: str) -> None:
    structlog.get_logger("fairshare.test").error(event)


def _via_stdlib(event: str) -> None:
    logging.getLogger("somelib.test").error(event)


@pytest.mark.parametrize(
    "log_exception",
    [
        lambda: structlog.get_logger("fairshare.test").exception("handler failed"),
        lambda: logging.getLogger("aiokafka.test").exception("handler failed"),
    ],
    ids=["structlog", "stdlib"],
)
def test_json_exception_has_type_message_and_traceback(
    capsys: pytest.CaptureFixture[str], log_exception: Callable[[], None]
) -> None:
    """In JSON mode an exception logged through structlog or stdlib logging becomes one
    JSON line whose ``exception`` object carries the type, message and traceback text,
    and no bare ``"exc_info": true`` is left behind."""
    with _configured("json"):
        try:
            _raise_boom()
        except ValueError:
            log_exception()

    [line] = _json_lines(capsys)
    assert line["event"] == "handler failed"
    assert line["level"] == "error"
    assert "exc_info" not in line
    exc = line["exception"]
    assert exc["type"] == "ValueError"
    assert exc["message"] == "boom 42"
    assert exc["traceback"].startswith("Traceback (most recent call last):")
    assert "in _raise_boom" in exc["traceback"]
    assert exc["traceback"].rstrip().endswith("ValueError: boom 42")


def test_console_keeps_structlog_exception_rendering(capsys: pytest.CaptureFixture[str]) -> None:
    """In console mode the exception is still printed by structlog's console renderer
    (a readable traceback), not as a JSON ``exception`` object."""
    with _configured("console"):
        try:
            _raise_boom()
        except ValueError:
            structlog.get_logger("fairshare.test").exception("handler failed")

    err = capsys.readouterr().err
    assert "handler failed" in err
    assert "ValueError" in err
    assert "boom 42" in err
    assert '"exception"' not in err


@pytest.mark.parametrize("log_error", [_via_structlog, _via_stdlib], ids=["structlog", "stdlib"])
def test_error_flood_is_limited_and_reports_suppressed_count(
    capsys: pytest.CaptureFixture[str], log_error: Callable[[str], None]
) -> None:
    """1,000 identical errors in a tight loop print only the first 5; once the interval
    has passed, the next such error is printed with ``suppressed`` = the 995 dropped."""
    clock = FakeClock()
    with _configured("json", repeat_limit=5, repeat_interval=10.0, clock=clock):
        for _ in range(1000):
            log_error("broker unreachable")
        flood = _json_lines(capsys)

        clock.now += 10.0
        log_error("broker unreachable")
        after = _json_lines(capsys)

    assert len(flood) == 5
    assert all("suppressed" not in line for line in flood)
    assert len(after) == 1
    assert after[0]["event"] == "broker unreachable"
    assert after[0]["suppressed"] == 995


def test_limit_is_per_message_logger_and_exception_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Records differing in event text, logger or exception type have their own
    budgets: a flood of one never suppresses another."""
    with _configured("json", repeat_limit=5, clock=FakeClock()):
        log = structlog.get_logger("fairshare.test")
        for _ in range(100):
            log.error("first failure")
            log.error("second failure")
            logging.getLogger("somelib.test").error("first failure")
            for exc in (ValueError("x"), KeyError("x")):
                log.error("failed with", exc_info=exc)

    counts: dict[tuple[str, str, str], int] = {}
    for line in _json_lines(capsys):
        key = (line["logger"], line["event"], line.get("exception", {}).get("type", ""))
        counts[key] = counts.get(key, 0) + 1
    assert counts == {
        ("fairshare.test", "first failure", ""): 5,
        ("fairshare.test", "second failure", ""): 5,
        ("somelib.test", "first failure", ""): 5,
        ("fairshare.test", "failed with", "ValueError"): 5,
        ("fairshare.test", "failed with", "KeyError"): 5,
    }


def test_info_is_never_limited(capsys: pytest.CaptureFixture[str]) -> None:
    """Below WARNING nothing is rate-limited: 1,000 identical info lines all appear,
    from structlog and stdlib loggers alike."""
    with _configured("json", repeat_limit=5, clock=FakeClock()):
        for _ in range(1000):
            structlog.get_logger("fairshare.test").info("tick")
            logging.getLogger("somelib.test").info("tick")

    lines = _json_lines(capsys)
    assert len(lines) == 2000
    assert all("suppressed" not in line for line in lines)
