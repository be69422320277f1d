"""Long-form jobs and the audio of their finished sentences.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("reference", sa.LargeBinary, nullable=False),
        sa.Column("sentences_total", sa.Integer, nullable=False),
        sa.Column("chars_total", sa.Integer, nullable=False),
        sa.Column("sentences_done", sa.Integer, nullable=False),
        sa.Column("chars_done", sa.Integer, nullable=False),
        sa.Column("audio_seconds", sa.Float, nullable=False),
        sa.Column("work_s", sa.Float, nullable=False),
        sa.Column("warnings", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("lease_expires", sa.Float, nullable=True),
        sa.Column("not_before", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
    )
    op.create_index("jobs_state_created", "jobs", ["state", "created_at"])
    op.create_table(
        "job_sentences",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("sample_rate", sa.Integer, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("audio", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_sentences")
    op.drop_index("jobs_state_created", table_name="jobs")
    op.drop_table("jobs")
