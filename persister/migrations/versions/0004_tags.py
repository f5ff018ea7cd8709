"""track_tags: the file's tags (artist, album, title, numbers, genre, year, duration, MusicBrainz ids),
one row per track; an index on tracks.updated_at (max() of it is part of the similarity cache's key).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "track_tags",
        sa.Column("track_id", _ID, sa.ForeignKey("tracks.id", name="fk_track_tags_track_id_tracks"), nullable=False),
        sa.Column("artist", sa.Text(), nullable=True),
        sa.Column("album_artist", sa.Text(), nullable=True),
        sa.Column("album", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("track_number", sa.Integer(), nullable=True),
        sa.Column("disc_number", sa.Integer(), nullable=True),
        sa.Column("genre", sa.Text(), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("mb_recording_id", sa.Text(), nullable=True),
        sa.Column("mb_release_id", sa.Text(), nullable=True),
        sa.Column("mb_artist_id", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("track_id", name="pk_track_tags"),
    )
    op.create_index("ix_tracks_updated_at", "tracks", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_tracks_updated_at", table_name="tracks")
    op.drop_table("track_tags")
