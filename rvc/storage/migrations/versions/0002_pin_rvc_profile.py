"""Voices saved before RVC inference profiles existed keep converting as they did: profile 2024.

The service's default profile became 2026 (the official WebUI's main, which fills unvoiced pitch and
changes how a voice sounds). A voice a user tuned and saved against the 20240604 behaviour is pinned
to ``2024`` in its record's ``defaults``; voices saved from now on, and requests without a saved
voice, follow RVC_PROFILE. A user moves a voice over with ``PATCH /voices/{name}`` (rvc_profile).
The record is JSON (``voices.record``), so this is a data migration, no column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

PINNED = "2024"
_VOICES = sa.table("voices", sa.column("name", sa.String), sa.column("record", sa.Text))


def _records(connection: sa.Connection) -> list[tuple[str, dict[str, object]]]:
    """Every voice whose record parses to a JSON object; an unreadable one stays as it is (the store
    reports it on read). Read whole before any update, so the cursor never sees its own writes."""
    readable = []
    for name, record in connection.execute(sa.select(_VOICES.c.name, _VOICES.c.record)).all():
        try:
            document = json.loads(record)
        except ValueError:
            continue
        if isinstance(document, dict):
            readable.append((name, document))
    return readable


def _store(connection: sa.Connection, name: str, document: dict[str, object]) -> None:
    connection.execute(sa.update(_VOICES).where(_VOICES.c.name == name).values(record=json.dumps(document)))


def upgrade() -> None:
    connection = op.get_bind()
    for name, document in _records(connection):
        defaults = document.get("defaults")
        if not isinstance(defaults, dict):
            defaults = {}
        if defaults.get("rvc_profile") is not None:
            continue
        document["defaults"] = {**defaults, "rvc_profile": PINNED}
        _store(connection, name, document)


def downgrade() -> None:
    connection = op.get_bind()
    for name, document in _records(connection):
        defaults = document.get("defaults")
        if isinstance(defaults, dict) and "rvc_profile" in defaults:
            del defaults["rvc_profile"]  # 0001's records had no such field
            _store(connection, name, document)
