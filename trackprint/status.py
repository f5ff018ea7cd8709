"""The state of a run, for a person: counts from the database, lag and health from the bus, and warnings.

Works on a stopped system: whatever is unreachable is reported as such.
Warnings name what needs attention; ``trackprint status`` prints this report
and ``trackprint up`` shows the same warnings.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from trackprint.bus.inspect import bus_status
from trackprint.embedded import REFUSED_FILE, lock_holder
from trackprint.persister.db import DatabaseMissing
from trackprint.persister.queries import database_status

FALLBACK_WARN_SHARE = 0.2  # more than this share by Python while Rust should run: say so
STREAM_FULL_WARN = 0.8
RECENT_MINUTES = 10.0
WATCHER_SILENT_S = 60.0


REFUSAL_WARN_S = 600.0


DISK_FULL_BYTES = 32 << 20


NOTHING_HERE = "nothing here yet: run `trackprint up LIBRARY`"


def unreadable(exc: BaseException, db_url: str) -> str | None:
    """The one line a read command prints when it cannot read the database (None: not a database problem).

    No database (a fresh machine, a typo in --db) and a database without trackprint's tables are "nothing
    here yet"; anything else names the database (password hidden) and the first line of the error.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from trackprint.persister.db import redact

    if isinstance(exc, DatabaseMissing):
        return f"{NOTHING_HERE} ({exc}; check --data-dir / --db)"
    if isinstance(exc, SQLAlchemyError):
        text = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        if "no such table" in text or "does not exist" in text:
            return f"{NOTHING_HERE} (the database {redact(db_url)} has no trackprint tables)"
        return f"cannot read the database {redact(db_url)}: {text}"
    if isinstance(exc, ValueError) and "unsupported database" in str(exc):
        return str(exc)
    return None


def instance_status(data_dir: Path) -> dict[str, Any]:
    """Whether an ``up`` holds the data directory, the last second instance it refused, its disk's free space."""
    out: dict[str, Any] = {"data_dir": str(data_dir), "up_pid": lock_holder(data_dir)}
    try:
        out["disk_free_bytes"] = shutil.disk_usage(data_dir).free
    except OSError:
        pass
    try:
        out["refused"] = json.loads((data_dir / REFUSED_FILE).read_text())
    except (OSError, ValueError):
        pass
    return out


def collect(db_url: str, nats_url: str | None, run_state: dict[str, Any],
            data_dir: Path | None = None) -> dict[str, Any]:
    """The whole report: ``run`` (what `up` recorded), ``instance``, ``database``, ``bus`` and ``warnings``."""
    report: dict[str, Any] = {"run": run_state}
    if data_dir is not None:
        report["instance"] = instance_status(data_dir)
    try:
        report["database"] = database_status(db_url, recent_minutes=RECENT_MINUTES)
    except DatabaseMissing as exc:
        report["database"] = {"error": f"{exc} (has `trackprint up` run with this --data-dir / --db?)",
                              "missing": str(exc)}
    except Exception as exc:
        report["database"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    report["bus"] = bus_status(nats_url)
    report["warnings"] = warnings_for(report)
    return report


def warnings_for(report: dict[str, Any]) -> list[str]:
    warnings: list[str] = []
    instance = report.get("instance") or {}
    free = instance.get("disk_free_bytes")
    if free is not None and free < DISK_FULL_BYTES and instance.get("up_pid"):
        warnings.append(f"the data directory's disk is full ({free >> 20} MiB free): JetStream and SQLite cannot "
                        "store new events, results or rows; everything is held and resumes by itself once space "
                        "is freed")
    refused = instance.get("refused")
    if refused and time.time() - float(refused.get("at", 0)) < REFUSAL_WARN_S:
        warnings.append(f"a second `trackprint up` (pid {refused['pid']}) was refused "
                        f"{(time.time() - refused['at']) / 60:.0f} min ago: pid {refused['holder']} holds the data "
                        "directory (one `up` per data directory)")
    state = report.get("run", {})
    if state and state.get("rust_available") is False:
        warnings.append(f"Rust server not running at the last start ({state.get('rust_reason')}): Python engine only, slower")
    store = state.get("store") or {}
    if store.get("short"):
        warnings.append(f"streams limited to {store['stream_max_bytes'] >> 20} MiB each: the data disk had "
                        f"{store['free_at_start'] / 2**30:.1f} GiB free when `up` started")
    db = report.get("database") or {}
    engines = db.get("engine_share") or {}
    total = sum(engines.values())
    if total and state.get("rust_available") and engines.get("python", 0) / total > FALLBACK_WARN_SHARE:
        warnings.append(f"{100 * engines['python'] / total:.0f}% of fingerprints came from the Python fallback")
    if db.get("stale"):
        warnings.append(f"{db['stale']} fingerprints are stale (older fingerprint_version): run `trackprint replay --reanalyse`")
    bus = report.get("bus") or {}
    for name, stream in (bus.get("streams") or {}).items():
        if stream and stream["fill"] >= STREAM_FULL_WARN:
            warnings.append(f"stream {name} is {100 * stream['fill']:.0f}% full: new messages will be rejected at 100%")
    for name, consumer in (bus.get("consumers") or {}).items():
        if consumer and consumer["unacked"] >= consumer["max_ack_pending"] > 0:
            warnings.append(f"consumer {name} reached max_ack_pending ({consumer['max_ack_pending']}): delivery paused")
    if (bus.get("streams") or {}).get("TRACKPRINT_DEADLETTER", {}) and bus["streams"]["TRACKPRINT_DEADLETTER"]["messages"]:
        warnings.append(f"{bus['streams']['TRACKPRINT_DEADLETTER']['messages']} messages in the dead-letter stream")
    for host, watcher in (bus.get("watchers") or {}).items():
        for root, reason in (watcher.get("offline") or {}).items():
            warnings.append(f"library root offline on {host}: {root} ({reason}); no deletions are published for it")
        inotify = watcher.get("inotify") or {}
        if inotify and not inotify.get("enough", True):
            warnings.append(f"inotify limit on {host} too low ({inotify['max_user_watches']} watches for "
                            f"{inotify['directories']} directories): changes are missed until the reconcile; "
                            "use --poll or raise fs.inotify.max_user_watches")
        if inotify.get("overflows"):
            warnings.append(f"inotify queue overflowed {inotify['overflows']} times on {host} (events lost; each "
                            "followed by a reconcile): raise fs.inotify.max_queued_events")
        for mount, reason in (watcher.get("missing_mounts") or {}).items():
            warnings.append(f"mount missing on {host}: {mount} ({reason}); no removals are published for its files")
        for root, held in (watcher.get("held_deletions") or {}).items():
            warnings.append(f"{held['count']} of {held['known']} files under {root} vanished at once on {host}: the "
                            f"removals are held; if they are real, run `trackprint confirm-deletions {root}`")
        age = time.time() - float(watcher.get("updated_at", 0))
        if age > WATCHER_SILENT_S:
            warnings.append(f"watcher on {host} last reported {age / 60:.0f} min ago (stopped?)")
    for host, persister in (bus.get("persisters") or {}).items():
        if persister.get("db_ok") is False:
            since = persister.get("since") or time.time()
            warnings.append(f"database not taking writes for {(time.time() - since) / 60:.0f} min (persister on {host}: "
                            f"{persister.get('reason')}); results are held on the stream, nothing is lost; it "
                            "resumes by itself once the database is writable (disk space, server up)")
    if db.get("error"):
        warnings.append(f"database unreadable: {db['error']}")
    if not bus.get("reachable"):
        warnings.append(f"NATS not reachable ({bus.get('reason')}): consumer lag unknown")
    return warnings
