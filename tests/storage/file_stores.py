"""The file stores as they were before the database (frozen copy): the writers of the legacy format.

``rvc.storage.legacy`` imports ``VOICES_DIR`` and ``STATE_DIR`` as these
classes wrote them (``<name>/voice.json`` + ``reference-<sha16>.wav``;
``config.json`` + ``reference.wav``), so the import tests write their input
with this code, unchanged but for names, rather than with hand-made files.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from pydantic import ValidationError

from rvc.errors import Conflict, InvalidInput, NotFound, VoiceError
from rvc.processing.contract import SynthesisDefaults, SynthesisOverrides
from rvc.processing.voices import REFERENCE_RATE, SavedVoice, VoiceRecord, check_voice_name
from rvc.storage import StoredReference
from rvc.storage.names import is_voice_name

__all__ = ["SEEDED_FILE", "FileDefaultsStore", "FileVoiceStore"]

logger = logging.getLogger(__name__)

SEEDED_FILE = ".default-voice-seeded"  # what rvc.processing.services wrote into VOICES_DIR
_RECORD = "voice.json"


class FileVoiceStore:
    """Saved voices in a folder; thread-safe (one lock: every operation is a few small file ops).

    ``check_model`` validates an RVC model name and returns its stem (the
    services pass one that looks in WEIGHTS_DIR); None accepts any name.
    """

    def __init__(self, folder: Path, *, check_model: Any = None) -> None:
        self.folder = Path(folder)
        self._check_model = check_model
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading
    def _record_path(self, name: str) -> Path:
        return self.folder / check_voice_name(name) / _RECORD

    def _read_record(self, name: str) -> VoiceRecord | None:
        path = self._record_path(name)
        try:
            return VoiceRecord.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (ValidationError, ValueError) as exc:
            logger.warning("ignoring unreadable saved voice %s: %s", path, exc)
            return None

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(
            entry.name for entry in self.folder.iterdir()
            if is_voice_name(entry.name) and (entry / _RECORD).is_file()
        )

    def records(self) -> list[VoiceRecord]:
        with self._lock:
            found = (self._read_record(name) for name in self.names())
            return [record for record in found if record is not None]

    def _missing(self, name: str) -> NotFound:
        shown = ", ".join(self.names()) or "none saved yet (POST /voices)"
        return NotFound(f"no saved voice {name!r} (saved voices: {shown})", field="voice")

    def record(self, name: str) -> VoiceRecord:
        with self._lock:
            record = self._read_record(name)
        if record is None:
            raise self._missing(name)
        return record

    def find(self, name: str) -> SavedVoice | None:
        """The voice with its clip, or None when no voice has that (valid) name."""
        with self._lock:
            record = self._read_record(name)
            if record is None:
                return None
            clip = self.folder / name / record.reference_file
            wav, rate = sf.read(clip, dtype="float32")
        samples = np.ascontiguousarray(wav, dtype=np.float32).reshape(-1)
        if rate != REFERENCE_RATE:
            raise VoiceError(f"saved voice {name!r}: {clip.name} is {rate} Hz, expected {REFERENCE_RATE}")
        samples.setflags(write=False)
        return SavedVoice(record, samples)

    def get(self, name: str) -> SavedVoice:
        saved = self.find(name)
        if saved is None:
            raise self._missing(name)
        return saved

    # ------------------------------------------------------------------ writing
    def _model(self, rvc_model: str | None) -> str | None:
        if rvc_model is None or self._check_model is None:
            return rvc_model
        try:
            return self._check_model(rvc_model)
        except VoiceError as exc:
            raise InvalidInput(exc.message, field="rvc_model") from exc

    def _write(self, record: VoiceRecord, reference_wav: np.ndarray | None) -> None:
        folder = self.folder / record.name
        if reference_wav is not None:
            buffer = io.BytesIO()
            sf.write(buffer, reference_wav, REFERENCE_RATE, subtype="FLOAT", format="WAV")
            atomic_write_bytes(folder / record.reference_file, buffer.getvalue())
        atomic_write_bytes(folder / _RECORD, json.dumps(record.model_dump(), indent=2).encode())
        for stale in folder.glob("reference-*.wav"):
            if stale.name != record.reference_file:
                stale.unlink(missing_ok=True)

    def create(
        self,
        name: str,
        reference_wav: np.ndarray,
        *,
        reference_text: str = "",
        rvc_model: str | None = None,
        defaults: SynthesisOverrides | None = None,
        description: str = "",
        overwrite: bool = False,
    ) -> VoiceRecord:
        """Save a voice. reference_wav: (T,) float32 at 16 kHz. Conflict (409) if it exists and not ``overwrite``."""
        check_voice_name(name)
        samples = _clip(reference_wav)
        model = self._model(rvc_model)
        now = time.time()
        with self._lock:
            existing = self._read_record(name)
            if existing is not None and not overwrite:
                raise Conflict(
                    f"a voice named {name!r} exists; send overwrite=true to replace it, or PATCH /voices/{name}",
                    field="name",
                )
            record = _validated_record(
                name=name, description=description, reference_text=reference_text, rvc_model=model,
                defaults=_voice_defaults(defaults), created_at=existing.created_at if existing else now,
                updated_at=now, **_clip_fields(samples),
            )
            self._write(record, samples)
        logger.info("saved voice %s (%.1f s clip, rvc_model %s)", name, record.reference_seconds, model)
        return record

    def update(
        self,
        name: str,
        *,
        reference_wav: np.ndarray | None = None,
        changes: dict[str, Any] | None = None,
        defaults: SynthesisOverrides | None = None,
    ) -> VoiceRecord:
        """Change the fields given: ``changes`` may hold description, reference_text and rvc_model
        (None there: the service default); ``defaults`` are merged field by field over the voice's."""
        check_voice_name(name)
        changes = dict(changes or {})
        unknown = set(changes) - {"description", "reference_text", "rvc_model"}
        if unknown:
            raise InvalidInput(f"cannot change {sorted(unknown)} of a voice", field=sorted(unknown)[0])
        if "rvc_model" in changes:
            changes["rvc_model"] = self._model(changes["rvc_model"])
        samples = None if reference_wav is None else _clip(reference_wav)
        with self._lock:
            existing = self._read_record(name)
            if existing is None:
                raise self._missing(name)
            merged = existing.defaults
            if defaults is not None:
                merged = existing.defaults.model_copy(update=_voice_defaults(defaults).model_dump(exclude_none=True))
            fields = {**existing.model_dump(), **changes, "defaults": merged, "updated_at": time.time()}
            if samples is not None:
                fields.update(_clip_fields(samples))
            record = _validated_record(**fields)
            self._write(record, samples)
        return record

    def delete(self, name: str) -> VoiceRecord:
        with self._lock:
            record = self._read_record(name)
            if record is None:
                raise self._missing(name)
            folder = self.folder / name
            (folder / _RECORD).unlink()  # the voice is gone from here on; the rest is cleanup
            shutil.rmtree(folder, ignore_errors=True)
        logger.info("deleted voice %s", name)
        return record


def _clip(reference_wav: np.ndarray) -> np.ndarray:
    samples = np.ascontiguousarray(reference_wav, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0 or not np.isfinite(samples).all():
        raise InvalidInput("reference_audio must be non-empty finite mono audio", field="reference_audio")
    return samples


def _clip_fields(samples: np.ndarray) -> dict[str, Any]:
    digest = hashlib.sha256(samples.tobytes()).hexdigest()
    return {
        "reference_file": f"reference-{digest[:16]}.wav", "reference_sha256": digest,
        "reference_seconds": round(samples.size / REFERENCE_RATE, 3),
    }


def _voice_defaults(defaults: SynthesisOverrides | None) -> SynthesisOverrides:
    """A voice's own defaults: the transcript lives in ``reference_text``, not here."""
    if defaults is None:
        return SynthesisOverrides()
    return defaults.model_copy(update={"reference_text": None})


def _validated_record(**fields: Any) -> VoiceRecord:
    try:
        return VoiceRecord.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or None
        raise InvalidInput(f"{field}: {error['msg']}", field=field) from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class FileDefaultsStore:
    """Thread-safe holder of ``SynthesisDefaults`` and the default reference clip."""

    def __init__(self, folder: Path | None) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._defaults = SynthesisDefaults()
        self._reference: StoredReference | None = None
        if folder is not None:
            self._load(folder)

    @property
    def _config_path(self) -> Path:
        assert self._folder is not None
        return self._folder / "config.json"

    @property
    def _reference_path(self) -> Path:
        assert self._folder is not None
        return self._folder / "reference.wav"

    def _load(self, folder: Path) -> None:
        if self._config_path.is_file():
            try:
                self._defaults = SynthesisDefaults.model_validate_json(self._config_path.read_text())
            except ValueError as exc:
                logger.warning("ignoring unreadable stored config %s: %s", self._config_path, exc)
        if self._reference_path.is_file():
            try:
                wav, rate = sf.read(self._reference_path, dtype="float32")
                self._reference = _make_reference(np.asarray(wav), int(rate), self._reference_path.stat().st_mtime)
            except (sf.LibsndfileError, RuntimeError) as exc:
                logger.warning("ignoring unreadable stored reference %s: %s", self._reference_path, exc)

    def get(self) -> SynthesisDefaults:
        return self._defaults

    def update(self, overrides: SynthesisOverrides) -> SynthesisDefaults:
        with self._lock:
            updated = overrides.apply(self._defaults)
            if self._folder is not None:
                atomic_write_bytes(self._config_path, json.dumps(updated.model_dump(), indent=2).encode())
            self._defaults = updated
            return updated

    def reference(self) -> StoredReference | None:
        return self._reference

    def set_reference(self, wav: np.ndarray, sample_rate: int) -> StoredReference:
        reference = _make_reference(wav, sample_rate, time.time())
        with self._lock:
            if self._folder is not None:
                buffer = io.BytesIO()
                sf.write(buffer, reference.wav, sample_rate, subtype="FLOAT", format="WAV")
                atomic_write_bytes(self._reference_path, buffer.getvalue())
            self._reference = reference
        return reference

    def clear_reference(self) -> bool:
        with self._lock:
            existed = self._reference is not None
            self._reference = None
            if self._folder is not None:
                self._reference_path.unlink(missing_ok=True)
            return existed


def _make_reference(wav: np.ndarray, sample_rate: int, stored_at: float) -> StoredReference:
    samples = np.ascontiguousarray(wav, dtype=np.float32).reshape(-1)
    samples.setflags(write=False)
    return StoredReference(samples, sample_rate, hashlib.sha256(samples.tobytes()).hexdigest(), stored_at)
