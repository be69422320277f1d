"""The storage layer: saved voices, stored defaults and the default reference clip, in one database.

SQLite in ``STATE_DIR`` (``voice-service.sqlite3``) unless ``DATABASE_URL``
names another database; ``postgresql://user:password@host:5432/db`` uses
psycopg 3. Several gateways may share a PostgreSQL database: nothing is
cached in a process, writes are one transaction each and serialised, and
every error of the database is ``StorageUnavailable`` (503).

Wiring (``rvc.processing``)::

    database = open_storage(settings.database_url, state_dir=settings.state_dir, voices_dir=settings.voices_dir)
    voices = SavedVoiceStore(database, record_type=VoiceRecord, saved_type=SavedVoice, check_model=...)
    defaults = StoredDefaults(database, SynthesisDefaults)
    markers = Markers(database)   # e.g. SEEDED_MARKER, once the default voice was registered

``open_storage`` runs the migrations and, once per database, imports the
file stores that came before (``rvc.storage.legacy``; the files stay).

Adding a table or column (e.g. the jobs of long-form synthesis):

1. ``python -m rvc.storage revision -m "jobs"`` writes
   ``migrations/versions/<rev>_jobs.py`` with ``down_revision`` set to the
   current head (or copy ``0001_initial.py`` and set ``revision`` and
   ``down_revision`` by hand). Fill ``upgrade``/``downgrade`` with ``op``
   calls on literal columns (never import ``tables``: a migration is a
   snapshot). Revisions form one line: ``tests/storage`` fails on two heads.
2. Mirror the change in ``tables.py``, which the queries use.
3. Nothing else: every gateway runs ``upgrade head`` at start (under the
   database's write lock, so two starting together migrate once), and
   ``tests/storage`` upgrades an empty database on SQLite and PostgreSQL.
"""

from __future__ import annotations

from rvc.errors import StorageUnavailable
from rvc.storage.clips import StoredReference
from rvc.storage.database import Database, database_url
from rvc.storage.defaults import Markers, StoredDefaults
from rvc.storage.legacy import IMPORT_MARKER, SEEDED_MARKER, LegacyImport, import_legacy_files
from rvc.storage.names import VOICE_NAME_MAX, VOICE_NAME_PATTERN, check_voice_name, is_voice_name
from rvc.storage.start import open_storage
from rvc.storage.voices import REFERENCE_RATE, SavedVoiceStore, SpeakerTokens, VoiceRecordModel

__all__ = [
    "IMPORT_MARKER",
    "REFERENCE_RATE",
    "SEEDED_MARKER",
    "VOICE_NAME_MAX",
    "VOICE_NAME_PATTERN",
    "Database",
    "LegacyImport",
    "Markers",
    "SavedVoiceStore",
    "SpeakerTokens",
    "StorageUnavailable",
    "StoredDefaults",
    "StoredReference",
    "VoiceRecordModel",
    "check_voice_name",
    "database_url",
    "import_legacy_files",
    "is_voice_name",
    "open_storage",
]
