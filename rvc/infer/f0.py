"""Fundamental-frequency extraction for RVC: rmvpe, fcpe, pm (Praat), harvest (WORLD) and crepe.

Every method works on 16 kHz audio with a 10 ms hop (160 samples), as RVC's ``Pipeline.get_f0``;
all but fcpe search 50-1100 Hz (fcpe covers its network's 32.7-1975.5 Hz, unclamped, as RVC). The result is the f0 curve in Hz
(0 = unvoiced) after the pitch shift, plus its coarse form: 255 mel-spaced bins
(1 = unvoiced or <= 50 Hz) that index the synthesizer's pitch embedding.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from rvc.errors import InvalidInput
from rvc.infer.params import CREPE_MODELS, F0_METHODS
from rvc.infer.pitch_fill import fill_unvoiced

if TYPE_CHECKING:
    from rvc.infer.fcpe import FCPE
    from rvc.infer.rmvpe import RMVPE

__all__ = [
    "CREPE_MODELS",
    "F0_MAX",
    "F0_METHODS",
    "F0_MIN",
    "HOP_LENGTH",
    "coarse_pitch",
    "estimate_f0",
    "pitch_inputs",
    "shift_f0",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP_LENGTH = 160
F0_MIN = 50.0
F0_MAX = 1100.0
RMVPE_THRESHOLD = 0.03
PM_VOICING_THRESHOLD = 0.6
CREPE_BATCH_SIZE = 512
CREPE_PERIODICITY_THRESHOLD = 0.1

_MEL_MIN = 1127.0 * np.log(1.0 + F0_MIN / 700.0)
_MEL_MAX = 1127.0 * np.log(1.0 + F0_MAX / 700.0)
# torchcrepe keeps its network in a module global; serialise its use across threads.
_CREPE_LOCK = threading.Lock()


def f0_pm(wav16k: np.ndarray, p_len: int) -> np.ndarray:
    """Praat autocorrelation pitch, zero-padded (centred) to ``p_len`` frames: (p_len,) float64."""
    import parselmouth

    sound = parselmouth.Sound(np.asarray(wav16k, dtype=np.float64), SAMPLE_RATE)
    pitch = sound.to_pitch_ac(
        time_step=HOP_LENGTH / SAMPLE_RATE,
        voicing_threshold=PM_VOICING_THRESHOLD,
        pitch_floor=F0_MIN,
        pitch_ceiling=F0_MAX,
    )
    f0 = pitch.selected_array["frequency"]
    front = (p_len - len(f0) + 1) // 2
    back = p_len - len(f0) - front
    if front > 0 or back > 0:
        f0 = np.pad(f0, (front, back))
    return f0


def f0_harvest(wav16k: np.ndarray, filter_radius: int) -> np.ndarray:
    """WORLD harvest refined by stonemask: (1 + N // 160,) float64.

    As in RVC, ``filter_radius`` is only a switch: above 2 a 3-tap median filter runs.
    """
    import pyworld
    from scipy.signal import medfilt

    audio = np.ascontiguousarray(wav16k, dtype=np.float64)
    f0, times = pyworld.harvest(
        audio, fs=SAMPLE_RATE, f0_ceil=F0_MAX, f0_floor=F0_MIN, frame_period=1000.0 * HOP_LENGTH / SAMPLE_RATE
    )
    f0 = pyworld.stonemask(audio, f0, times, SAMPLE_RATE)
    if filter_radius > 2:
        f0 = medfilt(f0, 3)
    return f0


def f0_crepe(
    wav16k: np.ndarray, *, model: str = "full", device: str = "cpu", seed: int | None = None
) -> np.ndarray:
    """torchcrepe (viterbi decoding, packaged weights) with RVC's smoothing: (1 + N // 160,) float32.

    Periodicity is median-filtered and f0 mean-filtered over 3 frames; frames with
    periodicity below 0.1 become unvoiced (0). torchcrepe dithers its bins with numpy's
    global RNG (a few cents); with ``seed`` that RNG is seeded for the call and restored
    afterwards, so the result repeats exactly.
    """
    if model not in CREPE_MODELS:
        raise InvalidInput(f"crepe model must be one of {CREPE_MODELS}, got {model!r}", field="crepe_model")
    import torch
    import torchcrepe

    audio = torch.from_numpy(np.array(wav16k, dtype=np.float32))[None]
    with _CREPE_LOCK:
        saved = np.random.get_state() if seed is not None else None
        if seed is not None:
            np.random.seed(seed % 2**32)
        try:
            f0, periodicity = torchcrepe.predict(
                audio,
                SAMPLE_RATE,
                HOP_LENGTH,
                F0_MIN,
                F0_MAX,
                model,
                batch_size=CREPE_BATCH_SIZE,
                device=device,
                return_periodicity=True,
            )
        finally:
            if saved is not None:
                np.random.set_state(saved)
    periodicity = torchcrepe.filter.median(periodicity, 3)
    f0 = torchcrepe.filter.mean(f0, 3)
    f0[periodicity < CREPE_PERIODICITY_THRESHOLD] = 0
    return f0[0].cpu().numpy()


def estimate_f0(
    method: str,
    wav16k: np.ndarray,
    p_len: int,
    *,
    filter_radius: int = 3,
    rmvpe: RMVPE | None = None,
    fcpe: FCPE | None = None,
    crepe_model: str = "full",
    device: str = "cpu",
    seed: int | None = None,
) -> np.ndarray:
    """Unshifted f0 in Hz per 10 ms frame of ``wav16k`` ((N,) float at 16 kHz); 0 = unvoiced.

    Frame counts follow each tool (rmvpe, fcpe, harvest, crepe: 1 + N // 160; pm: p_len);
    the caller cuts to ``p_len``. ``seed`` makes crepe's dithering repeatable (the others are deterministic).
    """
    if method == "rmvpe":
        if rmvpe is None:
            raise InvalidInput(
                "f0_method 'rmvpe' needs the RMVPE model, which is not loaded", field="f0_method"
            )
        return rmvpe.infer_from_audio(wav16k, threshold=RMVPE_THRESHOLD)
    if method == "fcpe":
        if fcpe is None:
            raise InvalidInput("f0_method 'fcpe' needs the FCPE model, which is not loaded", field="f0_method")
        return fcpe.infer_from_audio(wav16k)
    if method == "pm":
        return f0_pm(wav16k, p_len)
    if method == "harvest":
        return f0_harvest(wav16k, filter_radius)
    if method == "crepe":
        return f0_crepe(wav16k, model=crepe_model, device=device, seed=seed)
    raise InvalidInput(f"f0_method must be one of {', '.join(F0_METHODS)}; got {method!r}", field="f0_method")


def shift_f0(f0: np.ndarray, semitones: int) -> np.ndarray:
    """f0 * 2**(semitones / 12), in place on a copy, keeping the dtype."""
    shifted = np.array(f0, copy=True)
    shifted *= pow(2, int(semitones) / 12)
    return shifted


def coarse_pitch(f0: np.ndarray) -> np.ndarray:
    """f0 Hz -> int32 bins 1..255 on the mel scale between 50 and 1100 Hz (0 Hz -> 1), rounded half-to-even."""
    mel = 1127 * np.log(1 + f0 / 700)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - _MEL_MIN) * 254 / (_MEL_MAX - _MEL_MIN) + 1
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    return np.rint(mel).astype(np.int32)


def pitch_inputs(f0: np.ndarray, *, pitch_shift: int = 0, fill: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The synthesizer's pitch from ``estimate_f0``'s curve: ``(coarse, f0)``, coarse int32 bins 1..255
    and the shifted f0 in Hz (the estimate's dtype: float64; float32 for crepe and fcpe), uncut.

    ``fill`` interpolates unvoiced frames before the shift (the ``2026`` profile, ``pitch_fill.py``).
    """
    if fill:
        f0 = fill_unvoiced(f0)
    f0 = shift_f0(f0, pitch_shift)
    return coarse_pitch(f0), f0
