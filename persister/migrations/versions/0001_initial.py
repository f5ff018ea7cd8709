"""Initial schema: tracks, track_fingerprints, analysis_failures.

Revision ID: 0001
Revises:
Create Date: 2025-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copy of trackprint.fingerprint.DIMENSIONS at this revision.
DIMENSIONS = (
    "sub_bass_pct", "bass_pct", "low_mid_pct", "mid_pct", "upper_mid_pct", "presence_pct", "air_pct",
    "lufs", "crest_db", "bass_mid_ratio",
    "tempo_bpm", "rhythm_stability", "transient_density", "silence_ratio",
    "spectral_centroid", "spectral_rolloff", "spectral_flatness",
    "harmonic_ratio", "pitch_stability", "chroma_energy",
    "dynamic_range_variation", "loudness_variation_std", "peak_consistency",
    "stereo_width", "phase_correlation",
)

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tracks",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger()),
        sa.Column("mtime_ns", sa.BigInteger()),
        sa.Column("inode", sa.BigInteger()),
        sa.Column("content_id", sa.String(128)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("last_source_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_failure_code", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_tracks"),
        sa.UniqueConstraint("path", name="uq_tracks_path"),
        sa.CheckConstraint("state IN ('active', 'pending', 'failed', 'deleted')", name="ck_tracks_state"),
    )
    op.create_index("ix_tracks_state", "tracks", ["state"])
    op.create_index("ix_tracks_content_id", "tracks", ["content_id"])

    op.create_table(
        "track_fingerprints",
        sa.Column("track_id", ID, nullable=False),
        sa.Column("fingerprint_version", sa.Integer(), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("content_id", sa.String(128)),
        sa.Column("codec", sa.String(32)),
        sa.Column("sample_rate", sa.Integer()),
        sa.Column("channels", sa.Integer()),
        sa.Column("duration_s", sa.Float()),
        sa.Column("analysis_s", sa.Float()),
        sa.Column("reused", sa.Boolean(), nullable=False),
        sa.Column("source_seq", sa.BigInteger(), nullable=False),
        sa.Column("analyzed_at", TS),
        sa.Column("updated_at", TS, nullable=False),
        *[sa.Column(name, sa.Float(), nullable=False) for name in DIMENSIONS],
        sa.PrimaryKeyConstraint("track_id", name="pk_track_fingerprints"),
        sa.ForeignKeyConstraint(["track_id"], ["tracks.id"], name="fk_track_fingerprints_track_id_tracks"),
    )
    op.create_index("ix_track_fingerprints_fingerprint_version", "track_fingerprints", ["fingerprint_version"])
    op.create_index("ix_track_fingerprints_engine", "track_fingerprints", ["engine"])
    op.create_index("ix_track_fingerprints_updated_at", "track_fingerprints", ["updated_at"])

    op.create_table(
        "analysis_failures",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("track_id", ID),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("engine", sa.String(16)),
        sa.Column("source_seq", sa.BigInteger(), nullable=False),
        sa.Column("results_seq", sa.BigInteger()),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_analysis_failures"),
        sa.UniqueConstraint("path", "code", "source_seq", name="uq_analysis_failures_path_code_source_seq"),
        sa.ForeignKeyConstraint(["track_id"], ["tracks.id"], name="fk_analysis_failures_track_id_tracks"),
    )
    op.create_index("ix_analysis_failures_code", "analysis_failures", ["code"])
    op.create_index("ix_analysis_failures_track_id", "analysis_failures", ["track_id"])


def downgrade() -> None:
    op.drop_table("analysis_failures")
    op.drop_table("track_fingerprints")
    op.drop_table("tracks")
