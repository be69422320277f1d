"""Saved voices: a name bound to a reference clip, its transcript, an RVC model and default parameters.

A request that says ``voice=<name>`` needs no upload: the clip is read from
here and sent to Triton as the same float32 samples every time, so the
``spark_tts`` model's speaker cache (an LRU keyed by a hash of the clip's
samples, ``speaker_cache_size`` in the model repository) finds its global
and semantic tokens after the first request and skips the audio tokenizer.

On disk, under ``VOICES_DIR``, one folder per voice::

    <name>/voice.json                 the VoiceRecord; written last, so its presence makes the voice exist
    <name>/reference-<sha16>.wav      the clip: float32 WAV, mono, 16 kHz, named by its content hash

Every file is written beside its target and renamed over it, and a new clip
gets a new file name, so a crash at any point leaves either the old voice or
the new one; stale clips are removed after the record that names them is
replaced. Names are ``[A-Za-z0-9_.-]{1,64}`` not starting with a dot: they
are folder names and never leave ``VOICES_DIR``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rvc.errors import Conflict, InvalidInput, NotFound, VoiceError
from rvc.processing.contract import DESCRIPTION_MAX_CHARS, SynthesisDefaults, SynthesisOverrides, constraints
from rvc.processing.defaults_store import atomic_write_bytes

__all__ = [
    "DEFAULT_VOICE",
    "REFERENCE_RATE",
    "VOICE_NAME_PATTERN",
    "SavedVoice",
    "VoiceRecord",
    "VoiceStore",
    "check_voice_name",
    "demo_reference_clip",
]

logger = logging.getLogger(__name__)

DEFAULT_VOICE = "default"
REFERENCE_RATE = 16000  # Spark-TTS's rate: clips are stored as Triton receives them
# 1-64 of [A-Za-z0-9_.-], not starting with '.': the one rule, enforced here and published in the OpenAPI schema
VOICE_NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(VOICE_NAME_PATTERN)
_RECORD = "voice.json"


def check_voice_name(name: str, *, field: str = "name") -> str:
    """Return ``name`` if it is a safe saved-voice name; InvalidInput naming the rule otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid voice name {name!r}: use 1-64 letters, digits, '_', '-' or '.', not starting with '.'",
            field=field,
        )
    return name


class VoiceRecord(BaseModel):
    """What ``voice.json`` holds and ``GET /voices/{name}`` shows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = Field("", max_length=DESCRIPTION_MAX_CHARS)
    reference_text: str = Field(
        "", description="transcript of the clip ('' when unknown)",
        **constraints(SynthesisDefaults.model_fields["reference_text"]),
    )
    rvc_model: str | None = Field(
        None, description="RVC .pth stem in WEIGHTS_DIR; null: the service's RVC_MODEL at request time"
    )
    defaults: SynthesisOverrides = Field(
        default_factory=SynthesisOverrides,
        description="parameters this voice sets over the stored defaults; skip_rvc true means no RVC",
    )
    reference_file: str
    reference_sha256: str
    reference_seconds: float
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class SavedVoice:
    record: VoiceRecord
    reference_wav: np.ndarray  # (T,) float32 at 16 kHz, read-only

    def overrides(self) -> SynthesisOverrides:
        """The voice's parameters as overrides of the stored defaults (transcript included)."""
        update = {"reference_text": self.record.reference_text} if self.record.reference_text else {}
        return self.record.defaults.model_copy(update=update)


class VoiceStore:
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
            if _NAME.fullmatch(entry.name) and (entry / _RECORD).is_file()
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


def demo_reference_clip(seconds: float = 3.0, *, seed: int = 0) -> np.ndarray:
    """A speech-like (T,) float32 clip at 16 kHz: a gliding voiced source shaped by three vowel formants.

    The demo assets ship no recording, and random-weight models make noise of
    any clip, so the demo's default voice uses this: deterministic,
    non-silent, syllable-paced (4 Hz envelope), long enough for the reference checks.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * REFERENCE_RATE)) / REFERENCE_RATE
    f0 = 120.0 + 20.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / REFERENCE_RATE
    voiced = np.zeros_like(t)
    for harmonic in range(1, 30):
        frequency = harmonic * f0
        envelope = sum(np.exp(-(((frequency - formant) / 180.0) ** 2)) for formant in (700.0, 1200.0, 2600.0))
        voiced += envelope * np.sin(harmonic * phase) / harmonic**0.5
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t) ** 2
    clip = voiced * syllables + 0.01 * rng.standard_normal(t.size)
    return (0.3 * clip / np.max(np.abs(clip))).astype(np.float32)
