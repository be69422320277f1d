"""The tables as the code queries them today; the migrations are the history that builds them.

A migration is a frozen snapshot and never imports this module: when a table
changes, ``versions/`` gains a migration and this file follows it.

Clips are stored as raw little-endian float32 samples (``samples``) with
their rate, not as WAV files: what Triton receives is exactly what was saved,
and ``reference_sha256`` (of those bytes) lets a reader skip the blob when it
already holds that clip.

A job's finished sentences are rows of ``job_sentences`` (FLAC, 16-bit, one
per sentence) rather than files under STATE_DIR: every gateway on the
database can resume the job or serve its audio, and a sentence row and the
job's progress commit in one transaction, so a resumed job neither repeats
nor drops a sentence. FLAC keeps speech at about half of PCM16's size (an
hour at 40 kHz is ~150-250 MB instead of ~290 MB).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table, Text

from rvc.storage.names import VOICE_NAME_MAX

__all__ = ["DEFAULT_REFERENCE", "JOBS", "JOB_SENTENCES", "META", "STORED_DEFAULTS", "VOICES", "metadata"]

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

JOBS = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("state", String(16), nullable=False),  # queued, running, done, failed, cancelled
    Column("request", Text, nullable=False),  # the resolved request as JSON (the caller's model validates it)
    Column("reference", LargeBinary, nullable=False),  # the reference clip, float32 little-endian at 16 kHz
    Column("sentences_total", Integer, nullable=False),
    Column("chars_total", Integer, nullable=False),
    Column("sentences_done", Integer, nullable=False),
    Column("chars_done", Integer, nullable=False),
    Column("audio_seconds", Float, nullable=False),
    Column("work_s", Float, nullable=False),  # seconds spent producing the finished sentences (for the ETA)
    Column("warnings", Text, nullable=False),  # JSON list of strings
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("owner", String(64), nullable=True),  # the gateway holding the lease while running
    Column("lease_expires", Float, nullable=True),
    Column("not_before", Float, nullable=False),  # a requeued job waits until then (a backend was down)
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Index("jobs_state_created", "state", "created_at"),
)

JOB_SENTENCES = Table(
    "job_sentences",
    metadata,
    Column("job_id", String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("sample_rate", Integer, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("audio", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)
