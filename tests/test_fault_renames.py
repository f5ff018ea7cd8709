"""Renames while the backfill runs: every file ends with a final outcome at its current path
(real `up`: watcher, nats-server, analyzers, persister, SQLite)."""

from __future__ import annotations

import json
import os

from sqlalchemy import create_engine, text

from tests.audio import write_tones
from tests.procs import run_cli, service, stop_all
from tests.waiting import wait_until

SR = 22050


def test_files_renamed_while_queued_or_analysed_end_fingerprinted_at_their_new_paths(tmp_path):
    library, data = tmp_path / "music", tmp_path / "data"
    names = [f"t{i:02d}.flac" for i in range(12)]
    write_tones(library, names, SR, base_hz=220, step_hz=37, seed=11, duration_s=8.0)
    env = dict(os.environ, TRACKPRINT_SERVER_BIN="/nonexistent")  # the slower engine: renames land mid-analysis
    up = service("up", str(library), "--data-dir", str(data), "--analyzers", "1", log=tmp_path / "up.log", env=env)

    def report():
        return json.loads(run_cli("status", "--json", "--data-dir", str(data), timeout=60).stdout)

    try:
        wait_until(lambda: report()["bus"]["streams"]["TRACKPRINT_EVENTS"]["messages"], 120, 0.2,
                   "the backlog published", until=lambda n: n >= len(names), ignore=(KeyError, TypeError, ValueError))
        for name in names[::2]:  # half of them, while queued or being analysed
            os.rename(library / name, library / f"renamed-{name}")
        current = {str(library / n) for n in os.listdir(library)}

        def settled():
            r = report()["database"]
            return r.get("active"), r.get("pending")

        wait_until(settled, 240, 1.0, "every current file fingerprinted and nothing pending",
                   until=lambda v: v == (len(names), 0), ignore=(KeyError, ValueError))
    finally:
        stop_all([up])
    engine = create_engine(f"sqlite:///{data / 'trackprint.db'}")
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT path, state FROM tracks")).all())
    engine.dispose()
    assert {p for p, state in rows.items() if state == "active"} == current
    assert all(rows[p] == "active" for p in current)  # never failed / not_found at a valid path
    assert all(state == "deleted" for p, state in rows.items() if p not in current)  # old paths: tombstones
