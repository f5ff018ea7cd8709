"""Phase "health": what `trackprint status` and Prometheus know about this watcher.

Every ``REPORT_EVERY_S`` the health record (offline roots and why, the
inotify limits and overflows, counts, the pid and whether the start-up scan
is complete) is put in the ``trackprint_status`` KV bucket under
``watcher.<host>``, so `trackprint status` on any host shows it through NATS,
and ``up --exit-when-idle`` knows when its own watcher (by pid) has published
everything its scan found.
A failed report is only logged at debug level: health reporting must never
stop the watching.
"""

from __future__ import annotations

import json
import logging

from trackprint import bus

log = logging.getLogger("trackprint.watcher")

REPORT_EVERY_S = 5.0

try:
    from prometheus_client import Counter, Gauge

    M_PUBLISHED = Counter("trackprint_watcher_events_total", "File events published", ["kind"])
    M_OFFLINE = Gauge("trackprint_watcher_offline_roots", "Library roots currently offline")
    M_PENDING = Gauge("trackprint_watcher_waiting_files", "Files waiting to be quiescent")
except Exception:  # pragma: no cover - prometheus_client is a dependency
    M_PUBLISHED = M_OFFLINE = M_PENDING = None


def count_published(kind: str) -> None:
    if M_PUBLISHED is not None:
        M_PUBLISHED.labels(kind).inc()


class HealthReporter:
    def __init__(self, js, host: str):
        self.js = js
        self.host = host
        self._last_report = 0.0

    def due_now(self) -> None:
        """The next report_if_due reports whatever the time (a change worth saying at once)."""
        self._last_report = 0.0

    async def report_if_due(self, now: float, health: dict, *, offline_roots: int, force: bool = False) -> None:
        if not force and now - self._last_report < REPORT_EVERY_S:
            return
        self._last_report = now
        if M_OFFLINE is not None:
            M_OFFLINE.set(offline_roots)
            M_PENDING.set(health["waiting_for_quiescence"])
        try:
            kv = await bus.status_kv(self.js)
            await kv.put(f"watcher.{self.host}", json.dumps(health).encode())
        except Exception as exc:  # health reporting must never stop the watching
            log.debug("status report failed: %s", exc)
