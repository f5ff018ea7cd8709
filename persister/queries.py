"""Every read of the database: counts for ``status`` and ``up``, and the fingerprints for ``similar`` and ``export``.

Pure SQLAlchemy Core, the same on SQLite and PostgreSQL; engines come from
:func:`trackprint.persister.db.make_engine`.

Definitions (a track is a row of ``tracks``; tombstones are rows in state ``deleted``):

- ``known``: tracks not tombstoned (state != 'deleted').
- ``active``: state 'active' with a fingerprint row.
- ``pending``: known, no fingerprint row, not failed (state not in 'failed', 'deleted')
  and no row in ``analysis_failures`` for the track.
- ``failed_by_code``: tracks in state 'failed', grouped by ``tracks.last_failure_code``
  (the code of the latest failure applied to the track).
- ``failures_by_code``: all rows of ``analysis_failures`` grouped by code (history,
  including ``invalid_message`` rows without a track).
- ``tombstoned``: state 'deleted'.
- ``stale``: known tracks whose fingerprint has ``fingerprint_version`` < the current
  :data:`trackprint.fingerprint.FINGERPRINT_VERSION` (they need re-analysis).
- ``engine_share``: known tracks with a fingerprint, grouped by engine ('rust'/'python').
- ``recent``: fingerprints written (``track_fingerprints.updated_at``) and analysed
  (``analyzed_at``) within the last N minutes: throughput.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

from typing import Iterator

from sqlalchemy import Connection, Engine, and_, exists, func, literal_column, select

from trackprint.persister.models import analysis_failures, track_fingerprints, tracks
from trackprint.fingerprint import DIMENSIONS, FINGERPRINT_VERSION
from trackprint.persister.db import make_engine, redact

T, F, A = tracks.c, track_fingerprints.c, analysis_failures.c

_has_fp = exists().where(F.track_id == T.id)
_has_failure = exists().where(A.track_id == T.id)


def known_q():
    return select(func.count()).select_from(tracks).where(T.state != "deleted")


def active_q():
    return select(func.count()).select_from(tracks).where(T.state == "active", _has_fp)


def pending_q(states: tuple[str, ...] = ("active", "pending")):
    """``pending`` among the tracks in ``states`` (the default: every state that can be pending)."""
    return select(func.count()).select_from(tracks).where(T.state.in_(states), ~_has_fp, ~_has_failure)


def tombstoned_q():
    return select(func.count()).select_from(tracks).where(T.state == "deleted")


def failed_by_code_q():
    code = func.coalesce(T.last_failure_code, literal_column("'unknown'")).label("code")
    return select(code, func.count()).where(T.state == "failed").group_by(code)


def failures_by_code_q():
    return select(A.code, func.count()).group_by(A.code)


def stale_q(current_version: int = FINGERPRINT_VERSION):
    return (
        select(func.count())
        .select_from(tracks.join(track_fingerprints, F.track_id == T.id))
        .where(T.state != "deleted", F.fingerprint_version < current_version)
    )


def engine_share_q():
    return (
        select(F.engine, func.count())
        .select_from(tracks.join(track_fingerprints, F.track_id == T.id))
        .where(T.state != "deleted")
        .group_by(F.engine)
    )


def recent_q(since: datetime):
    return select(
        func.count().filter(F.updated_at >= since),
        func.count().filter(and_(F.analyzed_at.is_not(None), F.analyzed_at >= since)),
    ).select_from(track_fingerprints)


# -- the same counts, each taken from an index ------------------------------------------------------
# The queries above are the definitions (and the tests' reference). Taken as written, several read a
# row per track (a correlated EXISTS per active track, a scan for the recent ones): 547 ms at 500,000
# tracks on SQLite. `counts` takes the same numbers from two index scans (tracks by state,
# fingerprints by engine) and lookups of the few tracks that are not active.

def by_state_q():
    return select(T.state, func.count()).group_by(T.state)


def fingerprints_by_engine_q():
    return select(F.engine, func.count()).group_by(F.engine)


def fingerprints_not_active_q():
    """Fingerprint rows of tracks pending, failed or tombstoned, by state and engine (found by state)."""
    return (
        select(T.state, F.engine, func.count())
        .select_from(tracks.join(track_fingerprints, F.track_id == T.id))
        .where(T.state.in_(("pending", "failed", "deleted")))
        .group_by(T.state, F.engine)
    )


def recent_persisted_q(since: datetime):
    return select(func.count()).select_from(track_fingerprints).where(F.updated_at >= since)


def recent_analyzed_q(since: datetime):
    return select(func.count()).select_from(track_fingerprints).where(F.analyzed_at >= since)


@dataclass
class Counts:
    known: int = 0
    active: int = 0
    pending: int = 0
    failed_by_code: dict[str, int] = field(default_factory=dict)
    failures_by_code: dict[str, int] = field(default_factory=dict)
    tombstoned: int = 0
    stale: int = 0
    engine_share: dict[str, int] = field(default_factory=dict)
    recent_minutes: float = 0
    recent_persisted: int = 0
    recent_analyzed: int = 0

    @property
    def failed(self) -> int:
        return sum(self.failed_by_code.values())

    def as_dict(self) -> dict:
        out = asdict(self)
        out["failed"] = self.failed
        return out


def counts(conn: Connection, *, recent_minutes: float = 10.0, now: datetime | None = None,
           current_version: int = FINGERPRINT_VERSION) -> Counts:
    """Every count in one read (run inside one transaction for a consistent picture), from indexes.

    - known, tombstoned: the tracks by state.
    - active = every fingerprint row, less those of tracks not active (each fingerprint belongs to a track).
    - engine_share = fingerprints by engine, less those of tombstones.
    - pending: looked up among the tracks in state ``pending``; tracks ``active`` without a fingerprint
      (the store never writes one: the gap between active tracks and their fingerprints says whether
      any exist) are then counted the slow, exact way.
    """
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(minutes=recent_minutes)
    by_state = dict(conn.execute(by_state_q()).all())
    by_engine = dict(conn.execute(fingerprints_by_engine_q()).all())
    not_active, of_tombstones = 0, dict.fromkeys(by_engine, 0)
    for state, engine, n in conn.execute(fingerprints_not_active_q()):
        not_active += n
        if state == "deleted":
            of_tombstones[engine] += n
    active = sum(by_engine.values()) - not_active
    pending = conn.execute(pending_q(("pending",))).scalar_one()
    if by_state.get("active", 0) > active:
        pending += conn.execute(pending_q(("active",))).scalar_one()
    return Counts(
        known=sum(by_state.values()) - by_state.get("deleted", 0),
        active=active,
        pending=pending,
        failed_by_code={code: n for code, n in conn.execute(failed_by_code_q())},
        failures_by_code={code: n for code, n in conn.execute(failures_by_code_q())},
        tombstoned=by_state.get("deleted", 0),
        stale=conn.execute(stale_q(current_version)).scalar_one(),
        engine_share={engine: n - of_tombstones[engine] for engine, n in by_engine.items() if n > of_tombstones[engine]},
        recent_minutes=recent_minutes,
        recent_persisted=conn.execute(recent_persisted_q(since)).scalar_one(),
        recent_analyzed=conn.execute(recent_analyzed_q(since)).scalar_one(),
    )


def read_counts(db_url: str, *, recent_minutes: float = 10.0, engine: Engine | None = None) -> Counts:
    """:func:`counts` of the database at ``db_url`` (through ``engine`` when the caller keeps one open)."""
    own = engine is None
    engine = engine or make_engine(db_url, must_exist=True)
    try:
        with engine.connect() as conn:
            return counts(conn, recent_minutes=recent_minutes)
    finally:
        if own:
            engine.dispose()


def database_status(db_url: str, *, recent_minutes: float = 10.0) -> dict:
    """What ``status`` shows of the database: every count, its URL (password hidden) and the throughput."""
    c = read_counts(db_url, recent_minutes=recent_minutes)
    out = c.as_dict()
    out["url"] = redact(db_url)
    out["throughput_per_min"] = round(c.recent_persisted / recent_minutes, 2)
    return out


def iter_fingerprints(db_url: str, *, include_stale: bool = True) -> Iterator[dict]:
    """Active (not tombstoned) tracks with a fingerprint, by path: path, version, stale flag, engine, 25 values."""
    query = (
        select(T.path, F.fingerprint_version, F.engine, F.duration_s, F.analyzed_at, *[F[name] for name in DIMENSIONS])
        .select_from(tracks.join(track_fingerprints, F.track_id == T.id))
        .where(T.state == "active")
        .order_by(T.path)
    )
    if not include_stale:
        query = query.where(F.fingerprint_version == FINGERPRINT_VERSION)
    engine = make_engine(db_url, must_exist=True)
    try:
        with engine.connect() as conn:
            for row in conn.execute(query):
                m = row._mapping
                yield {
                    "path": m["path"],
                    "fingerprint_version": m["fingerprint_version"],
                    "stale": m["fingerprint_version"] != FINGERPRINT_VERSION,
                    "engine": m["engine"],
                    "duration_s": m["duration_s"],
                    "analyzed_at": m["analyzed_at"].isoformat() if m["analyzed_at"] else None,
                    **{name: m[name] for name in DIMENSIONS},
                }
    finally:
        engine.dispose()


def iter_failed(db_url: str) -> Iterator[dict]:
    """``status --failed``: tracks in state failed, by path: code, path, and the stage and message of the
    latest failure recorded for the track (``analysis_failures``)."""
    latest = (
        select(A.track_id, func.max(A.id).label("id")).where(A.track_id.is_not(None)).group_by(A.track_id).subquery()
    )
    query = (
        select(T.path, func.coalesce(T.last_failure_code, A.code, literal_column("'unknown'")).label("code"),
               A.stage, A.message, A.engine, A.attempts)
        .select_from(tracks.outerjoin(latest, latest.c.track_id == T.id).outerjoin(analysis_failures,
                                                                                  A.id == latest.c.id))
        .where(T.state == "failed")
        .order_by(T.path)
    )
    engine = make_engine(db_url, must_exist=True)
    try:
        with engine.connect() as conn:
            for row in conn.execute(query):
                yield dict(row._mapping)
    finally:
        engine.dispose()


@dataclass
class Done:
    """What the ``up`` console counts as finished: tracks with a fingerprint or a failure, and the audio done."""

    fingerprinted: dict[str, str] = field(default_factory=dict)  # path -> engine
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason code
    audio_s: float = 0.0  # seconds of audio fingerprinted
    latest: str | None = None  # the path persisted last


def read_done(conn: Connection) -> Done:
    """:class:`Done` in one read of the known (not tombstoned) tracks."""
    done = Done()
    rows = conn.execute(
        select(T.path, T.state, T.last_failure_code, F.engine, F.duration_s)
        .select_from(tracks.outerjoin(track_fingerprints, F.track_id == T.id))
        .where(T.state.in_(("active", "failed")))
    )
    for path, state, code, engine, duration in rows:
        if state == "failed":
            done.failed[path] = code or "unknown"
        elif engine is not None:
            done.fingerprinted[path] = engine
            done.audio_s += duration or 0.0
    done.latest = conn.execute(select(T.path).where(T.state.in_(("active", "failed")))
                               .order_by(T.updated_at.desc(), T.id.desc()).limit(1)).scalar()
    return done
