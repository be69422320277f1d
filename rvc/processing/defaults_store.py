"""The stored default settings and default reference clip, kept on disk.

Changes are atomic twice over: in memory a new immutable snapshot replaces the
old one under a lock (a request holds the snapshot it started with), and on
disk each file is written beside its target and renamed over it, so a crash
never leaves half a config.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from rvc.processing.contract import SynthesisDefaults, SynthesisOverrides

__all__ = ["DefaultsStore", "StoredReference", "atomic_write_bytes"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredReference:
    """A reference clip: (T,) float32 mono at ``sample_rate``; ``sha256`` of its samples."""

    wav: np.ndarray
    sample_rate: int
    sha256: str
    stored_at: float

    @property
    def duration_s(self) -> float:
        return self.wav.size / self.sample_rate


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class DefaultsStore:
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
