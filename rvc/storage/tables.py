"""The tables as the code queries them today; the migrations are the history that builds them.

A migration is a frozen snapshot and never imports this module: when a table
changes, ``versions/`` gains a migration and this file follows it.

Clips are stored as raw little-endian float32 samples (``samples``) with
their rate, not as WAV files: what Triton receives is exactly what was saved,
and ``reference_sha256`` (of those bytes) lets a reader skip the blob when it
already holds that clip.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, LargeBinary, MetaData, String, Table, Text

from rvc.storage.names import VOICE_NAME_MAX

__all__ = ["DEFAULT_REFERENCE", "META", "STORED_DEFAULTS", "VOICES", "metadata"]

metadata = MetaData()

META = Table(
    "storage_meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

VOICES = Table(
    "voices",
    metadata,
    Column("name", String(VOICE_NAME_MAX), primary_key=True),
    Column("record", Text, nullable=False),  # the record as JSON, validated by the caller's model on read
    Column("reference_sha256", String(64), nullable=False),
    Column("sample_rate", Integer, nullable=False),
    Column("samples", LargeBinary, nullable=False),  # empty for a designed voice (it has no clip)
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("global_tokens", Text, nullable=True),  # JSON: the 32 speaker tokens (designed, or the clip's)
    Column("semantic_tokens", Text, nullable=True),  # JSON: the clip's semantic tokens (with global_tokens)
)

STORED_DEFAULTS = Table(
    "stored_defaults",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

DEFAULT_REFERENCE = Table(
    "default_reference",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("sample_rate", Integer, nullable=False),
    Column("samples", LargeBinary, nullable=False),
    Column("stored_at", Float, nullable=False),
)
