"""``/api/status``: what ``trackprint status --json`` says, plus the backfill's progress and its failures.

The report is :func:`trackprint.status.collect` unchanged (``run``, ``instance``, ``database``, ``bus``,
``warnings``); ``progress`` is what the ``up`` console shows, as numbers:

- ``discovered``: files the watcher published (its state, DATA/watcher.sqlite; without a data directory:
  the tracks the database knows), ``settling``: files still waiting to be quiescent;
- ``persisted``: tracks with a fingerprint; ``failed`` and ``failed_by_code``: tracks whose latest analysis
  failed; ``done`` = persisted + failed; ``analysed`` = done + results on the bus not yet persisted (the
  persister consumer's waiting and in-flight messages); ``queued``: events waiting for an analyzer;
- ``engines`` and ``fallback_share`` (the Python engine's share of the fingerprints);
- ``rate_files_per_min`` and ``audio_x_realtime`` over a sliding window of :data:`RATE_WINDOW_S` seconds of
  this server's own readings (null until two readings a second apart);
- ``eta_s``: the audio still to do (the remaining files' sizes times the audio seconds per byte of the files
  done) divided by the audio rate; 0 when nothing remains, null while it cannot be measured.

Readings are cached :data:`CACHE_S` seconds, so any number of open pages costs one reading per interval.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from typing import Any

RATE_WINDOW_S = 60.0
CACHE_S = 1.5
FAILURES_SHOWN = 100


class Live:
    def __init__(self, db_url: str, nats_url: str | None, data_dir: Path | None, *, run_state=None):
        self.db_url = db_url
        self.nats_url = nats_url
        self.data_dir = data_dir
        self._run_state = run_state  # a callable giving run.json's content (it changes when `up` restarts)
        self._lock = threading.Lock()
        self._cached: tuple[float, dict] | None = None
        self.window: collections.deque[tuple[float, int, float]] = collections.deque()

    def nats(self, state: dict) -> str | None:
        return self.nats_url or state.get("nats_url")

    def report(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if self._cached and now - self._cached[0] < CACHE_S:
                return self._cached[1]
            report = self._read(now)
            self._cached = (now, report)
            return report

    def _read(self, now: float) -> dict[str, Any]:
        from trackprint.status import collect

        state = self._run_state() if self._run_state else {}
        report = collect(self.db_url, self.nats(state), state, self.data_dir)
        report["progress"], report["failures"] = self._progress(report, now)
        return report

    def _progress(self, report: dict, now: float) -> tuple[dict, dict]:
        from trackprint import bus
        from trackprint.persister.db import make_engine
        from trackprint.persister.queries import iter_failed, read_done
        from trackprint.progress import read_watcher_files

        db = report.get("database") or {}
        files = read_watcher_files(self.data_dir / "watcher.sqlite") if self.data_dir else None
        failures: dict[str, Any] = {"total": 0, "items": []}
        if "error" in db:
            return {"readable": False, "discovered": len(files) if files is not None else 0}, failures
        engine = make_engine(self.db_url, must_exist=True)
        try:
            with engine.connect() as conn:
                done = read_done(conn)
        finally:
            engine.dispose()
        items = []
        for row in iter_failed(self.db_url):
            failures["total"] += 1
            if len(items) < FAILURES_SHOWN:
                items.append({k: row.get(k) for k in ("path", "code", "stage", "message", "engine", "attempts")})
        failures["items"] = items

        persisted, failed = len(done.fingerprinted), len(done.failed)
        finished = persisted + failed
        discovered = max(len(files), finished) if files is not None else max(db.get("known", 0), finished)
        bus_report = report.get("bus") or {}
        consumers = bus_report.get("consumers") or {}

        def waiting(name: str) -> int:
            c = consumers.get(name) or {}
            return int(c.get("pending") or 0) + int(c.get("unacked") or 0)

        engines = collections.Counter(done.fingerprinted.values())
        fallback = engines.get("python", 0) / persisted if persisted else None
        watcher = next(iter((bus_report.get("watchers") or {}).values()), {}) if bus_report.get("reachable") else {}

        # rates over the sliding window of this server's readings
        self.window.append((now, finished, done.audio_s))
        while len(self.window) > 2 and now - self.window[1][0] >= RATE_WINDOW_S:
            self.window.popleft()
        t0, done0, audio0 = self.window[0]
        elapsed = now - t0
        files_rate = (finished - done0) / elapsed * 60.0 if elapsed >= 1.0 else None
        audio_rate = (done.audio_s - audio0) / elapsed if elapsed >= 1.0 else None

        settling = int(watcher.get("waiting_for_quiescence") or 0)
        remaining = sorted(files.keys() - done.fingerprinted.keys() - done.failed.keys()) if files is not None else []
        eta_s = None
        audio_left_s = None
        if files is not None and not remaining and not settling:
            eta_s, audio_left_s = 0.0, 0.0
        else:
            sizes = files or {}
            done_bytes = sum(sizes.get(p, 0) for p in done.fingerprinted)
            if done_bytes and done.audio_s:
                audio_left_s = sum(sizes.get(p, 0) for p in remaining) * done.audio_s / done_bytes
                if audio_rate and audio_rate > 0:
                    eta_s = audio_left_s / audio_rate
        progress = {
            "readable": True,
            "discovered": discovered,
            "settling": settling,
            "queued": waiting(bus.ANALYZER_CONSUMER) if bus_report.get("reachable") else None,
            "analysed": finished + (waiting(bus.PERSISTER_CONSUMER) if bus_report.get("reachable") else 0),
            "persisted": persisted,
            "failed": failed,
            "failed_by_code": dict(sorted(collections.Counter(done.failed.values()).items())),
            "done": finished,
            "percent": round(100.0 * finished / discovered, 1) if discovered else 0.0,
            "audio_done_s": round(done.audio_s, 1),
            "audio_left_s": round(audio_left_s, 1) if audio_left_s is not None else None,
            "engines": dict(sorted(engines.items())),
            "fallback_share": round(fallback, 4) if fallback is not None else None,
            "rate_files_per_min": round(files_rate, 2) if files_rate is not None else None,
            "audio_x_realtime": round(audio_rate, 2) if audio_rate is not None else None,
            "eta_s": round(eta_s, 1) if eta_s is not None else None,
            "latest": done.latest,
            "moved": int((watcher.get("published_by_kind") or {}).get("moved", 0)),
            "deleted": int((watcher.get("published_by_kind") or {}).get("removed", 0)),
        }
        return progress, failures
