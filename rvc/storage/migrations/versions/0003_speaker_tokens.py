"""Saved voices keep speaker tokens: a designed voice's 32 global tokens (it has no clip), or those
of a voice's clip, so the clip is tokenized once ever.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("voices") as batch:
        batch.add_column(sa.Column("global_tokens", sa.Text, nullable=True))  # JSON list of 32 ints
        batch.add_column(sa.Column("semantic_tokens", sa.Text, nullable=True))  # JSON list, the clip's


def downgrade() -> None:
    with op.batch_alter_table("voices") as batch:
        batch.drop_column("semantic_tokens")
        batch.drop_column("global_tokens")
