"""Linear-magnitude mel spectrogram for the speaker encoder, in plain torch (no torchaudio).

It reproduces ``torchaudio.transforms.MelSpectrogram(power=1, norm="slaney", mel_scale="slaney")``
as BiCodec builds it: STFT with a periodic Hann window of ``win_length`` zero-padded and centred
in ``n_fft``, centre reflect padding, magnitude (power 1), then a Slaney-scale, Slaney-normalised
triangular filterbank. There is no log or dB step: ECAPA reads linear magnitudes.

The window and filterbank are persistent buffers named as torchaudio names them
(``spectrogram.window``, ``mel_scale.fb``) so BiCodec's state-dict layout matches the checkpoint's;
the checkpoint may omit them because they are recomputed here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sparktts.config import MelConfig

__all__ = ["MelSpectrogram", "slaney_mel_filterbank"]

_SLANEY_F_SP = 200.0 / 3.0  # Hz per mel in the linear region
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(freq: float) -> float:
    if freq < _SLANEY_MIN_LOG_HZ:
        return freq / _SLANEY_F_SP
    return _SLANEY_MIN_LOG_MEL + math.log(freq / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP


def _mel_to_hz(mels: torch.Tensor) -> torch.Tensor:
    linear = mels * _SLANEY_F_SP
    logarithmic = _SLANEY_MIN_LOG_HZ * torch.exp(_SLANEY_LOGSTEP * (mels - _SLANEY_MIN_LOG_MEL))
    return torch.where(mels >= _SLANEY_MIN_LOG_MEL, logarithmic, linear)


def slaney_mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> torch.Tensor:
    """Triangular mel filters with Slaney area normalisation: (n_freqs, n_mels) float32.

    Computed in float32 in the same order of operations as torchaudio's ``melscale_fbanks`` so the
    buffer agrees with the official one to float32 rounding.
    """
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    mel_points = torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2)
    hz_points = _mel_to_hz(mel_points)
    hz_diff = hz_points[1:] - hz_points[:-1]
    slopes = hz_points.unsqueeze(0) - all_freqs.unsqueeze(1)  # (n_freqs, n_mels + 2)
    down = (-1.0 * slopes[:, :-2]) / hz_diff[:-1]
    up = slopes[:, 2:] / hz_diff[1:]
    filterbank = torch.clamp(torch.minimum(down, up), min=0.0)
    area = 2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels])
    return filterbank * area.unsqueeze(0)


class _StftMagnitude(nn.Module):
    """Holds the analysis window as ``window``; returns |STFT| as (B, n_fft // 2 + 1, frames)."""

    window: torch.Tensor

    def __init__(self, n_fft: int, win_length: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(win_length, periodic=True))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wav, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
            window=self.window, center=True, pad_mode="reflect", normalized=False,
            onesided=True, return_complex=True,
        )
        return spec.abs()


class _MelScale(nn.Module):
    """Holds the filterbank as ``fb`` (n_freqs, n_mels); maps (B, n_freqs, T) -> (B, n_mels, T)."""

    fb: torch.Tensor

    def __init__(self, filterbank: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("fb", filterbank)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)


class MelSpectrogram(nn.Module):
    """wav (B, T) float32 at ``sample_rate`` -> linear magnitude mel (B, num_mels, T // hop + 1)."""

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config
        self.spectrogram = _StftMagnitude(config.n_fft, config.win_length, config.hop_length)
        self.mel_scale = _MelScale(
            slaney_mel_filterbank(config.n_fft // 2 + 1, float(config.mel_fmin), config.fmax,
                                  config.num_mels, config.sample_rate)
        )

    def reset_buffers(self) -> None:
        """Recompute window and filterbank in place (after a ``meta``/``to_empty`` build)."""
        config = self.config
        self.spectrogram.window.copy_(torch.hann_window(config.win_length, periodic=True))
        self.mel_scale.fb.copy_(
            slaney_mel_filterbank(config.n_fft // 2 + 1, float(config.mel_fmin), config.fmax,
                                  config.num_mels, config.sample_rate)
        )

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.shape[-1] <= self.config.n_fft // 2:
            raise ValueError(
                f"mel input has {wav.shape[-1]} samples; centre reflect padding needs more than {self.config.n_fft // 2}"
            )
        return self.mel_scale(self.spectrogram(wav.float()))
