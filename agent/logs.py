"""Log output of both programs: one JSON object per line, or plain text (``logFormat``).

:func:`setup_logging` runs once, as soon as the settings are read, and routes everything a
process writes about itself through one handler on stderr:

- ``json`` (the default): every line is one JSON object -- ``ts`` (UTC, milliseconds),
  ``level``, ``logger``, ``msg``, any ``extra=`` fields, and ``exc`` (the whole traceback
  as one string) -- so a multi-line traceback never splits into lines a log pipeline
  cannot parse;
- ``text``: ``time level logger: message`` for people at a terminal.

What would otherwise bypass logging goes through it too: Python warnings
(``logging.captureWarnings``), an exception nothing caught in a thread
(``threading.excepthook``) and in the main thread (``sys.excepthook``).  The HTTP client's
per-request lines (``httpx2`` logs every API call at INFO) are kept for ``debug`` only (the
request counts are in ``ironlb_kube_api_requests_total``); library internals'
traces (``httpcore2``: every socket and TLS step; ``pyroute2``: every netlink message)
never show, even at ``debug``.

Before the settings are read the format is not known yet: a settings error is one plain
line per problem on stderr, and exit code 2.  After, a fatal error is one log record
(:func:`fatal`), so a JSON log pipeline sees it as a JSON object too.

Nothing secret is logged: the membership keys and BGP passwords are read from files and
never formatted into a message (tests/test_metrics_logs.py runs both programs with both
and searches their output).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from types import TracebackType
from typing import Any

log = logging.getLogger("agent")

#: Loggers of libraries that log every request at INFO: raised to WARNING unless ``debug``.
CHATTY = ("httpx2",)
#: Loggers of library internals (socket, TLS and netlink traces): WARNING always.
TRACE = ("httpcore2", "pyroute2")

_STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra=`` fields are kept as keys."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in record.__dict__.items() if k not in _STD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str)


_configured = False


def setup_logging(level: str = "info", log_format: str = "json") -> None:
    """Configure the root logger once (JSON lines for machines, plain text for humans), on stderr."""
    global _configured
    _configured = True
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    for name in TRACE:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    threading.excepthook = _thread_exception
    sys.excepthook = _uncaught


def fatal(program: str, message: str) -> None:
    """Report why the program exits: a log record once logging is set up, else a plain line."""
    if _configured:
        log.critical("%s", message)
    else:
        print(f"{program}: {message}", file=sys.stderr)


def _thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "unknown"
    info = (args.exc_type, args.exc_value, args.exc_traceback)
    log.error("thread %s stopped: uncaught %s", name, args.exc_type.__name__, exc_info=info)  # type: ignore[arg-type]


def _uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    log.critical("uncaught %s: exiting", kind.__name__, exc_info=(kind, value, tb))
