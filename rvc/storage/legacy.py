"""Import of the file stores that came before the database (``VOICES_DIR``, ``STATE_DIR``).

Runs once per database, at start, in one write transaction: every readable
voice folder, ``config.json`` and ``reference.wav`` are copied in and the
marker ``legacy-import`` is written, or (on any database error) nothing is,
and the next start tries again. The files are only read, never moved or
deleted: they stay a backup, and a rollback to the file stores finds them.
A voice already in the database keeps the database's version (a database
that was used before is not overwritten by older files). The first gateway
to start on a fresh shared database imports its own files; files that other
gateways hold locally are not merged later (copy them to that gateway first).

What is skipped is logged with the reason, and stays on disk: a folder name
outside the voice-name rule, a ``voice.json`` that is not a JSON object or
names no clip, a clip that cannot be read or is not 16 kHz mono. Records are
stored as they are; the caller's record model validates them on read.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from sqlalchemy import Column, Connection, insert, select

from rvc.storage.clips import StoredReference, clip_bytes, clip_sha256
from rvc.storage.database import Database
from rvc.storage.defaults import SETTINGS_KEY, get_marker, put_reference, set_marker
from rvc.storage.names import is_voice_name
from rvc.storage.tables import DEFAULT_REFERENCE, STORED_DEFAULTS, VOICES
from rvc.storage.voices import REFERENCE_RATE

__all__ = ["IMPORT_MARKER", "SEEDED_FILE", "SEEDED_MARKER", "LegacyImport", "import_legacy_files"]

logger = logging.getLogger(__name__)

IMPORT_MARKER = "legacy-import"
SEEDED_FILE = ".default-voice-seeded"  # what rvc.processing.services wrote into VOICES_DIR
SEEDED_MARKER = "default-voice-seeded"
_RECORD = "voice.json"


@dataclass(frozen=True)
class LegacyImport:
    """What one import did; ``already_done`` when the marker was there (nothing read)."""

    voices: tuple[str, ...] = ()
    kept_in_database: tuple[str, ...] = ()
    skipped: tuple[str, ...] = field(default=())
    defaults: bool = False
    reference: bool = False
    seeded_marker: bool = False
    already_done: bool = False


def import_legacy_files(database: Database, *, voices_dir: Path | None, state_dir: Path | None) -> LegacyImport:
    """Copy today's files into the database unless that was done before; see the module docstring."""

    def write(connection: Connection) -> LegacyImport:
        if get_marker(connection, IMPORT_MARKER) is not None:
            return LegacyImport(already_done=True)
        voices, kept, skipped = _import_voices(connection, voices_dir) if voices_dir else ((), (), ())
        seeded_file = None if voices_dir is None else Path(voices_dir) / SEEDED_FILE
        seeded = seeded_file is not None and seeded_file.is_file()
        if seeded and get_marker(connection, SEEDED_MARKER) is None:
            set_marker(connection, SEEDED_MARKER, f"imported from {seeded_file}")
        defaults = reference = False
        if state_dir is not None:
            defaults = _import_config(connection, Path(state_dir) / "config.json")
            reference = _import_reference(connection, Path(state_dir) / "reference.wav")
        result = LegacyImport(tuple(voices), tuple(kept), tuple(skipped), defaults, reference, seeded)
        summary = {
            "at": time.time(), "voices_dir": str(voices_dir), "state_dir": str(state_dir),
            "voices": result.voices, "kept_in_database": result.kept_in_database, "skipped": result.skipped,
            "defaults": defaults, "reference": reference,
        }
        set_marker(connection, IMPORT_MARKER, json.dumps(summary))
        return result

    result = database.write(write)
    if not result.already_done:
        logger.info(
            "imported file stores into %s: %d voices (%d kept as stored, %d skipped), defaults %s, reference %s",
            database.describe(), len(result.voices), len(result.kept_in_database), len(result.skipped),
            result.defaults, result.reference,
        )
    return result


def _import_voices(connection: Connection, folder: Path) -> tuple[list[str], list[str], list[str]]:
    imported: list[str] = []
    kept: list[str] = []
    skipped: list[str] = []
    if not folder.is_dir():
        return imported, kept, skipped
    present = set(connection.execute(select(VOICES.c.name)).scalars())
    for entry in sorted(folder.iterdir()):
        if not (entry / _RECORD).is_file():
            continue
        if not is_voice_name(entry.name):
            skipped.append(f"{entry.name}: not a valid voice name")
            continue
        if entry.name in present:
            kept.append(entry.name)
            continue
        problem = _import_voice(connection, entry)
        if problem is None:
            imported.append(entry.name)
        else:
            logger.warning("not importing saved voice %s: %s (its files stay in place)", entry, problem)
            skipped.append(f"{entry.name}: {problem}")
    return imported, kept, skipped


def _import_voice(connection: Connection, folder: Path) -> str | None:
    """Insert one voice folder; the reason it cannot be imported, or None."""
    try:
        document = json.loads((folder / _RECORD).read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable {_RECORD}: {exc}"
    clip_name = document.get("reference_file") if isinstance(document, dict) else None
    if not isinstance(clip_name, str) or "/" in clip_name or "\\" in clip_name:
        return f"{_RECORD} names no reference clip"
    try:
        wav, rate = sf.read(folder / clip_name, dtype="float32")
    except (OSError, sf.LibsndfileError, RuntimeError) as exc:
        return f"unreadable clip {clip_name}: {exc}"
    samples = np.ascontiguousarray(wav, dtype=np.float32)
    if samples.ndim != 1 or rate != REFERENCE_RATE:
        return f"clip {clip_name} is {samples.ndim}-D at {rate} Hz, expected mono at {REFERENCE_RATE} Hz"
    digest = clip_sha256(samples)
    if document.get("reference_sha256") != digest:
        logger.warning("saved voice %s: clip hash differs from its record; importing the clip as it is", folder)
    defaults = document.get("defaults")
    if not isinstance(defaults, dict) or defaults.get("rvc_profile") is None:
        # saved before RVC profiles existed: it keeps its sound (migration 0002 says why)
        document["defaults"] = {**(defaults if isinstance(defaults, dict) else {}), "rvc_profile": "2024"}
    now = time.time()
    created_at = document.get("created_at")
    updated_at = document.get("updated_at")
    connection.execute(insert(VOICES).values(
        name=folder.name, record=json.dumps(document), reference_sha256=digest, sample_rate=int(rate),
        samples=clip_bytes(samples),
        created_at=float(created_at) if isinstance(created_at, int | float) else now,
        updated_at=float(updated_at) if isinstance(updated_at, int | float) else now,
    ))
    return None


def _wanted(connection: Connection, path: Path, key: Column[str]) -> bool:
    """Whether ``path`` is there to import into the table of ``key``: a table that holds a row
    already keeps the database's version (see the module docstring)."""
    return path.is_file() and connection.execute(select(key)).first() is None


def _import_config(connection: Connection, path: Path) -> bool:
    if not _wanted(connection, path, STORED_DEFAULTS.c.key):
        return False
    try:
        document = path.read_text()
        json.loads(document)
    except (OSError, ValueError) as exc:
        logger.warning("not importing stored config %s: %s (the file stays in place)", path, exc)
        return False
    connection.execute(insert(STORED_DEFAULTS).values(key=SETTINGS_KEY, document=document, updated_at=time.time()))
    return True


def _import_reference(connection: Connection, path: Path) -> bool:
    if not _wanted(connection, path, DEFAULT_REFERENCE.c.key):
        return False
    try:
        wav, rate = sf.read(path, dtype="float32")
    except (OSError, sf.LibsndfileError, RuntimeError) as exc:
        logger.warning("not importing stored reference %s: %s (the file stays in place)", path, exc)
        return False
    samples = np.ascontiguousarray(wav, dtype=np.float32).reshape(-1)
    samples.setflags(write=False)
    put_reference(connection, StoredReference(samples, int(rate), clip_sha256(samples), path.stat().st_mtime))
    return True
