"""RMVPE pitch estimation: log-mel front end, E2E salience network, local-average decoding.

Matches RVC's ``infer/lib/rmvpe.py`` (``RMVPE.infer_from_audio``): 16 kHz audio ->
128-band natural-log mel magnitude (n_fft 1024, hop 160, 30-8000 Hz, HTK mel scale
with Slaney area normalisation) -> salience over 360 pitch bins of 20 cents ->
f0 in Hz per 10 ms frame (``1 + N // 160`` frames), 0 where unvoiced.

Long inputs run in chunks (``ChunkPlan``): the reference takes the whole input at once, whose U-Net
activations grow with its length (``/rvc`` accepts 600 s), which bounds nothing on a 16 GB GPU. A
chunk is a window of ``core`` frames plus ``context`` frames on each side, cut on the U-Net's
32-frame grid so that every pooling level sees the same cells as in the whole input; the context is
then discarded. The network's reach is not finite (a BiGRU runs over the whole window), so the chunked
salience equals the whole-input one to float rounding only when the context covers the
reach that matters: ``tests/rvc_pipeline/test_rmvpe_chunks.py`` measures it on real-length input.
Inputs up to ``core + 2 * context`` frames take the whole-input path unchanged.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rvc.errors import AssetError
from rvc.infer.rmvpe_net import E2E, N_CLASSES, N_MELS, RMVPEConfig
from rvc.infer.signal_ops import triangular_filters
from rvc.infer.state_dict import check_state_dict, read_tensor_file

__all__ = ["RMVPE", "ChunkPlan", "MelSpectrogram", "cents_to_f0", "htk_mel_filterbank", "local_average_cents"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP_LENGTH = 160
N_FFT = 1024
MEL_FMIN = 30.0
MEL_FMAX = 8000.0
LOG_CLAMP = 1e-5
# Bin i of the salience is 20 cents wide, starting at about 31.7 Hz (relative to 10 Hz).
CENTS_MAPPING = 20.0 * np.arange(N_CLASSES) + 1997.3794084376191
_WINDOW = 4  # bins averaged on each side of the argmax


def htk_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters on the HTK mel scale, Slaney area-normalised: (n_mels, n_fft // 2 + 1) float32.

    Same construction (and float32 rounding) as ``librosa.filters.mel(..., htk=True)``, which RVC uses.
    """
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_min, mel_max = (2595.0 * np.log10(1.0 + np.array([fmin, fmax]) / 700.0)).tolist()
    mel_points = np.linspace(mel_min, mel_max, n_mels + 2)
    hz_points = 700.0 * (10.0 ** (mel_points / 2595.0) - 1.0)
    return triangular_filters(hz_points, fft_freqs)


@dataclass(frozen=True)
class ChunkPlan:
    """How long inputs are cut: ``core`` frames kept per chunk, ``context`` frames read on each side.

    Both are multiples of ``multiple`` (the U-Net's time multiple, 32 for the released model) so
    chunk edges fall on the grid of its deepest pooling level.
    """

    core: int = 4096  # 40.96 s
    context: int = 1024  # 10.24 s on each side
    multiple: int = 32

    def __post_init__(self) -> None:
        if self.multiple < 1 or self.core < self.multiple or self.context < 0:
            raise ValueError(f"ChunkPlan needs core >= multiple >= 1 and context >= 0, got {self}")
        if self.core % self.multiple or self.context % self.multiple:
            raise ValueError(f"ChunkPlan core and context must be multiples of {self.multiple}, got {self}")

    def windows(self, frames: int) -> list[tuple[int, int, int, int]]:
        """``(read_start, read_stop, keep_start, keep_stop)`` in frames; one whole window when short."""
        if frames <= self.core + 2 * self.context:
            return [(0, frames, 0, frames)]
        windows = []
        for keep_start in range(0, frames, self.core):
            keep_stop = min(keep_start + self.core, frames)
            windows.append((max(0, keep_start - self.context), min(frames, keep_stop + self.context),
                            keep_start, keep_stop))
        return windows


class MelSpectrogram(torch.nn.Module):
    """wav ``(B, N)`` float32 at 16 kHz -> natural-log mel magnitude ``(B, 128, 1 + N // 160)`` float32."""

    mel_basis: torch.Tensor
    window: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        basis = htk_mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, MEL_FMIN, MEL_FMAX)
        self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, wav: torch.Tensor, center: bool = True) -> torch.Tensor:
        """``center=False`` takes samples already padded (``1 + (N - 1024) // 160`` frames): a chunk's."""
        spectrum = torch.stft(
            wav,
            N_FFT,
            hop_length=HOP_LENGTH,
            win_length=N_FFT,
            window=self.window,
            center=center,
            pad_mode="reflect",
            return_complex=True,
        )
        # sqrt(re^2 + im^2) rather than abs(): the reference's rounding, bit for bit
        magnitude = torch.sqrt(spectrum.real.pow(2) + spectrum.imag.pow(2))
        return torch.log(torch.clamp(torch.matmul(self.mel_basis, magnitude), min=LOG_CLAMP))


def local_average_cents(salience: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """salience ``(T, 360)`` float32 -> cents ``(T,)`` float64 (relative to 10 Hz), 0 where unvoiced.

    Salience-weighted mean of the bin cents over the 9 bins around each frame's argmax
    (zero-padded at the edges); frames whose maximum is <= threshold get 0. The weight
    sum stays float32, as in the reference, so results agree to the last bit.
    """
    salience = np.asarray(salience, dtype=np.float32)
    frames = salience.shape[0]
    center = np.argmax(salience, axis=1) + _WINDOW
    padded = np.pad(salience, ((0, 0), (_WINDOW, _WINDOW)))
    cents_padded = np.pad(CENTS_MAPPING, (_WINDOW, _WINDOW))
    columns = center[:, None] + np.arange(-_WINDOW, _WINDOW + 1)[None, :]
    window_salience = padded[np.arange(frames)[:, None], columns]
    weighted = np.sum(window_salience * cents_padded[columns], axis=1)
    weight_sum = np.sum(window_salience, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cents = weighted / weight_sum
    cents[np.max(padded, axis=1) <= threshold] = 0.0
    return cents


def cents_to_f0(cents: np.ndarray) -> np.ndarray:
    """cents relative to 10 Hz -> Hz; 0 cents (unvoiced) maps to 0 Hz."""
    f0 = 10.0 * 2.0 ** (cents / 1200.0)
    f0[f0 == 10.0] = 0.0
    return f0


_ENCODER_LAYER = re.compile(r"^unet\.encoder\.layers\.(\d+)\.")
_INTER_LAYER = re.compile(r"^unet\.intermediate\.layers\.(\d+)\.")
_ENCODER_BLOCK = re.compile(r"^unet\.encoder\.layers\.0\.conv\.(\d+)\.")
_GRU_LAYER = re.compile(r"^fc\.0\.gru\.weight_ih_l(\d+)$")


def config_from_state_dict(state_dict: dict[str, torch.Tensor]) -> RMVPEConfig:
    """Read the E2E sizes off the checkpoint keys (the official loader hard-codes E2E(4, 1, (2, 2)))."""

    def count(pattern: re.Pattern[str]) -> int:
        found = {int(m.group(1)) for key in state_dict if (m := pattern.match(key))}
        return max(found) + 1 if found else 0

    first = state_dict.get("unet.encoder.layers.0.conv.0.conv.0.weight")
    bn = state_dict.get("unet.encoder.bn.weight")
    if first is None or bn is None:
        raise AssetError("rmvpe.pt is not an RMVPE E2E state dict: unet.encoder.* keys are missing")
    try:
        return RMVPEConfig(
            n_blocks=count(_ENCODER_BLOCK),
            n_gru=count(_GRU_LAYER),
            en_de_layers=count(_ENCODER_LAYER),
            inter_layers=count(_INTER_LAYER),
            in_channels=int(bn.shape[0]),
            en_out_channels=int(first.shape[0]),
        )
    except ValueError as exc:
        raise AssetError(f"rmvpe.pt has an unusable layout: {exc}") from exc


def load_e2e(
    path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> E2E:
    """Build E2E from a plain state dict (fp16 or fp32 on disk) with strict, named key checks."""
    path = Path(path)
    state_dict = read_tensor_file(path, source=f"RMVPE checkpoint {path}")
    if isinstance(state_dict, dict) and "model" in state_dict and isinstance(state_dict["model"], dict):
        state_dict = state_dict["model"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise AssetError(f"RMVPE checkpoint {path} is not a state dict of tensors")
    model = E2E(config_from_state_dict(state_dict))
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    check_state_dict(state_dict, expected, source=f"RMVPE checkpoint {path}")
    # fp16 values are copied into fp32 parameters; num_batches_tracked is kept but unused in eval
    model.load_state_dict(state_dict, strict=True)
    return model.eval().to(device=device, dtype=dtype)


class RMVPE:
    """Pitch estimator. One instance can be shared by every voice in a process (it holds no per-call state)."""

    def __init__(self, model: E2E, *, device: str | torch.device = "cpu", chunks: ChunkPlan | None = None) -> None:
        self.model = model
        self.device = torch.device(device)
        self.dtype = next(model.parameters()).dtype
        self.mel = MelSpectrogram().to(self.device)
        self.chunks = chunks or ChunkPlan(multiple=model.config.time_multiple)
        if self.chunks.multiple % model.config.time_multiple:
            raise ValueError(f"chunk grid {self.chunks.multiple} is not a multiple of {model.config.time_multiple}")

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> RMVPE:
        model = load_e2e(path, device=device, dtype=dtype)
        logger.info("loaded RMVPE %s (%s, device %s, dtype %s)", path, model.config, device, dtype)
        return cls(model, device=device)

    @torch.inference_mode()
    def mel_to_salience(self, mel: torch.Tensor) -> torch.Tensor:
        """mel ``(1, 128, T)`` -> salience ``(T, 360)`` float32 (log-mel zero-padded to the U-Net's multiple)."""
        frames = mel.shape[-1]
        multiple = self.model.config.time_multiple
        padded = F.pad(mel, (0, -frames % multiple)) if frames % multiple else mel
        hidden = self.model(padded.to(self.dtype))
        return hidden[0, :frames].float()

    @torch.inference_mode()
    def salience(self, wav16k: np.ndarray) -> np.ndarray:
        """wav ``(N,)`` at 16 kHz (any float dtype; cast to float32) -> ``(1 + N // 160, 360)`` float32.

        Long inputs run window by window (``self.chunks``); the mel of each window is computed from
        its own samples, so device memory follows the window, not the input.
        """
        audio = np.ascontiguousarray(wav16k, dtype=np.float32)
        frames = 1 + audio.size // HOP_LENGTH
        windows = self.chunks.windows(frames)
        if len(windows) == 1:
            return self.mel_to_salience(self.mel(torch.from_numpy(audio).to(self.device).unsqueeze(0))).cpu().numpy()
        # center=True pads N_FFT // 2 samples by reflection; pad once, then frame f covers
        # padded[f * HOP : f * HOP + N_FFT], which is what a window of frames reads with center=False.
        half = N_FFT // 2
        padded = torch.from_numpy(audio).unsqueeze(0)
        padded = F.pad(padded.unsqueeze(0), (half, half), mode="reflect")[0]
        out = np.empty((frames, N_CLASSES), dtype=np.float32)
        for read_start, read_stop, keep_start, keep_stop in windows:
            samples = padded[:, read_start * HOP_LENGTH : (read_stop - 1) * HOP_LENGTH + N_FFT].to(self.device)
            hidden = self.mel_to_salience(self.mel(samples, center=False))
            out[keep_start:keep_stop] = hidden[keep_start - read_start : keep_stop - read_start].cpu().numpy()
        return out

    def infer_from_audio(self, wav16k: np.ndarray, threshold: float = 0.03) -> np.ndarray:
        """wav ``(N,)`` at 16 kHz -> f0 ``(1 + N // 160,)`` float64 Hz, 0 where unvoiced."""
        return cents_to_f0(local_average_cents(self.salience(wav16k), threshold))
