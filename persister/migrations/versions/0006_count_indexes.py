"""Indexes that answer `status`'s counts without reading a row per track.

``tracks (state, last_failure_code)`` replaces ``tracks (state)``: the same
prefix for every lookup by state, and the failed tracks by code straight from
the index. ``track_fingerprints (analyzed_at)``: the fingerprints analysed in
the last minutes (throughput) by a range instead of a scan. At 500,000 tracks
the counts took 547 ms on SQLite before (``persister/queries.py`` says how
each is taken now).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tracks_state_failure_code", "tracks", ["state", "last_failure_code"])
    op.drop_index("ix_tracks_state", table_name="tracks")
    op.create_index("ix_track_fingerprints_analyzed_at", "track_fingerprints", ["analyzed_at"])


def downgrade() -> None:
    op.drop_index("ix_track_fingerprints_analyzed_at", table_name="track_fingerprints")
    op.create_index("ix_tracks_state", "tracks", ["state"])
    op.drop_index("ix_tracks_state_failure_code", table_name="tracks")
