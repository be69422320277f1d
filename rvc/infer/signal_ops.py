"""Waveform steps around RVC's models: peak limit, high-pass, split points, volume envelope, resample, int16.

Each function is one step of RVC's offline pipeline (``vc_single`` / ``Pipeline.pipeline``,
see docs/rvc_reference.md) with the same dtypes, so outputs agree with the reference
to the last bit or within float rounding. Sample rates are in the names or docstrings.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import soxr
import torch
import torch.nn.functional as F
from scipy import signal

__all__ = [
    "triangular_filters",
    "PEAK_LIMIT",
    "high_pass",
    "limit_peak",
    "mix_rms",
    "resample_output",
    "split_points",
    "to_int16",
]

SAMPLE_RATE = 16000
HOP_LENGTH = 160
PEAK_LIMIT = 0.95
INT16_HEADROOM = 0.99
_HIGH_PASS_ORDER = 5
_HIGH_PASS_HZ = 48


@lru_cache(maxsize=1)
def _high_pass_coefficients() -> tuple[np.ndarray, np.ndarray]:
    b, a = signal.butter(N=_HIGH_PASS_ORDER, Wn=_HIGH_PASS_HZ, btype="high", fs=SAMPLE_RATE)
    return b, a


def limit_peak(wav16k: np.ndarray) -> np.ndarray:
    """Scale (N,) float32 audio down so its peak is at most 0.95 (never up); float32 out."""
    wav = np.array(wav16k, dtype=np.float32)
    if wav.size == 0:
        return wav
    scale = np.float32(np.abs(wav).max()) / np.float32(PEAK_LIMIT)
    if scale > 1:
        wav /= scale
    return wav


def high_pass(wav16k: np.ndarray) -> np.ndarray:
    """Zero-phase 5th-order Butterworth high-pass at 48 Hz (removes rumble and DC): (N,) float64."""
    b, a = _high_pass_coefficients()
    return signal.filtfilt(b, a, wav16k)


def split_points(wav16k: np.ndarray, *, center: int, query: int, max_length: int) -> list[int]:
    """Cut positions (samples, multiples of 160) at quiet points, for inputs longer than ``max_length``.

    The quietness score is the 10 ms moving sum of |x| around each sample; near every
    multiple of ``center`` the first minimum within +-``query`` samples is taken.
    """
    half = HOP_LENGTH // 2
    padded = np.abs(np.pad(wav16k, (half, half), mode="reflect"))
    if padded.shape[0] <= max_length:
        return []
    score = np.zeros_like(wav16k, dtype=padded.dtype)
    for i in range(HOP_LENGTH):
        # sequential accumulation, as the reference, so ties resolve identically
        score += padded[i : i - HOP_LENGTH]
    cuts = []
    for t in range(center, wav16k.shape[0], center):
        window = score[t - query : t + query]
        cuts.append(int(t - query + np.argmin(window)) // HOP_LENGTH * HOP_LENGTH)
    return cuts


def _frame_rms(wav: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """librosa.feature.rms with center=True (zero padding): (1, frames) in the input dtype."""
    padded = np.pad(wav, (frame_length // 2, frame_length // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length]
    return np.sqrt(np.mean(np.square(frames), axis=-1))[None, :]


def mix_rms(source16k: np.ndarray, output: np.ndarray, output_rate: int, rate: float) -> np.ndarray:
    """Give ``output`` the input's loudness envelope: gain rms_in^(1-rate) * rms_out^(rate-1).

    Envelopes are RMS over 1 s frames every 0.5 s, linearly interpolated to every output
    sample; rate 1 keeps the model's envelope, 0 takes the input's. Returns float32.
    """
    rms_in = _frame_rms(source16k, SAMPLE_RATE // 2 * 2, SAMPLE_RATE // 2)
    rms_out = _frame_rms(output, output_rate // 2 * 2, output_rate // 2)
    size = output.shape[0]
    rms_in_t = F.interpolate(torch.from_numpy(rms_in).unsqueeze(0), size=size, mode="linear").squeeze()
    rms_out_t = F.interpolate(torch.from_numpy(rms_out).unsqueeze(0), size=size, mode="linear").squeeze()
    rms_out_t = torch.clamp(rms_out_t, min=1e-6)
    gain = torch.pow(rms_in_t, torch.tensor(1 - rate)) * torch.pow(rms_out_t, torch.tensor(rate - 1))
    mixed = np.array(output, dtype=np.float32)
    mixed *= gain.numpy()
    return mixed


def resample_output(wav: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """soxr high-quality resampling, length fixed to ceil(N * ratio) (librosa.resample's default)."""
    if source_rate == target_rate:
        return wav
    length = int(np.ceil(wav.shape[0] * float(target_rate) / source_rate))
    out = soxr.resample(wav, source_rate, target_rate, quality="soxr_hq")
    if out.shape[0] < length:
        out = np.pad(out, (0, length - out.shape[0]))
    return np.asarray(out[:length], dtype=wav.dtype)


def to_int16(wav: np.ndarray) -> np.ndarray:
    """float audio -> int16, scaled down only when the peak exceeds 0.99; truncates toward zero."""
    scale: float | np.floating = 32768.0
    if wav.size:
        peak = np.float32(np.abs(wav).max()) / np.float32(INT16_HEADROOM)
        if peak > 1:
            scale = np.float32(scale) / peak
    return (wav * scale).astype(np.int16)


def triangular_filters(hz_points: np.ndarray, fft_freqs: np.ndarray) -> np.ndarray:
    """Area-normalised triangular mel filters (librosa's ``norm="slaney"``) on given band edges.

    hz_points: (n_mels + 2,) band edges in Hz (HTK or Slaney spacing, the caller's choice);
    fft_freqs: (F,) the rfft bin frequencies -> (n_mels, F) float32 weights.
    """
    n_mels = hz_points.shape[0] - 2
    widths = np.diff(hz_points)
    ramps = np.subtract.outer(hz_points, fft_freqs)
    weights = np.zeros((n_mels, len(fft_freqs)), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / widths[i]
        upper = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels]))[:, None]
    return weights
