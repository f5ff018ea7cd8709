"""tracks.last_results_seq: the results-stream message that last wrote the row.

A result's ``source_seq`` (the event it answers) orders the writes; an EQUAL
sequence re-applies only when it comes from the same results message (a
redelivery or a replay of it): another message answering an event already
answered is stale. Rows written before this revision hold 0 (unknown writer),
so a real message never re-applies over them on an equal sequence.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tracks", sa.Column("last_results_seq", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("tracks", "last_results_seq")
