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

_FILE_PROBLEM = re.compile(r"^(?P<path>/[^:]+): (?P<stage>[a-z_]+): (?P<code>[a-z_]+): ")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
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


def configure(verbosity: int = 0, fmt: str | None = None) -> None:
    fmt = fmt or os.environ.get("TRACKPRINT_LOG_FORMAT", "text")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING - 10 * min(verbosity, 2))
