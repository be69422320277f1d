"""The neural-source-filter excitation that drives RVC's f0 decoder (``dec.m_source``).

From frame-rate f0 (Hz, 0 = unvoiced) it builds a sample-rate signal: a sine at f0 with
amplitude 0.1 in voiced samples, plus Gaussian noise (std 0.003 voiced, 0.1/3 unvoiced), merged
by a 1×1 linear layer and tanh. Voicing and f0 are held per frame (nearest upsampling).

The phase is the inclusive running sum 2π·Σ_{m≤n} f0[m]/sr: the very first sample is
sin(2π·f0[0]/sr), not sin(0), and unvoiced frames do not advance it. It is accumulated per frame
in float64 and wrapped to [0, 1) cycles, so hours of audio keep full float32 precision.

The ``2026`` profile uses the form the official ``main`` went back to (its pre-November-2024
SineGen): the same running sum, but in float32 and with the wraps found on a linearly upsampled
frame-rate sum (``interpolated_sine_excitation``). The two agree up to float32 rounding of the
phase, which grows with the length of voiced audio; the fill of ``2026`` makes all audio voiced.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NoiseSource", "SourceModule", "interpolated_sine_excitation", "sine_excitation"]

SINE_AMPLITUDE = 0.1
VOICED_NOISE_STD = 0.003
UNVOICED_NOISE_STD = SINE_AMPLITUDE / 3


class NoiseSource:
    """Where the random draws of one synthesis call come from.

    ``generator=None`` draws from torch's global CPU generator, like the reference, so
    ``torch.manual_seed(s)`` right before a call reproduces the reference's output; a
    ``torch.Generator`` makes the call reproducible without touching global state (and safe to
    run concurrently). ``deterministic=True`` replaces every draw by zeros. ``sine_phase`` picks the
    sine's phase form (``rvc.infer.profiles.SinePhase``): it travels with the draws because both
    are per call and both reach the source module by the same path.
    """

    def __init__(
        self, generator: torch.Generator | None = None, *, deterministic: bool = False,
        sine_phase: str = "running_sum",
    ) -> None:  # fmt: skip
        if sine_phase not in ("running_sum", "interpolated"):
            raise ValueError(f"sine_phase must be running_sum or interpolated, got {sine_phase!r}")
        self.generator = generator
        self.deterministic = deterministic
        self.sine_phase = sine_phase

    def _device(self, like: torch.Tensor) -> torch.device:
        return self.generator.device if self.generator is not None else like.device

    def normal(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """Standard normal draws of ``shape`` in ``like``'s dtype/device (zeros if deterministic)."""
        if self.deterministic:
            return like.new_zeros(shape)
        draw = torch.randn(shape, generator=self.generator, device=self._device(like), dtype=like.dtype)
        return draw.to(like.device)

    def uniform(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """U[0, 1) draws (zeros if deterministic)."""
        if self.deterministic:
            return like.new_zeros(shape)
        draw = torch.rand(shape, generator=self.generator, device=self._device(like), dtype=like.dtype)
        return draw.to(like.device)


def sine_excitation(f0: torch.Tensor, upsample: int, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """f0: (B, T) Hz at frame rate -> (sine (B, T·upsample) float32 in [-1, 1], voiced (B, T·upsample) bool).

    The sine is unscaled and not yet gated by voicing.
    """
    f0_64 = f0.to(torch.float64)
    cycles_per_sample = f0_64 / sample_rate
    cycles_per_frame = torch.frac(cycles_per_sample * upsample)
    frame_start = torch.frac(torch.cumsum(cycles_per_frame, dim=1) - cycles_per_frame)
    steps = torch.arange(1, upsample + 1, dtype=torch.float64, device=f0.device)
    phase = frame_start.unsqueeze(-1) + cycles_per_sample.unsqueeze(-1) * steps
    sine = torch.sin(2 * math.pi * torch.frac(phase)).flatten(1).to(torch.float32)
    voiced = (f0 > 0).repeat_interleave(upsample, dim=1)
    return sine, voiced


def interpolated_sine_excitation(
    f0: torch.Tensor, upsample: int, sample_rate: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Like :func:`sine_excitation`, in the official pre-November-2024 SineGen's float32 arithmetic.

    The frame-rate sum, scaled and linearly upsampled (align_corners), only locates the wraps;
    the phase itself is the float32 running sum of the nearest-upsampled increments, shifted by
    -1 after each wrap. Integer shifts leave the sine unchanged: only the rounding differs.
    """
    increments = (f0.to(torch.float32) / sample_rate) % 1  # (B, T) cycles per sample
    frame_sum = torch.cumsum(increments, dim=1) * upsample
    frame_sum = F.interpolate(
        frame_sum.unsqueeze(1), scale_factor=float(upsample), mode="linear", align_corners=True
    ).squeeze(1)
    per_sample = F.interpolate(increments.unsqueeze(1), scale_factor=float(upsample), mode="nearest").squeeze(1)
    frame_sum = frame_sum % 1
    wrapped = (frame_sum[:, 1:] - frame_sum[:, :-1]) < 0
    shift = torch.zeros_like(per_sample)
    shift[:, 1:] = wrapped * -1.0
    sine = torch.sin(torch.cumsum(per_sample + shift, dim=1) * 2 * torch.pi)
    voiced = (f0 > 0).repeat_interleave(upsample, dim=1)
    return sine, voiced


class SourceModule(nn.Module):
    """f0 (B, T) Hz -> harmonic source (B, 1, T·upsample), the reference's ``SourceModuleHnNSF``."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.l_linear = nn.Linear(1, 1)

    def sine_waves(self, f0: torch.Tensor, upsample: int, noise: NoiseSource) -> torch.Tensor:
        """(B, T·upsample, 1): 0.1·sin(phase)·voiced + noise, before the merge layer."""
        excitation = interpolated_sine_excitation if noise.sine_phase == "interpolated" else sine_excitation
        sine, voiced = excitation(f0, upsample, self.sample_rate)
        voiced = voiced.to(sine.dtype).unsqueeze(-1)
        sine = sine.unsqueeze(-1) * SINE_AMPLITUDE
        # The reference draws a random initial phase here and then zeroes it for the fundamental
        # (the only harmonic RVC uses). The draw is kept so seeded runs consume the same stream.
        noise.uniform((1, 1, 1), sine)
        noise_std = voiced * VOICED_NOISE_STD + (1 - voiced) * UNVOICED_NOISE_STD
        return sine * voiced + noise_std * noise.normal(tuple(sine.shape), sine)

    def forward(self, f0: torch.Tensor, upsample: int, noise: NoiseSource) -> torch.Tensor:
        sine_waves = self.sine_waves(f0, upsample, noise).to(self.l_linear.weight.dtype)
        return torch.tanh(self.l_linear(sine_waves)).transpose(1, 2)
