"""The SQL side of the persister: migrations and the one-transaction-per-batch apply.

``Store(url).apply(batch)`` takes ``[(message_or_raw_bytes, Meta), ...]`` and
applies every item inside ONE transaction, committed before it returns. A
database error propagates (the service then naks the whole batch; nothing is
acked before the commit).

Ordering and idempotence (last-write-wins by the *source event's* stream
sequence, ``message.source_seq``; the results-stream sequence when that is 0):

- a message whose sequence is smaller than ``tracks.last_source_seq`` of its
  path changes nothing (counted as ``stale``). An EQUAL sequence is the same
  event: it re-applies only when it comes from the results message that last
  wrote the row (``tracks.last_results_seq``, its results-stream sequence: a
  redelivery, a replay, a re-drive of it), so those stay harmless; another
  results message answering an event already answered is ``stale`` ("event
  already answered"), so reusing a real sequence cannot overwrite a row. Rows
  from before migration 0005 hold 0 there (unknown writer);
- ``FingerprintResult``: upsert track (state ``active``), its fingerprint and, when the
  message carries them, its tags (``track_tags``; a reused result after a retag brings new tags);
- ``AnalysisFailure``: one ``analysis_failures`` row per (path, code,
  source_seq) (insert ... on conflict do nothing); the track becomes
  ``failed`` only when it has no fingerprint; a fingerprint is never deleted;
- ``TrackRemoved``: tombstone (state ``deleted``, ``deleted_at``,
  ``deleted_reason`` from the message: ``gone`` or ``excluded``); the
  fingerprint row stays; a later, newer add revives the row. An unknown path
  gets a tombstone row too, so a late older result cannot resurrect it;
- ``TrackMoved``: the row (and its fingerprint) moves to the new path and a
  tombstone is left at the old path. When the new path already has a row, the
  newer sequence wins (a move that wins copies the fingerprint onto it). When
  the old path is unknown, the new path gets a ``pending`` row without
  fingerprint. When the old path's row already holds the move's event, written
  by another results message, the move is stale;
- an invalid message (msgspec decode error, or ``result_problems`` non-empty)
  is recorded as an ``invalid_message`` failure naming the problem and, when
  readable, the path; never dropped. A message whose ``source_seq`` is no
  event of its path (``Meta.problem``, found by :mod:`trackprint.persister.sources`
  before the batch) is recorded the same way but touches no track row.

How a batch is written (the rules above are those of one message at a time; the batch gives the
same rows and outcomes, tested against that path on random batches):

- set-based, the common case: the valid fingerprints and failures of every path that no other
  kind of message in the batch touches. One query reads the stored rows of all those paths (and
  whether each has a fingerprint); each path's messages are applied in batch order to an
  in-memory copy of its row with the rules above, so the newest sequence wins whatever the order
  and an older message is stale; then one statement per table writes what changed: new tracks,
  changed tracks, the last applied fingerprint and tags of each path (upserts), the failure rows
  (insert-or-ignore, the first of a repeated key kept). PostgreSQL: each statement carries its
  rows as one JSON parameter (``json_to_recordset``); SQLite: one ``executemany`` of one
  compiled statement through the driver. Either way the values stored are those SQLAlchemy Core
  stores (its own bind conversions);
- per message, in batch order: moves (both paths), removals, invalid messages, and every other
  message of a path one of them touches. These paths and the set-based ones are disjoint, so
  doing the set-based part first gives the batch's order.

Concurrent persisters: on PostgreSQL every transaction first takes
transaction-scoped advisory locks on all the paths it touches, in sorted key
order (no deadlock between persisters), so the select-then-write below is
serialised per path. On SQLite every transaction is ``BEGIN IMMEDIATE`` (one
writer at a time; other writers wait up to ``busy_timeout``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import msgspec
from sqlalchemy import Connection, bindparam, event, select, text, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from trackprint.persister.models import analysis_failures, persister_heartbeat, track_fingerprints, track_tags, tracks
from trackprint.contracts import (
    MAX_SEQUENCE,
    AnalysisFailure,
    FingerprintResult,
    ResultMessage,
    TrackMoved,
    TrackRemoved,
    decode_result,
    result_problems,
)
from trackprint.persister.db import make_engine, normalize_url, redact
from trackprint.errors import ErrorCode
from trackprint.paths import Library, to_fs
from trackprint.fingerprint import DIMENSIONS

log = logging.getLogger("trackprint.persister.store")

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
INVALID = ErrorCode.INVALID_MESSAGE.value


@dataclass(frozen=True)
class Meta:
    """Where a message came from: its results-stream sequence and how often it was delivered."""

    stream_seq: int = 0
    num_delivered: int = 1
    problem: str | None = None  # found by the service before the batch (e.g. a source_seq that is no event)


@dataclass
class Outcome:
    """What happened to one item of a batch (for log lines and counters)."""

    kind: str  # fingerprint | failure | removed | moved | invalid
    path: str | None
    action: str  # applied | stale | recorded
    seq: int
    detail: str = ""


@dataclass
class BatchSummary:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, kind: str | None = None, action: str | None = None) -> int:
        return sum(
            1 for o in self.outcomes if (kind is None or o.kind == kind) and (action is None or o.action == action)
        )

    @property
    def persisted(self) -> int:
        """Fingerprints written."""
        return self.count("fingerprint", "applied")

    @property
    def failures(self) -> int:
        """Analysis failures applied (invalid messages not included)."""
        return self.count("failure", "applied")

    @property
    def invalid(self) -> int:
        return self.count("invalid")

    @property
    def stale(self) -> int:
        return self.count(action="stale")


@dataclass
class _Prepared:
    message: ResultMessage | None
    meta: Meta
    seq: int
    problem: str | None = None  # set for invalid messages
    raw_path: str | None = None  # readable path of an invalid message
    raw_engine: str | None = None
    # False when the message's claim on its path is unproven (its source_seq is no event of that
    # path): the failure is recorded under the path, but no track row is made or changed for it
    touches_track: bool = True
    # True when ``seq`` is a checked source_seq (the message decoded and its event was looked up). An
    # undecodable message's source_seq is only what its bytes say: its failure is recorded with it, but
    # it never orders the track (else a garbage message naming 2^62 would freeze the path)
    seq_checked: bool = False


@dataclass
class _Row:
    """A ``tracks`` row as the set-based writes see it: read once, changed in memory, written once."""

    id: int | None = None  # None: not stored yet
    size: int | None = None
    mtime_ns: int | None = None
    inode: int | None = None
    content_id: str | None = None
    state: str = "pending"
    last_source_seq: int = 0
    last_results_seq: int = 0
    last_failure_code: str | None = None
    has_fp: bool = False

    COLUMNS = ("size", "mtime_ns", "inode", "content_id", "state", "last_source_seq", "last_results_seq",
               "last_failure_code", "updated_at", "deleted_at", "deleted_reason")

    def values(self, now: datetime) -> dict[str, Any]:
        """The columns a fingerprint or a failure writes (a row they apply to is never a tombstone)."""
        return dict(size=self.size, mtime_ns=self.mtime_ns, inode=self.inode, content_id=self.content_id,
                    state=self.state, last_source_seq=self.last_source_seq, last_results_seq=self.last_results_seq,
                    last_failure_code=self.last_failure_code,
                    updated_at=now, deleted_at=None, deleted_reason=None)


class _Executemany:
    """SQLite: one statement compiled once and run as the driver's own ``executemany``.

    SQLAlchemy's per-row parameter handling was most of the cost of a batch; here each row (a dict
    of column values) becomes a tuple in the compiled ``?`` order, after the bind processors
    SQLAlchemy itself applies to these columns on SQLite (datetimes as text, booleans as
    integers), so the stored values are the same as through Core.
    """

    def __init__(self, stmt, table, dialect, keys: list[str] | None):
        compiled = stmt.compile(dialect=dialect, column_keys=keys)
        assert compiled.positional, "SQLite's qmark parameters"
        self.sql = compiled.string
        self.names = list(compiled.positiontup)
        self.processors = []
        for i, name in enumerate(self.names):
            column = table.c.get(name)
            process = column.type.dialect_impl(dialect).bind_processor(dialect) if column is not None else None
            if process is not None:
                self.processors.append((i, process))

    def run(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Every row, one executemany; returns no rows (None)."""
        names, processors = self.names, self.processors
        params: list[tuple] = []
        memo: dict[int, tuple[Any, Any]] = {}  # the batch's one `now` is converted once, not per row
        for row in rows:
            values = [row[name] for name in names]
            for i, process in processors:
                value = values[i]
                last = memo.get(i)
                if last is not None and last[0] is value:
                    values[i] = last[1]
                else:
                    values[i] = process(value)
                    memo[i] = (value, values[i])
            params.append(tuple(values))
        conn.exec_driver_sql(self.sql, params)
        return None


class _JsonRows:
    """PostgreSQL: every row of a batch in ONE statement, the rows as one JSON parameter.

    ``INSERT INTO t (a, b) SELECT a, b FROM json_to_recordset(%s::json) AS v(a bigint, b text)
    [ON CONFLICT ...]``, or ``UPDATE t SET a = v.a FROM json_to_recordset(...) AS v(...) WHERE
    t.id = v.id``: the server runs one statement per table instead of one per row, and the client's
    work is one ``msgspec`` encode (arrays as parameters cost psycopg Python work per element). Each
    value is read back by its column type's own input function: floats are written with the
    shortest text that reads back as the same double, datetimes as RFC 3339 with their zone,
    integers exactly; text cannot hold NUL in either form.
    """

    _DIALECT = pg_dialect.dialect()
    _ENCODER = msgspec.json.Encoder()

    def __init__(self, sql: str, returns: bool):
        self.sql, self.returns = sql, returns

    @classmethod
    def _q(cls, *names: str) -> list[str]:
        return [cls._DIALECT.identifier_preparer.quote(name) for name in names]

    @classmethod
    def _record(cls, table, names: list[str], columns: list[str]) -> str:
        """``json_to_recordset(%(rows)s::json) AS v(name type, ...)``, each name typed as its column."""
        types = [table.c[column].type.compile(dialect=cls._DIALECT) for column in columns]
        fields = ", ".join(f"{name} {type_}" for name, type_ in zip(cls._q(*names), types))
        return f"json_to_recordset(%(rows)s::json) AS v({fields})"

    @classmethod
    def insert(cls, table, columns: list[str], *, conflict: list[str] | None = None, update: bool = False,
               returning: list[str] | None = None) -> "_JsonRows":
        quoted = cls._q(*columns)
        sql = (f"INSERT INTO {cls._q(table.name)[0]} ({', '.join(quoted)}) "
               f"SELECT {', '.join(f'v.{c}' for c in quoted)} FROM {cls._record(table, columns, columns)}")
        if conflict and update:
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cls._q(*(c for c in columns if c not in conflict)))
            sql += f" ON CONFLICT ({', '.join(cls._q(*conflict))}) DO UPDATE SET {sets}"
        elif conflict:
            sql += f" ON CONFLICT ({', '.join(cls._q(*conflict))}) DO NOTHING"
        if returning:
            sql += f" RETURNING {', '.join(cls._q(*returning))}"
        return cls(sql, bool(returning))

    @classmethod
    def update(cls, table, key: str, key_param: str, columns: list[str]) -> "_JsonRows":
        quoted = cls._q(*columns)
        sql = (f"UPDATE {cls._q(table.name)[0]} AS t SET {', '.join(f'{c} = v.{c}' for c in quoted)} "
               f"FROM {cls._record(table, [key_param, *columns], [key, *columns])} "
               f"WHERE t.{cls._q(key)[0]} = v.{cls._q(key_param)[0]}")
        return cls(sql, False)

    def run(self, conn: Connection, rows: list[dict[str, Any]]) -> list | None:
        found = _pg_execute(conn, self.sql, {"rows": self._ENCODER.encode(rows).decode()})
        return found if self.returns else None


def _pg_execute(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple]:
    """Run ``sql`` through SQLAlchemy (its error classes, so an outage stays an OperationalError for the
    service) on a connection that plans every statement for its parameters (see :func:`_plan_each_time`)."""
    result = conn.exec_driver_sql(sql, params)
    return [tuple(r) for r in result] if result.returns_rows else []


def _plan_each_time(dbapi_connection, _record) -> None:
    """psycopg never turns the Store's statements into prepared statements.

    psycopg prepares a statement on its 5th run and the server may then keep a generic plan: one
    made while the tables were small kept sequential scans and hash joins after they had grown,
    and a batch's read of its rows took 35-60 ms at 5,000 tracks, O(rows) per batch. Planned each
    time, the look-ups by path (``= ANY``) or id use the unique indexes; planning costs well under a
    millisecond per statement, and there is one statement per table per batch.
    """
    dbapi_connection.prepare_threshold = None


def _utc(ts: float | None) -> datetime | None:
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(float(ts), timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _fingerprint_values(m: FingerprintResult, seq: int, now: datetime) -> dict[str, Any]:
    """The ``track_fingerprints`` columns of a result (all but ``track_id``)."""
    values: dict[str, Any] = m.fingerprint.as_dict()  # floats already (a msgspec struct of float fields)
    values.update(
        fingerprint_version=m.fingerprint_version, engine=m.engine, content_id=m.content_id,
        codec=m.decode.codec, sample_rate=m.decode.sample_rate, channels=m.decode.channels,
        duration_s=m.decode.decoded_duration_s,
        analysis_s=m.timings.analysis_s if m.timings.analysis_s is not None else m.timings.total_s,
        reused=bool(m.reused), source_seq=seq, analyzed_at=_utc(m.analyzed_at), updated_at=now,
    )
    return values


def _stale(row, seq: int, results_seq: int) -> str | None:
    """Why a message answering the event ``seq``, read from results message ``results_seq``, must not change
    ``row`` (None: it may; a stored row or a :class:`_Row`, None when the path has none).

    A smaller sequence than the row's is older news. An EQUAL sequence is the same event: it re-applies only
    from the results message that wrote the row (a redelivery, a replay of it); another message answering an
    event already answered is stale, so a publisher cannot overwrite a row by reusing a real sequence.
    """
    if row is None:
        return None
    if seq < row.last_source_seq:
        return f"newer event {row.last_source_seq} already applied"
    if seq == row.last_source_seq and results_seq != (row.last_results_seq or 0):
        writer = f"results seq {row.last_results_seq}" if row.last_results_seq else "an earlier message"
        return f"event {seq} already answered (by {writer})"
    return None


def _code(m: AnalysisFailure) -> str:
    return m.code.value if isinstance(m.code, ErrorCode) else str(m.code)


def _lock_key(path: str) -> int:
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def alembic_config(connection: Connection | None = None):
    """The Alembic config, built in code (works from an installed package; no alembic.ini)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


class Store:
    """Migrations plus batched, idempotent, last-write-wins writes. Thread-safe (one Engine)."""

    def __init__(self, url: str, *, sqlite_busy_timeout_s: float = 30.0, echo: bool = False,
                 library: Library | None = None):
        self.url = normalize_url(url)
        self.library = library  # when given, a result for a path outside it is invalid_message, never a row
        self.engine = make_engine(url, sqlite_busy_timeout_s=sqlite_busy_timeout_s, echo=echo,
                                  application_name="trackprint-persister")
        self.dialect = self.engine.dialect.name
        self._insert = pg_dialect.insert if self.dialect == "postgresql" else sqlite_dialect.insert
        if self.dialect == "postgresql":
            event.listen(self.engine, "connect", _plan_each_time)

    def __repr__(self) -> str:
        return f"Store({redact(self.url)})"

    def close(self) -> None:
        self.engine.dispose()

    # -- schema ---------------------------------------------------------------------------
    def migrate(self) -> None:
        """``alembic upgrade head`` (serialised between persisters starting together)."""
        from alembic import command

        with self.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")

    def probe_write(self, host: str) -> None:
        """Write and commit one row: raises the database's own error when it cannot take writes now
        (down, locked past busy_timeout, disk full, read-only)."""
        values = {"host": host, "written_at": datetime.now(timezone.utc)}
        with self.engine.begin() as conn:
            conn.execute(self._insert(persister_heartbeat).values(**values)
                         .on_conflict_do_update(index_elements=["host"], set_={"written_at": values["written_at"]}))

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    # -- writes ---------------------------------------------------------------------------
    def apply(self, batch: Iterable[tuple[Any, Meta | Mapping[str, int] | int]]) -> BatchSummary:
        """Apply a batch in ONE transaction, committed before returning. DB errors propagate."""
        prepared = [self._prepare(item, meta) for item, meta in batch]
        summary = BatchSummary()
        if not prepared:
            return summary
        now = datetime.now(timezone.utc)
        bulk, one_by_one = self._split(prepared)
        outcomes: list[Outcome | None] = [None] * len(prepared)
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                self._lock_paths(conn, prepared)
            if bulk:
                for index, outcome in self._apply_bulk(conn, [(i, prepared[i]) for i in bulk], now).items():
                    outcomes[index] = outcome
            for index in one_by_one:
                outcomes[index] = self._apply_one(conn, prepared[index], now)
        summary.outcomes = outcomes  # type: ignore[assignment]  # every index is set above
        return summary

    @classmethod
    def _split(cls, prepared: Sequence[_Prepared]) -> tuple[list[int], list[int]]:
        """Batch indices for the set-based writes and for the per-message path, both in batch order.

        Valid fingerprints and failures go set-based, unless their path is also touched by a message
        of another kind in this batch (a move, either end; a removal; an invalid message naming it):
        then every message of that path takes the per-message path, in batch order. The two sets
        touch disjoint paths, so applying one before the other is the same as the batch's order.
        """
        rare_paths = {path for item in prepared if not cls._bulk_kind(item) for path in cls._paths(item)}
        bulk: list[int] = []
        one_by_one: list[int] = []
        for index, item in enumerate(prepared):
            if cls._bulk_kind(item) and item.message.path not in rare_paths:
                bulk.append(index)
            else:
                one_by_one.append(index)
        return bulk, one_by_one

    @staticmethod
    def _bulk_kind(item: _Prepared) -> bool:
        return isinstance(item.message, (FingerprintResult, AnalysisFailure))

    # -- preparation (no database) --------------------------------------------------------
    @staticmethod
    def _meta(meta: Meta | Mapping[str, int] | int | None) -> Meta:
        if isinstance(meta, Meta):
            return meta
        if meta is None:
            return Meta()
        if isinstance(meta, int):
            return Meta(stream_seq=meta)
        return Meta(stream_seq=int(meta.get("stream_seq", 0)), num_delivered=int(meta.get("num_delivered", 1)))

    def _prepare(self, item: Any, meta: Any) -> _Prepared:
        meta = self._meta(meta)
        if isinstance(item, (bytes, bytearray, memoryview, str)):
            raw = bytes(item) if not isinstance(item, str) else item.encode("utf-8", "surrogateescape")
            try:
                message = decode_result(raw)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                return self._invalid(raw, meta, f"{type(exc).__name__}: {exc}")
        else:
            message = item
            raw = None
        if not isinstance(message, (FingerprintResult, AnalysisFailure, TrackRemoved, TrackMoved)):
            return self._invalid(raw, meta, f"not a results message: {type(message).__name__}")
        problems = result_problems(message)
        if meta.problem:
            problems.append(meta.problem)
        outside = False
        for path in (message.path, getattr(message, "old_path", None)):
            refusal = self.library.refusal(to_fs(path)) if self.library is not None and path else None
            if refusal:
                problems.append(f"{path}: {refusal}")
                outside = True
        if problems:
            prepared = self._invalid(raw, meta, "; ".join(problems))
            prepared.raw_path = None if outside else message.path  # no row is ever made outside the library
            prepared.touches_track = not meta.problem
            prepared.seq_checked = not meta.problem
            prepared.raw_engine = getattr(message, "engine", None)
            in_range = 0 < message.source_seq <= MAX_SEQUENCE
            prepared.seq = message.source_seq if in_range else meta.stream_seq
            return prepared
        return _Prepared(message=message, meta=meta, seq=message.source_seq or meta.stream_seq)

    @staticmethod
    def _invalid(raw: bytes | None, meta: Meta, problem: str) -> _Prepared:
        path = engine = None
        source_seq = 0
        if raw is not None:
            try:  # the stdlib parser is the lenient one (accepts 1e999, NaN, Infinity)
                loose = json.loads(raw)
            except (ValueError, RecursionError):
                loose = None
            if isinstance(loose, dict):
                if isinstance(loose.get("path"), str):
                    path = loose["path"]
                if isinstance(loose.get("engine"), str):
                    engine = loose["engine"][:16]
                value = loose.get("source_seq")
                if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQUENCE:
                    source_seq = value
        return _Prepared(
            message=None, meta=meta, seq=source_seq or meta.stream_seq, problem=problem, raw_path=path, raw_engine=engine
        )

    # -- the transaction ------------------------------------------------------------------
    @staticmethod
    def _paths(item: _Prepared) -> list[str]:
        if item.message is None:
            return [item.raw_path] if item.raw_path else []
        if isinstance(item.message, TrackMoved):
            return [item.message.old_path, item.message.path]
        return [item.message.path]

    def _lock_paths(self, conn: Connection, prepared: Sequence[_Prepared]) -> None:
        keys = sorted({_lock_key(p) for item in prepared for p in self._paths(item)})
        if keys:
            # Subquery with ORDER BY is not flattened: locks are taken in key order.
            conn.execute(
                text(
                    "SELECT count(pg_advisory_xact_lock(k)) FROM "
                    "(SELECT k FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS t(k, i) ORDER BY i) AS s"
                ),
                {"keys": keys},
            )

    def _apply_one(self, conn: Connection, item: _Prepared, now: datetime) -> Outcome:
        message = item.message
        if message is None:
            return self._apply_invalid(conn, item, now)
        results_seq = item.meta.stream_seq
        if isinstance(message, FingerprintResult):
            return self._apply_fingerprint(conn, message, item.seq, results_seq, now)
        if isinstance(message, AnalysisFailure):
            return self._apply_failure(conn, message, item, now)
        if isinstance(message, TrackRemoved):
            return self._apply_removed(conn, message, item.seq, results_seq, now)
        return self._apply_moved(conn, message, item.seq, results_seq, now)

    # -- set-based writes: the fingerprints and failures of paths nothing else in the batch touches --------
    def _apply_bulk(self, conn: Connection, items: Sequence[tuple[int, _Prepared]], now: datetime) -> dict[int, Outcome]:
        """Fingerprints and failures in a few statements, with the outcome of applying them one by one.

        One query reads the stored rows of every path; then each path's messages are applied in batch
        order to an in-memory copy of its row, with the same rules as the per-message path (a message
        older than the row's ``last_source_seq`` is stale; a failure never removes a fingerprint);
        what is left is written: new tracks in one INSERT (RETURNING their ids), changed tracks in one
        executemany UPDATE, the final fingerprint and tags of each path in one upsert each, and the
        failure rows in one insert-or-ignore. Several messages for one path in a batch end as the
        per-message path would: the newest sequence wins, whatever the order.
        """
        by_path: dict[str, list[tuple[int, _Prepared]]] = {}
        for index, item in items:
            by_path.setdefault(item.message.path, []).append((index, item))
        stored = self._stored_rows(conn, list(by_path))
        outcomes: dict[int, Outcome] = {}
        rows: dict[str, _Row] = {}
        fingerprints: dict[str, tuple[FingerprintResult, int]] = {}
        tags: dict[str, Any] = {}
        failures: dict[tuple[str, str, int], tuple[AnalysisFailure, _Prepared]] = {}
        for path, path_items in by_path.items():
            row = stored.get(path)
            changed = False
            for index, item in path_items:
                m, seq, results_seq = item.message, item.seq, item.meta.stream_seq
                stale = _stale(row, seq, results_seq)
                if isinstance(m, FingerprintResult):
                    if stale:
                        outcomes[index] = Outcome("fingerprint", path, "stale", seq, stale)
                        continue
                    if row is None:
                        row = _Row()
                    row.size, row.mtime_ns, row.inode, row.content_id = m.size, m.mtime_ns, m.inode, m.content_id
                    row.state, row.last_source_seq, row.last_failure_code, row.has_fp = "active", seq, None, True
                    row.last_results_seq = results_seq
                    fingerprints[path] = (m, seq)
                    if m.tags is not None:  # a result without tags (an older analyzer) leaves the stored ones alone
                        tags[path] = m.tags
                    outcomes[index] = Outcome("fingerprint", path, "applied", seq, f"{m.engine} v{m.fingerprint_version}")
                else:
                    code = _code(m)
                    if stale:
                        outcomes[index] = Outcome("failure", path, "stale", seq, f"{m.stage}: {code}: {stale}")
                        continue
                    if row is None:
                        row = _Row(size=m.size, mtime_ns=m.mtime_ns, state="failed")
                    else:
                        row.state = "active" if (row.has_fp and row.state == "active") else "failed"
                    row.last_source_seq, row.last_results_seq, row.last_failure_code = seq, results_seq, code
                    failures.setdefault((path, code, seq), (m, item))  # the first of a repeated key is kept
                    outcomes[index] = Outcome("failure", path, "applied", seq, f"{m.stage}: {code}: {m.message}")
                changed = True
            if changed:
                rows[path] = row
        ids = self._write_tracks(conn, rows, now)
        self._write_fingerprints(conn, [(ids[path], m, seq) for path, (m, seq) in fingerprints.items()], now)
        self._write_tags(conn, [(ids[path], value) for path, value in tags.items()], now)
        self._write_failures(conn, [
            dict(path=path, track_id=ids[path], code=code, message=m.message, stage=m.stage, attempts=m.attempts,
                 engine=m.engine, source_seq=seq, results_seq=item.meta.stream_seq or None, created_at=now)
            for (path, code, seq), (m, item) in failures.items()
        ])
        return outcomes

    _CHUNK = 500  # paths per IN (...) list: far below any database's limit on parameters

    _STORED = (
        "SELECT t.id, t.path, t.size, t.mtime_ns, t.inode, t.content_id, t.state, t.last_source_seq, "
        "t.last_results_seq, t.last_failure_code, f.track_id FROM tracks AS t LEFT OUTER JOIN track_fingerprints AS f "
        "ON f.track_id = t.id WHERE t.path "
    )

    def _stored_rows(self, conn: Connection, paths: list[str]) -> dict[str, "_Row"]:
        """The stored row of each path that has one, and whether it has a fingerprint: one query (SQLite: one
        per 500 paths), through the driver (the columns need no conversion)."""
        if self.dialect == "postgresql":  # one array parameter: the same text whatever the number of paths
            found = _pg_execute(conn, self._STORED + "= ANY(%(paths)s::text[])", {"paths": paths})
        else:
            found = []
            for start in range(0, len(paths), self._CHUNK):
                chunk = tuple(paths[start:start + self._CHUNK])
                found += conn.exec_driver_sql(self._STORED + f"IN ({', '.join('?' * len(chunk))})", chunk).all()
        return {path: _Row(id=track_id, size=size, mtime_ns=mtime_ns, inode=inode, content_id=content_id, state=state,
                           last_source_seq=last_seq, last_results_seq=results_seq or 0, last_failure_code=failure_code,
                           has_fp=fp is not None)
                for track_id, path, size, mtime_ns, inode, content_id, state, last_seq, results_seq, failure_code, fp
                in found}

    def _write_tracks(self, conn: Connection, rows: dict[str, "_Row"], now: datetime) -> dict[str, int]:
        """Insert the new rows and update the changed ones; the id of every path in ``rows``."""
        ids = {path: row.id for path, row in rows.items() if row.id is not None}
        new = [dict(path=path, created_at=now, **row.values(now)) for path, row in rows.items() if row.id is None]
        if new:
            returned = self._statements["insert_tracks"].run(conn, new)
            if returned is None:  # SQLite's executemany returns no rows: read the new ids back
                returned = [(row.id, path) for path, row in self._stored_rows(conn, [r["path"] for r in new]).items()]
            ids.update((path, track_id) for track_id, path in returned)
        old = [dict(b_id=row.id, **row.values(now)) for row in rows.values() if row.id is not None]
        if old:
            self._statements["update_tracks"].run(conn, old)
        return ids

    def _write_fingerprints(self, conn: Connection, rows: list[tuple[int, FingerprintResult, int]], now: datetime) -> None:
        if rows:
            self._statements["upsert_fingerprints"].run(
                conn, [dict(track_id=track_id, **_fingerprint_values(m, seq, now)) for track_id, m, seq in rows])

    def _write_tags(self, conn: Connection, rows: list[tuple[int, Any]], now: datetime) -> None:
        from trackprint.tags import as_dict

        if rows:
            self._statements["upsert_tags"].run(
                conn, [dict(track_id=track_id, updated_at=now, **as_dict(value)) for track_id, value in rows])

    def _write_failures(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._statements["insert_failures"].run(conn, rows)

    @functools.cached_property
    def _statements(self) -> dict[str, Any]:
        """The set-based statements, built once per Store for its database: on PostgreSQL one statement per
        table whatever the number of rows (:class:`_JsonRows`), on SQLite the driver's executemany of one
        compiled statement (:class:`_Executemany`)."""
        every = lambda table, *skip: [c.name for c in table.c if c.name not in skip]  # noqa: E731
        new_track = ["path", "created_at", *_Row.COLUMNS]
        failure_key = ["path", "code", "source_seq"]
        if self.dialect == "postgresql":
            return {
                "insert_tracks": _JsonRows.insert(tracks, new_track, returning=["id", "path"]),
                "update_tracks": _JsonRows.update(tracks, "id", "b_id", list(_Row.COLUMNS)),
                "upsert_fingerprints": _JsonRows.insert(track_fingerprints, every(track_fingerprints),
                                                      conflict=["track_id"], update=True),
                "upsert_tags": _JsonRows.insert(track_tags, every(track_tags), conflict=["track_id"], update=True),
                "insert_failures": _JsonRows.insert(analysis_failures, every(analysis_failures, "id"),
                                                  conflict=failure_key),
            }

        def upsert(table, key: list[str]):
            stmt = self._insert(table)
            return stmt.on_conflict_do_update(
                index_elements=key, set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in key})

        dialect = self.engine.dialect
        return {
            "insert_tracks": _Executemany(tracks.insert(), tracks, dialect, new_track),
            "update_tracks": _Executemany(
                update(tracks).where(tracks.c.id == bindparam("b_id")).values(
                    {name: bindparam(name) for name in _Row.COLUMNS}),
                tracks, dialect, None),
            "upsert_fingerprints": _Executemany(upsert(track_fingerprints, ["track_id"]), track_fingerprints, dialect,
                                                every(track_fingerprints)),
            "upsert_tags": _Executemany(upsert(track_tags, ["track_id"]), track_tags, dialect, every(track_tags)),
            "insert_failures": _Executemany(
                self._insert(analysis_failures).on_conflict_do_nothing(index_elements=failure_key),
                analysis_failures, dialect, every(analysis_failures, "id")),
        }

    @staticmethod
    def _track(conn: Connection, path: str):
        return conn.execute(select(tracks).where(tracks.c.path == path)).one_or_none()

    @staticmethod
    def _fingerprint(conn: Connection, track_id: int):
        return conn.execute(select(track_fingerprints).where(track_fingerprints.c.track_id == track_id)).one_or_none()

    @staticmethod
    def _insert_track(conn: Connection, now: datetime, **values: Any) -> int:
        values.setdefault("created_at", now)
        values.setdefault("updated_at", now)
        return conn.execute(tracks.insert().values(**values)).inserted_primary_key[0]

    @staticmethod
    def _update_track(conn: Connection, track_id: int, **values: Any) -> None:
        conn.execute(update(tracks).where(tracks.c.id == track_id).values(**values))

    def _upsert_fingerprint(self, conn: Connection, track_id: int, values: dict[str, Any]) -> None:
        stmt = self._insert(track_fingerprints).values(track_id=track_id, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["track_id"], set_=values))

    def _upsert_tags(self, conn: Connection, track_id: int, tags, now: datetime) -> None:
        from trackprint.tags import as_dict

        values = {**as_dict(tags), "updated_at": now}
        stmt = self._insert(track_tags).values(track_id=track_id, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["track_id"], set_=values))

    def _record_failure(self, conn: Connection, **values: Any) -> None:
        stmt = self._insert(analysis_failures).values(**values)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["path", "code", "source_seq"]))

    def _apply_fingerprint(self, conn: Connection, m: FingerprintResult, seq: int, results_seq: int,
                           now: datetime) -> Outcome:
        row = self._track(conn, m.path)
        stale = _stale(row, seq, results_seq)
        if stale:
            return Outcome("fingerprint", m.path, "stale", seq, stale)
        track_values = dict(
            size=m.size, mtime_ns=m.mtime_ns, inode=m.inode, content_id=m.content_id, state="active",
            last_source_seq=seq, last_results_seq=results_seq, last_failure_code=None, updated_at=now, deleted_at=None,
            deleted_reason=None,
        )
        if row is None:
            track_id = self._insert_track(conn, now, path=m.path, **track_values)
        else:
            track_id = row.id
            self._update_track(conn, track_id, **track_values)
        self._upsert_fingerprint(conn, track_id, _fingerprint_values(m, seq, now))
        if m.tags is not None:  # a result without tags (an older analyzer) leaves the stored ones alone
            self._upsert_tags(conn, track_id, m.tags, now)
        return Outcome("fingerprint", m.path, "applied", seq, f"{m.engine} v{m.fingerprint_version}")

    def _mark_failed(self, conn: Connection, path: str, seq: int, results_seq: int, code: str, now: datetime, *,
                     size: int | None = None, mtime_ns: int | None = None) -> tuple[int | None, str | None]:
        """Apply a failure to the track row (LWW). Returns (track_id, why it is stale: None when applied)."""
        row = self._track(conn, path)
        stale = _stale(row, seq, results_seq)
        if stale:
            return row.id, stale
        if row is None:
            track_id = self._insert_track(
                conn, now, path=path, size=size, mtime_ns=mtime_ns, state="failed", last_source_seq=seq,
                last_results_seq=results_seq, last_failure_code=code,
            )
            return track_id, None
        has_fp = self._fingerprint(conn, row.id) is not None
        state = "active" if (has_fp and row.state == "active") else "failed"
        self._update_track(
            conn, row.id, state=state, last_source_seq=seq, last_results_seq=results_seq, last_failure_code=code,
            updated_at=now, deleted_at=None, deleted_reason=None,
        )
        return row.id, None

    def _apply_failure(self, conn: Connection, m: AnalysisFailure, item: _Prepared, now: datetime) -> Outcome:
        code = _code(m)
        track_id, stale = self._mark_failed(conn, m.path, item.seq, item.meta.stream_seq, code, now, size=m.size,
                                            mtime_ns=m.mtime_ns)
        if stale:
            return Outcome("failure", m.path, "stale", item.seq, f"{m.stage}: {code}: {stale}")
        self._record_failure(
            conn, path=m.path, track_id=track_id, code=code, message=m.message, stage=m.stage,
            attempts=m.attempts, engine=m.engine, source_seq=item.seq, results_seq=item.meta.stream_seq or None,
            created_at=now,
        )
        return Outcome("failure", m.path, "applied", item.seq, f"{m.stage}: {code}: {m.message}")

    def _apply_invalid(self, conn: Connection, item: _Prepared, now: datetime) -> Outcome:
        path = item.raw_path or ""
        track_id = None
        if path and item.touches_track:
            order_seq = item.seq if item.seq_checked else 0  # 0: marks a new row failed, never outranks a stored one
            track_id, _stale_ = self._mark_failed(conn, path, order_seq, item.meta.stream_seq, INVALID, now)
        text_ = f"invalid results message (results seq {item.meta.stream_seq}"
        text_ += f", path {path!r}): " if path else ", path unreadable): "
        text_ += item.problem or "unknown problem"
        self._record_failure(
            conn, path=path, track_id=track_id, code=INVALID, message=text_, stage="validate", attempts=1,
            engine=item.raw_engine, source_seq=item.seq, results_seq=item.meta.stream_seq or None, created_at=now,
        )
        return Outcome("invalid", path or None, "recorded", item.seq, item.problem or "")

    def _apply_removed(self, conn: Connection, m: TrackRemoved, seq: int, results_seq: int, now: datetime) -> Outcome:
        row = self._track(conn, m.path)
        stale = _stale(row, seq, results_seq)
        if stale:
            return Outcome("removed", m.path, "stale", seq, stale)
        self._tombstone(conn, row, m.path, seq, results_seq, now, observed=_utc(m.observed_at), reason=m.reason)
        return Outcome("removed", m.path, "applied", seq, f"tombstone ({m.reason})")

    def _tombstone(self, conn: Connection, row, path: str, seq: int, results_seq: int, now: datetime,
                   observed: datetime | None = None, reason: str = "moved") -> None:
        # deleted_at is when the watcher saw the file go (from the message), so a replay
        # writes the same tombstone as the original run.
        deleted_at = observed or now
        if row is None:
            self._insert_track(conn, now, path=path, state="deleted", last_source_seq=seq,
                               last_results_seq=results_seq, deleted_at=deleted_at, deleted_reason=reason)
        else:
            self._update_track(
                conn, row.id, state="deleted", last_source_seq=seq, last_results_seq=results_seq, updated_at=now,
                deleted_at=row.deleted_at if row.state == "deleted" and row.deleted_at else deleted_at,
                deleted_reason=reason,
            )

    def _apply_moved(self, conn: Connection, m: TrackMoved, seq: int, results_seq: int, now: datetime) -> Outcome:
        if m.old_path == m.path:
            return Outcome("moved", m.path, "stale", seq, "old and new path are the same")
        old = self._track(conn, m.old_path)
        new = self._track(conn, m.path)
        old_stale = _stale(old, seq, results_seq)
        if old is not None and old.last_source_seq == seq and old_stale:
            # the old path's tombstone event (the move's own) was answered by another message: nothing to do
            return Outcome("moved", m.path, "stale", seq, f"source: {old_stale}")
        old_current = old is not None and old_stale is None
        new_stale = _stale(new, seq, results_seq)
        if new_stale:
            # The destination already holds newer information: it wins. The file left the old path.
            if old is None or old_current:
                self._tombstone(conn, old, m.old_path, seq, results_seq, now, observed=_utc(m.observed_at))
            return Outcome("moved", m.path, "stale", seq, f"destination: {new_stale}")
        file_values = {k: v for k, v in (("size", m.size), ("mtime_ns", m.mtime_ns), ("inode", m.inode)) if v is not None}
        if old is not None and old_current and old.state != "deleted":
            if new is None:
                # Move the row itself (id and fingerprint follow), leave a tombstone at the old path.
                self._update_track(
                    conn, old.id, path=m.path, last_source_seq=seq, last_results_seq=results_seq, updated_at=now,
                    deleted_at=None, deleted_reason=None, **file_values,
                )
                self._tombstone(conn, None, m.old_path, seq, results_seq, now, observed=_utc(m.observed_at))
                return Outcome("moved", m.path, "applied", seq, f"from {m.old_path}")
            fp = self._fingerprint(conn, old.id)
            if fp is not None:
                values = {k: v for k, v in fp._mapping.items() if k != "track_id"}
                values["updated_at"] = now
                self._upsert_fingerprint(conn, new.id, values)
            self._update_track(
                conn, new.id, state="active" if fp is not None else ("failed" if old.state == "failed" else "pending"),
                content_id=old.content_id, size=old.size, mtime_ns=old.mtime_ns, inode=old.inode,
                last_failure_code=old.last_failure_code, last_source_seq=seq, last_results_seq=results_seq,
                updated_at=now, deleted_at=None, deleted_reason=None,
            )
            if file_values:
                self._update_track(conn, new.id, **file_values)
            self._tombstone(conn, old, m.old_path, seq, results_seq, now, observed=_utc(m.observed_at))
            return Outcome("moved", m.path, "applied", seq, f"from {m.old_path} (replaced an older row)")
        # Old path unknown (or newer than the move, or a tombstone): nothing to carry.
        if old is None:
            self._tombstone(conn, None, m.old_path, seq, results_seq, now, observed=_utc(m.observed_at))
        elif old_current:
            self._update_track(conn, old.id, last_source_seq=seq, last_results_seq=results_seq, updated_at=now)
        if new is None:
            self._insert_track(conn, now, path=m.path, state="pending", last_source_seq=seq,
                               last_results_seq=results_seq, **file_values)
        else:
            state = "pending" if new.state == "deleted" else new.state
            self._update_track(
                conn, new.id, state=state, last_source_seq=seq, last_results_seq=results_seq, updated_at=now,
                deleted_at=None, deleted_reason=None, **file_values,
            )
        return Outcome("moved", m.path, "applied", seq, f"from unknown {m.old_path}: pending")
