"""`up`'s log files (DATA/logs/*.log) as a person greps them: one timestamp format in every file (ISO 8601,
UTC, milliseconds, Z: the Python services', the Rust server's and nats-server's lines alike), no colour codes,
and a clean start logged at INFO with no warning.

The run is real (`trackprint up` with the real nats-server, trackprint-server and services) under a time zone
far from UTC, so a local-time stamp would show. The supervisor re-stamps what a child writes without the
format (nats-server's own "[PID] YYYY/MM/DD ..." lines; a traceback's continuation lines or a plain print get
the time `up` read them), so no line is excepted.
"""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest

from tests.audio import write_tones
from tests.procs import run_cli
from trackprint.binaries import free_port
from trackprint.logs import stamp_child_line

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
LINE = re.compile(r"^(?P<ts>\S+) +(?P<level>[A-Z]+) (?P<who>[^:]+): (?P<message>.*)$")


def test_child_lines_are_restamped_into_the_one_format():
    at = dt.datetime(2026, 11, 30, 4, 21, 31, 5000, tzinfo=dt.timezone.utc).timestamp()
    nats = b"[4711] 2026/11/30 04:21:31.761895 [WRN] JetStream is slow\n"
    assert stamp_child_line(nats, at) == b"2026-11-30T04:21:31.761Z WARNING nats-server[4711]: JetStream is slow\n"
    python = b"2026-11-30T04:21:26.250Z INFO trackprint.watcher: started\n"
    assert stamp_child_line(python, at) == python  # already in the format
    record = b'{"ts": "2026-11-30T04:21:26.250Z", "level": "info"}\n'
    assert stamp_child_line(record, at) == record  # --log-format json: the record carries its ts
    continuation = b'  File "x.py", line 3, in f\n'  # a traceback's: the time `up` read it in front
    assert stamp_child_line(continuation, at) == b"2026-11-30T04:21:31.005Z " + continuation
    assert stamp_child_line(b"\n", at) == b"\n"


@pytest.mark.slow
def test_every_line_of_every_up_log_has_one_utc_timestamp_format_info_level_and_no_colour(tmp_path):
    library, data = tmp_path / "music", tmp_path / "data"
    write_tones(library, ["a.flac", "b.flac"], 22050, base_hz=300, step_hz=71, seed=5, duration_s=1.0)
    env = dict(os.environ, TZ="Asia/Kolkata")  # UTC+05:30: local time would be off by hours
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    out = run_cli("up", str(library), "--data-dir", str(data), "--analyzers", "1", "--web-port", str(free_port()),
                  "--exit-when-idle", env=env, timeout=240)
    after = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "stopped cleanly" in out.stdout
    logs = {path.name: path.read_bytes() for path in sorted((data / "logs").glob("*.log"))}
    assert set(logs) == {"nats-server.log", "rust-server.log", "persister.log", "analyzer-1.log", "watcher.log",
                         "web.log"}, sorted(logs)
    assert b"\x1b[" not in logs["rust-server.log"]
    levels: dict[str, set[str]] = {}
    for name, raw in logs.items():
        lines = [line for line in raw.decode().splitlines() if line.strip()]
        assert lines, f"{name} is empty"
        for line in lines:
            assert STAMP.match(line), f"{name}: {line!r}"
            stamp = dt.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
            assert before <= stamp <= after, f"{name}: not UTC: {line!r}"
            parsed = LINE.match(line)
            if parsed:
                levels.setdefault(parsed["level"], set()).add(f"{name}: {line}")
    # a clean start and stop: information at INFO, nothing at WARNING or worse
    assert not {level: lines for level, lines in levels.items() if level in {"WARNING", "ERROR", "CRITICAL"}}
    info = "\n".join(sorted(levels.get("INFO", ())))
    for name, start_up in [("nats-server.log", "nats-server["), ("nats-server.log", "Server is ready"),
                           ("rust-server.log", "trackprint-server listening"),
                           ("persister.log", "persister running"), ("analyzer-1.log", "workers, Rust http://"),
                           ("watcher.log", "start-up scan complete")]:
        assert any(line.startswith(name) and start_up in line for line in levels.get("INFO", ())), (start_up, info)
