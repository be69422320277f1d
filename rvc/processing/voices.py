"""Saved voices: a name bound to a reference clip, its transcript, an RVC model and default parameters.

A designed voice (``POST /voices`` with ``gender``, ``pitch``, ``speed_level``
and a seed) has no clip: Spark-TTS generated it once from the attributes, and
the 32 global tokens it wrote are stored (``SavedVoice.tokens``), so every
request with the voice conditions on them and speaks in the same voice,
across calls and restarts.

A request that says ``voice=<name>`` needs no upload: the clip is read from
the storage database and sent to Triton as the same float32 samples every
time, so the ``spark_tts`` model's speaker cache (an LRU keyed by a hash of
the clip's samples, ``speaker_cache_size`` in the model repository) finds its
global and semantic tokens after the first request and skips the audio
tokenizer.

What a voice is (``VoiceRecord``, ``SavedVoice``) is declared here; where it
is kept is ``rvc.storage`` (one row per voice, atomic writes, shared by every
gateway on the database). ``reference_file`` names the clip as the file store
did (``reference-<sha16>.wav``), so records imported from ``VOICES_DIR``
and records written since look the same. Names follow
``rvc.storage.names`` (``[A-Za-z0-9_.-]{1,64}``, not starting with a dot).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from rvc.processing.contract import (
    DESCRIPTION_MAX_CHARS,
    Gender,
    Level,
    SynthesisDefaults,
    SynthesisOverrides,
    constraints,
)
from rvc.storage import (
    REFERENCE_RATE,
    VOICE_NAME_PATTERN,
    Database,
    SavedVoiceStore,
    SpeakerTokens,
    check_voice_name,
)

__all__ = [
    "DEFAULT_VOICE",
    "REFERENCE_RATE",
    "VOICE_NAME_PATTERN",
    "DesignRecord",
    "SavedVoice",
    "SpeakerTokens",
    "VoiceRecord",
    "VoiceStore",
    "check_voice_name",
    "demo_reference_clip",
]

logger = logging.getLogger(__name__)

DEFAULT_VOICE = "default"


class DesignRecord(BaseModel):
    """How a designed voice was made: the attributes and the seed it was generated with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gender: Gender
    pitch: Level
    speed_level: Level
    seed: int


class VoiceRecord(BaseModel):
    """What a saved voice records (the database row's JSON document) and ``GET /voices/{name}`` shows."""

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
    design: DesignRecord | None = Field(
        None, description="set for a designed voice (no clip: it speaks with the global tokens stored at design)"
    )


@dataclass(frozen=True)
class SavedVoice:
    record: VoiceRecord
    reference_wav: np.ndarray  # (T,) float32 at 16 kHz, read-only; empty for a designed voice
    tokens: SpeakerTokens | None = None  # stored speaker tokens (a designed voice's, or its clip's)

    @property
    def global_tokens(self) -> tuple[int, ...] | None:
        return None if self.tokens is None else self.tokens.global_tokens

    @property
    def semantic_tokens(self) -> tuple[int, ...] | None:
        return None if self.tokens is None else self.tokens.semantic_tokens

    def overrides(self) -> SynthesisOverrides:
        """The voice's parameters as overrides of the stored defaults (transcript included)."""
        update = {"reference_text": self.record.reference_text} if self.record.reference_text else {}
        return self.record.defaults.model_copy(update=update)


class VoiceStore(SavedVoiceStore[VoiceRecord, SavedVoice]):
    """Saved voices in the storage database (``rvc.storage``), read and written as ``VoiceRecord`` / ``SavedVoice``."""

    def __init__(self, database: Database, *, check_model: Callable[[str], str] | None = None) -> None:
        super().__init__(database, record_type=VoiceRecord, saved_type=SavedVoice, check_model=check_model,
                         clip_resets=("design",))


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
