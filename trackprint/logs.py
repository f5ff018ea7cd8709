"""Logging setup shared by every command: readable text, or one JSON object per line.

Messages follow one shape everywhere: ``PATH: STAGE: CODE: reason`` for a
file's problem, so a person can grep a path and a machine can split it. With
``--log-format json`` (or ``TRACKPRINT_LOG_FORMAT=json``) each record is
``{"ts", "level", "logger", "pid", "message"}`` plus ``path``/``stage``/
``code`` when the message has that shape.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

CHATTY = ("httpx", "httpcore", "alembic", "asyncio")  # at INFO only with -vv (DEBUG)

_FILE_PROBLEM = re.compile(r"^(?P<path>/[^:]+): (?P<stage>[a-z_]+): (?P<code>[a-z_]+): ")


def timestamp(created: float) -> str:
    """The one timestamp format of every log line: ISO 8601, UTC, milliseconds (2026-11-29T22:01:11.274Z)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created * 1000) % 1000:03d}Z"


STAMPED = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
# nats-server's own stamp: "[PID] 2026/11/30 04:21:31.761895 [INF] message" (UTC: `up` sets logtime_utc)
_NATS_LINE = re.compile(rb"^\[(\d+)\] (\d{4})/(\d\d)/(\d\d) (\d\d:\d\d:\d\d)\.(\d{3})\d* \[([A-Z]{3})\] ?")
_NATS_LEVELS = {b"INF": b"INFO", b"WRN": b"WARNING", b"ERR": b"ERROR", b"FTL": b"CRITICAL", b"DBG": b"DEBUG",
                b"TRC": b"TRACE"}


def stamp_child_line(line: bytes, received: float) -> bytes:
    """One line of a child's output as ``up`` writes it into DATA/logs/NAME.log, so that every line of every
    log starts with :func:`timestamp`'s format:

    - already stamped (the Python services' text lines, the Rust server's) or a JSON record
      (``--log-format json``): unchanged;
    - nats-server's ``[PID] YYYY/MM/DD HH:MM:SS.micros [INF] message``: re-stamped from its own (UTC)
      time, ``TS INFO nats-server[PID]: message``;
    - anything else (a traceback's continuation lines, a panic, a plain print): ``received`` (when ``up``
      read it) in front, so a grep by time finds it too.
    """
    if not line.strip() or STAMPED.match(line) or line.startswith(b"{"):
        return line
    nats = _NATS_LINE.match(line)
    if nats:
        pid, year, month, day, clock, millis, level = nats.groups()
        return (b"%s-%s-%sT%s.%sZ %s nats-server[%s]: " % (year, month, day, clock, millis,
                                                            _NATS_LEVELS.get(level, level), pid)) + line[nats.end():]
    return timestamp(received).encode() + b" " + line


class TextFormatter(logging.Formatter):
    """``TS LEVEL logger: message`` with :func:`timestamp`, the same instant format as the JSON lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return timestamp(record.created)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": message,
        }
        match = _FILE_PROBLEM.match(message)
        if match:
            out.update(match.groupdict())
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(verbosity: int = 0, fmt: str | None = None, *, base_level: int = logging.WARNING) -> None:
    """Log to stderr as text or JSON. ``base_level``: WARNING for commands a person runs, INFO for the
    long-running services (their start-up and progress lines are information, logged at INFO); each ``-v``
    goes one level lower."""
    fmt = fmt or os.environ.get("TRACKPRINT_LOG_FORMAT", "text")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = max(logging.DEBUG, base_level - 10 * verbosity)
    root.setLevel(level)
    for name in CHATTY:  # a line per HTTP request or per migration plugin is not information for a person
        logging.getLogger(name).setLevel(logging.WARNING if level > logging.DEBUG else logging.DEBUG)
