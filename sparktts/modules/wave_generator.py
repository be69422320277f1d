"""DAC-style wave generator: codec latent (B, C, T) at 50 Hz -> waveform (B, 1, 320 T) at 16 kHz.

This is ~98% of detokenize time, so the Snake activation precomputes ``1 / (alpha + 1e-9)`` once
(at load, via :meth:`WaveGenerator.prepare_for_inference`) instead of on every call; the math is
unchanged. Weight norm is folded at load (see :mod:`sparktts.modules.weight_norm`).
"""

from __future__ import annotations

import torch
from torch import nn

from sparktts.config import WaveGeneratorConfig
from sparktts.modules.init import init_conv_linear
from sparktts.modules.weight_norm import WNConv1d, WNConvTranspose1d

__all__ = ["Snake1d", "WaveGenerator"]


class Snake1d(nn.Module):
    """x + sin^2(alpha x) / (alpha + 1e-9), per channel; x (B, C, T)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))
        # non-persistent: follows .to(device/dtype) but never reaches the state dict
        self.register_buffer("inverse_alpha", None, persistent=False)

    def prepare_for_inference(self) -> None:
        """Cache 1 / (alpha + 1e-9); call again whenever ``alpha`` is reloaded."""
        with torch.no_grad():
            self.inverse_alpha = (self.alpha + 1e-9).reciprocal()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inverse = self.inverse_alpha
        if inverse is None:
            inverse = (self.alpha + 1e-9).reciprocal()
        # in place on a fresh tensor: one allocation per call; same rounding as x + inverse * sin^2
        return torch.sin(self.alpha * x).pow_(2).mul_(inverse).add_(x)


class ResidualUnit(nn.Module):
    """Snake -> conv k7 (dilated) -> Snake -> conv k1, plus the input."""

    def __init__(self, dim: int, dilation: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=7, dilation=dilation, padding=3 * dilation),
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)  # lengths always match: padding 3*dilation keeps T


class DecoderBlock(nn.Module):
    """Snake -> transposed conv (x stride) -> residual units with dilation 1, 3, 9; halves the channels."""

    def __init__(self, input_dim: int, output_dim: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(input_dim),
            WNConvTranspose1d(input_dim, output_dim, kernel_size=kernel_size, stride=stride,
                              padding=(kernel_size - stride) // 2),
            ResidualUnit(output_dim, dilation=1),
            ResidualUnit(output_dim, dilation=3),
            ResidualUnit(output_dim, dilation=9),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class WaveGenerator(nn.Module):
    """x (B, input_channel, T) -> tanh waveform (B, d_out, T * prod(rates)). Keys: ``model.{0..7}``."""

    def __init__(self, config: WaveGeneratorConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [WNConv1d(config.input_channel, config.channels, kernel_size=7, padding=3)]
        channels = config.channels
        for kernel_size, stride in zip(config.kernel_sizes, config.rates, strict=True):
            layers.append(DecoderBlock(channels, channels // 2, kernel_size, stride))
            channels //= 2
        layers += [Snake1d(channels), WNConv1d(channels, config.d_out, kernel_size=7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.apply(init_conv_linear)  # Conv1d only here; the transposed convs keep torch's default

    def prepare_for_inference(self) -> None:
        for module in self.modules():
            if isinstance(module, Snake1d):
                module.prepare_for_inference()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
