"""Building the stores the way rvc.processing will: with today's record, saved-voice and defaults types."""

from __future__ import annotations

import numpy as np

from rvc.processing.contract import SynthesisDefaults
from rvc.processing.voices import SavedVoice, VoiceRecord
from rvc.storage import Database, SavedVoiceStore, StoredDefaults

RATE = 16000


def voice_store(database: Database) -> SavedVoiceStore[VoiceRecord, SavedVoice]:
    return SavedVoiceStore(database, record_type=VoiceRecord, saved_type=SavedVoice)


def defaults_store(database: Database) -> StoredDefaults[SynthesisDefaults]:
    return StoredDefaults(database, SynthesisDefaults)


def clip(seconds: float = 0.5, *, seed: int = 0) -> np.ndarray:
    """A (T,) float32 clip at 16 kHz with values no rounding would preserve by accident."""
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * RATE)).astype(np.float32)


def comparable(record: VoiceRecord) -> dict[str, object]:
    """A record without its timestamps (two stores never write at the same instant)."""
    return record.model_dump(exclude={"created_at", "updated_at"})
