"""Reference-audio handling exactly as the official ``load_audio`` / ``get_ref_clip`` do it.

Order: keep channel 0 -> soxr "VHQ" resample to 16 kHz (in float64) -> volume normalisation ->
(for the speaker encoder only) the first 6 s, tiled when the clip is shorter. wav2vec2 sees the
whole normalised waveform, not the 6 s clip.
"""

from __future__ import annotations

import numpy as np
import soxr

__all__ = ["audio_volume_normalize", "check_waveform", "load_reference", "reference_clip"]


def check_waveform(wav: np.ndarray, *, name: str = "audio", min_samples: int = 1) -> np.ndarray:
    """Return ``wav`` as a 1-D float array, or raise ValueError saying what is wrong with it."""
    array = np.asarray(wav)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D waveform, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must hold floats in [-1, 1], got dtype {array.dtype}")
    if array.shape[0] < min_samples:
        raise ValueError(f"{name} has {array.shape[0]} samples; at least {min_samples} are needed")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return array


def audio_volume_normalize(audio: np.ndarray, coeff: float = 0.2) -> np.ndarray:
    """Scale speech so its loud samples sit near ``coeff``; same float dtype out as in.

    Reproduces the official function including its quirk: the magnitudes used for the loudness
    estimate are sorted **before** the quiet-clip rescale and are not recomputed after it, so a
    clip with peak < 0.1 is boosted to peak 0.1 and then gained by ``coeff / volume`` where
    ``volume`` still comes from the original, unboosted magnitudes.
    """
    magnitudes = np.sort(np.abs(audio))  # stale after the rescale below, on purpose
    if magnitudes[-1] < 0.1:
        audio = audio / max(magnitudes[-1], 1e-3) * 0.1
    loud = magnitudes[magnitudes > 0.01]
    count = loud.shape[0]
    if count <= 10:
        return audio
    volume = np.mean(loud[int(0.9 * count) : int(0.99 * count)])
    audio = audio * np.clip(coeff / volume, a_min=0.1, a_max=10)
    peak = np.max(np.abs(audio))
    if peak > 1:
        audio = audio / peak
    return audio


def load_reference(wav: np.ndarray, sample_rate: int, *, target_rate: int = 16000,
                   volume_normalize: bool = True) -> np.ndarray:
    """Decoded audio -> the waveform the tokenizer reads: (T',) float64 at ``target_rate``.

    wav: (T,) mono or (T, channels) as soundfile returns it; only channel 0 is kept, as upstream
    does (it does not mix down). Resampling is soxr "VHQ" in float64.
    """
    array = np.asarray(wav)
    if array.ndim == 2:
        array = array[:, 0]
    array = check_waveform(array, name="reference audio").astype(np.float64)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if sample_rate != target_rate:
        array = soxr.resample(array, sample_rate, target_rate, quality="VHQ")
    if volume_normalize:
        array = audio_volume_normalize(array)
    return array


def reference_clip(wav: np.ndarray, length: int) -> np.ndarray:
    """The speaker-encoder clip: the first ``length`` samples, tiling a shorter wav first; (length,)."""
    wav = check_waveform(wav, name="reference audio")
    if wav.shape[0] < length:
        wav = np.tile(wav, length // wav.shape[0] + 1)
    return wav[:length]
