"""structlog, configured once per process.

Console output on a terminal, one JSON object per line otherwise; event and
correlation ids are bound through contextvars so every line of a handled message
carries them without being passed around.

Two things make failures readable rather than invisible or overwhelming:

* in JSON mode an exception becomes an ``exception`` object with its type, message
  and traceback (without this structlog writes ``"exc_info": true`` and nothing else);
* repeated warnings and errors are rate-limited per logger, event text and exception
  type, and the first line after a quiet interval says how many were ``suppressed``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, ExcInfo, WrappedLogger

_LEVELS = logging.getLevelNamesMapping()


def _type_name(exc_type: type[BaseException]) -> str:
    module = exc_type.__module__
    return exc_type.__qualname__ if module == "builtins" else f"{module}.{exc_type.__qualname__}"


def _exception_fields(exc_info: ExcInfo) -> dict[str, str]:
    """Type, message and traceback text: greppable, and no frame locals (they may hold secrets).

    structlog's own ``dict_tracebacks`` would include locals by default and splits
    the traceback into frame dicts, which is harder to read in a log viewer.
    """
    exc_type, exc, tb = exc_info
    return {
        "type": _type_name(exc_type),
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc_type, exc, tb)),
    }


def _exc_type_of(exc_info: Any) -> str:
    """The exception type behind an ``exc_info`` value, in any of the forms structlog accepts."""
    if isinstance(exc_info, BaseException):
        return _type_name(type(exc_info))
    if isinstance(exc_info, tuple) and exc_info and isinstance(exc_info[0], type):
        return _type_name(exc_info[0])
    if exc_info is True and (current := sys.exc_info()[0]) is not None:
        return _type_name(current)
    return ""


@dataclass(slots=True)
class _Window:
    start: float
    seen: int = 0
    dropped: int = 0


class RepeatLimiter:
    """structlog processor: let ``limit`` identical warnings/errors through per ``interval`` s.

    Hand-written because neither structlog nor the stdlib has a rate limiter, and a
    broker outage otherwise logs the same error thousands of times a second. Records
    are identical when logger name, event text and exception type match. Dropped
    records are counted, and the next record of that key after the interval carries
    ``suppressed=<count>``, so nothing disappears without a trace (a key that never
    recurs, or is evicted, loses its count). Below WARNING nothing is limited.

    It runs among the ``ProcessorFormatter`` processors so structlog and stdlib
    records (aiokafka, uvicorn) share one budget; the handler serialises calls under
    its lock, and ``_DroppingHandler`` turns the ``DropEvent`` into "write nothing".
    Memory is bounded: past ``max_keys`` the least recently seen key is forgotten.
    """

    def __init__(
        self,
        limit: int = 5,
        interval: float = 10.0,
        max_keys: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._windows: OrderedDict[tuple[str, str, str], _Window] = OrderedDict()

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        if _LEVELS.get(str(event_dict.get("level", "")).upper(), 0) < logging.WARNING:
            return event_dict
        key = (
            str(event_dict.get("logger", "")),
            str(event_dict.get("event", "")),
            _exc_type_of(event_dict.get("exc_info")),
        )
        now = self._clock()
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self._max_keys:
                self._windows.popitem(last=False)
            window = self._windows[key] = _Window(now)
        else:
            self._windows.move_to_end(key)
            if now - window.start >= self._interval:
                if window.dropped:
                    event_dict["suppressed"] = window.dropped
                window.start, window.seen, window.dropped = now, 0, 0
        window.seen += 1
        if window.seen > self._limit:
            window.dropped += 1
            raise structlog.DropEvent
        return event_dict


class _DroppingHandler(logging.StreamHandler[TextIO]):
    """A stream handler whose formatter may drop a record by raising ``structlog.DropEvent``.

    structlog only catches ``DropEvent`` in its own loggers' processor chains; raised
    inside ``ProcessorFormatter`` (where stdlib records are processed too) it would
    escape ``logging`` into the caller, so it is caught here and nothing is written.
    """

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(structlog.DropEvent):
            super().emit(record)


def configure_logging(
    service: str,
    fmt: Literal["auto", "console", "json"] = "auto",
    level: int = logging.INFO,
    *,
    repeat_limit: int = 5,
    repeat_interval: float = 10.0,
    repeat_max_keys: int = 1000,
    clock: Callable[[], float] = time.monotonic,
) -> structlog.stdlib.BoundLogger:
    """Set up structlog and the stdlib root logger; return the service's logger.

    ``repeat_*`` bound identical warnings/errors (see ``RepeatLimiter``); ``clock`` is
    injectable for tests.
    """
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    # The console renderer prints exceptions itself (prettily); JSON needs them as data.
    renderer: list[structlog.types.Processor] = (
        [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
        if use_console
        else [
            structlog.processors.ExceptionRenderer(_exception_fields),
            structlog.processors.JSONRenderer(),
        ]
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Library logs (uvicorn, aiokafka, faststream) go through the same limiter and renderer.
    limiter = RepeatLimiter(repeat_limit, repeat_interval, repeat_max_keys, clock)
    handler = _DroppingHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                limiter,
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka is chatty about group membership at INFO; warnings are what matter.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(service)
    return logger
