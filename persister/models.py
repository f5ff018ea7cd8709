"""SQLAlchemy 2 models: the tables people query.

- ``tracks``: one row per path ever seen. ``state`` is ``active`` (has a
  fingerprint), ``pending`` (known, no fingerprint yet), ``failed`` (the latest
  analysis failed and there is no fingerprint) or ``deleted`` (a tombstone:
  rows are never hard-deleted; ``deleted_reason`` says why: ``gone``, ``excluded``
  by the settings, or ``moved``). ``last_source_seq`` is the events-stream
  sequence of the latest message applied: messages with a smaller sequence
  change nothing (last-write-wins); ``last_results_seq`` is the results-stream
  sequence of that message: an EQUAL source sequence re-applies only from the
  same results message (a redelivery or replay), never from another one.
- ``track_fingerprints``: one row per track, the 25 dimensions as NOT NULL
  floats named exactly as :data:`trackprint.fingerprint.DIMENSIONS`.
- ``analysis_failures``: one row per (path, code, source_seq): a visible record
  of every failed analysis and every invalid bus message.

The schema itself is created by the Alembic migrations in
``persister/migrations``; these models must stay in step with them (a test
compares them).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from trackprint.fingerprint import DIMENSIONS

TRACK_STATES = ("active", "pending", "failed", "deleted")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Track(Base):
    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    inode: Mapped[int | None] = mapped_column(BigInteger)
    content_id: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    last_source_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # the results-stream message that last wrote the row (0: unknown, rows older than migration 0005)
    last_results_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    last_failure_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_reason: Mapped[str | None] = mapped_column(String(16))  # gone | excluded | moved (tombstones only)

    __table_args__ = (
        CheckConstraint("state IN ('active', 'pending', 'failed', 'deleted')", name="state"),
        Index("ix_tracks_state_failure_code", "state", "last_failure_code"),  # status: by state, failed by code
        Index("ix_tracks_content_id", "content_id"),
        Index("ix_tracks_updated_at", "updated_at"),  # max(updated_at): the similarity cache's key
    )


class TrackFingerprint(Base):
    __tablename__ = "track_fingerprints"

    track_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("tracks.id"), primary_key=True
    )
    fingerprint_version: Mapped[int] = mapped_column(Integer, nullable=False)
    engine: Mapped[str] = mapped_column(String(16), nullable=False)
    content_id: Mapped[str | None] = mapped_column(String(128))
    codec: Mapped[str | None] = mapped_column(String(32))
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    analysis_s: Mapped[float | None] = mapped_column(Float)
    reused: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    source_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    analyzed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    # The 25 dimensions, one NOT NULL float column each, exactly as named in DIMENSIONS
    # (the class namespace is a plain dict in the class body).
    for _name in DIMENSIONS:
        vars()[_name] = mapped_column(_name, Float, nullable=False)
    del _name

    __table_args__ = (
        Index("ix_track_fingerprints_fingerprint_version", "fingerprint_version"),
        Index("ix_track_fingerprints_engine", "engine"),
        Index("ix_track_fingerprints_updated_at", "updated_at"),
        Index("ix_track_fingerprints_analyzed_at", "analyzed_at"),  # status: analysed in the last minutes
    )


class TrackTags(Base):
    """The file's tags (``trackprint.contracts.Tags``), one row per track, rewritten with every fingerprint
    result (a retag arrives as a reused result with fresh tags). No row: tags never read (older results)."""

    __tablename__ = "track_tags"

    track_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("tracks.id"), primary_key=True
    )
    artist: Mapped[str | None] = mapped_column(Text)
    album_artist: Mapped[str | None] = mapped_column(Text)
    album: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    track_number: Mapped[int | None] = mapped_column(Integer)
    disc_number: Mapped[int | None] = mapped_column(Integer)
    genre: Mapped[str | None] = mapped_column(Text)
    year: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    mb_recording_id: Mapped[str | None] = mapped_column(Text)
    mb_release_id: Mapped[str | None] = mapped_column(Text)
    mb_artist_id: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class AnalysisFailure(Base):
    __tablename__ = "analysis_failures"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, nullable=False)  # '' when an invalid message had no readable path
    track_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("tracks.id")
    )
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    stage: Mapped[str] = mapped_column(String(64), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    engine: Mapped[str | None] = mapped_column(String(16))
    source_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    results_seq: Mapped[int | None] = mapped_column(BigInteger)  # results-stream sequence (get_msg)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("path", "code", "source_seq"),
        Index("ix_analysis_failures_code", "code"),
        Index("ix_analysis_failures_track_id", "track_id"),
    )


class PersisterHeartbeat(Base):
    """One row per persister host, rewritten by the outage probe: a real write, so a full disk or a
    read-only database is noticed (a ``SELECT 1`` succeeds on both)."""

    __tablename__ = "persister_heartbeat"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    written_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


tracks = Track.__table__
track_fingerprints = TrackFingerprint.__table__
track_tags = TrackTags.__table__
analysis_failures = AnalysisFailure.__table__
persister_heartbeat = PersisterHeartbeat.__table__
metadata = Base.metadata
