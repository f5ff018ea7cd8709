"""The ``up`` console's progress line: each stage's count, failures by reason, rate, ETA, engine share."""

from __future__ import annotations

import functools

from trackprint.bus.inspect import monitor_counts
from trackprint.persister.db import make_engine
from trackprint.persister.queries import read_counts


def progress_snapshot(db_url: str, monitor_url: str | None) -> dict:
    """Counts for the progress line: from the database, and the consumers' lag from the NATS monitor."""
    snapshot: dict = {}
    try:
        snapshot.update(database_counts(db_url))
    except Exception as exc:  # the persister may still be creating the schema
        snapshot["db_error"] = str(exc).splitlines()[0][:120]
    if monitor_url:
        try:
            snapshot.update(monitor_counts(monitor_url))
        except Exception:  # the monitor is a nicety: the line shows "?" for what it did not say
            pass
    return snapshot


@functools.cache
def _db_engine(db_url: str):
    """One SQLAlchemy engine per URL for the whole run, not one per progress tick."""
    return make_engine(db_url)


def database_counts(db_url: str) -> dict:
    """The query module's counts, plus a rate from the fingerprints written in the last minute."""
    c = read_counts(db_url, recent_minutes=1.0, engine=_db_engine(db_url))
    return {
        "known": c.known, "fingerprinted": c.active, "pending": c.pending, "failed": c.failed,
        "failed_by_code": c.failed_by_code, "tombstoned": c.tombstoned, "engines": c.engine_share,
        "rate_per_min": c.recent_persisted, "stale": c.stale,
    }


def format_progress(s: dict, state: dict) -> str:
    """One line per tick: each stage's count, failures by reason, rate, ETA, engines and fallback share."""
    if "db_error" in s and "known" not in s:
        if "no such table" in s["db_error"] or "does not exist" in s["db_error"]:
            return "progress: starting (the persister is creating the database schema)"
        return f"progress: waiting for the database ({s['db_error']})"
    failed = ", ".join(f"{code} {n}" for code, n in sorted(s.get("failed_by_code", {}).items())) or "none"
    engines = s.get("engines", {})
    total = sum(engines.values())
    share = (f"rust {engines.get('rust', 0)}, python {engines.get('python', 0)} "
             f"({100 * engines.get('python', 0) / total:.0f}% fallback)") if total else "-"
    if not state.get("rust_available"):
        share += "; RUST SERVER DOWN: Python engine only"
    rate = s.get("rate_per_min", 0)
    waiting = s.get("analyzer_waiting")
    if waiting is None:
        eta = "?"
    elif waiting == 0:
        eta = "idle"
    elif rate:
        eta = f"{waiting / rate:.1f} min"
    else:
        eta = "measuring"
    return (
        f"progress: discovered {s.get('events', '?')}, queued {waiting if waiting is not None else '?'}, "
        f"analysed {s.get('results', '?')}, persisted {s.get('fingerprinted', 0)}, failed {s.get('failed', 0)} "
        f"({failed}), deleted {s.get('tombstoned', 0)}; {rate}/min, ETA {eta}; engines: {share}"
    )
