"""FCPE's network (torchfcpe ``CFNaiveMelPE``, conv-only): log-mel frames -> 360-bin pitch salience.

The module tree mirrors the keys of the bundled ``fcpe_c_v001.pt`` (``input_stack.{0,1,3}``,
``net.encoder_layers.{i}.conformer.net.{0,2,4,6}``, ``norm``, ``output_proj``), so its state dict
loads with strict key checking; the loader in ``fcpe.py`` only folds the output projection's weight
norm and drops the three kinds of key the conv-only model never reads.

Shapes: mel ``(B, T, n_mels)`` float32 -> salience ``(B, T, out_dims)`` in (0, 1). Every layer is
local in time except the input stack's GroupNorm, whose statistics cover the whole input: the
estimate of a frame depends on the length and loudness of everything around it, as in torchfcpe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["FCPEConfig", "FCPENet"]

_CONV_KERNEL = 31  # the conformer conv module's depthwise kernel
_EXPANSION = 2  # its inner width, in multiples of hidden_dims


@dataclass(frozen=True)
class FCPEConfig:
    """Architecture of a CFNaiveMelPE; defaults are the bundled ``fcpe_c_v001.pt``.

    ``f0_min`` / ``f0_max`` (Hz) span the ``out_dims`` bins, evenly in cents. Only conv-only models
    without harmonic embedding exist as released weights, and only those are built here.
    """

    n_mels: int = 128
    out_dims: int = 360
    hidden_dims: int = 512
    n_layers: int = 6
    f0_min: float = 32.70
    f0_max: float = 1975.5
    conv_only: bool = True
    use_harmonic_emb: bool = False

    def __post_init__(self) -> None:
        for name in ("n_mels", "out_dims", "hidden_dims", "n_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"FCPEConfig.{name} must be a positive int, got {value!r}")
        if self.hidden_dims % 4:
            raise ValueError(f"FCPEConfig.hidden_dims must be a multiple of 4 (GroupNorm(4)), got {self.hidden_dims}")
        if self.out_dims < 9:
            raise ValueError(f"FCPEConfig.out_dims must be at least 9 (the local-argmax window), got {self.out_dims}")
        if not (0 < self.f0_min < self.f0_max and math.isfinite(self.f0_max)):
            raise ValueError(f"FCPEConfig needs 0 < f0_min < f0_max, got {self.f0_min!r}, {self.f0_max!r}")
        if not self.conv_only:
            raise ValueError("FCPEConfig.conv_only=False (the Performer attention variant) is not implemented")
        if self.use_harmonic_emb:
            raise ValueError("FCPEConfig.use_harmonic_emb=True is not implemented (a training-time variant)")


class ConformerConvModule(nn.Module):
    """LayerNorm, pointwise conv to 2x the inner width, GLU, depthwise conv (31 taps), SiLU, pointwise conv.

    ``net`` keeps torchfcpe's Sequential indices (1 and 7 were transposes, 3 the GLU, 5 the SiLU).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = dim * _EXPANSION
        self.net = nn.ModuleDict(
            {
                "0": nn.LayerNorm(dim),
                "2": nn.Conv1d(dim, inner * 2, 1),
                "4": _DepthwiseConv1d(inner),
                "6": nn.Conv1d(inner, dim, 1),
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(B, T, dim)`` -> ``(B, T, dim)``."""
        hidden = self.net["0"](x).transpose(1, 2)
        hidden = nn.functional.glu(self.net["2"](hidden), dim=1)
        hidden = nn.functional.silu(self.net["4"](hidden))
        return self.net["6"](hidden).transpose(1, 2)


class _DepthwiseConv1d(nn.Module):
    """Holds the conv under ``.conv``, as the checkpoint names it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, _CONV_KERNEL, padding=_CONV_KERNEL // 2, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class EncoderLayer(nn.Module):
    """A conv-only CFNEncoderLayer: ``x + conformer(x)`` (its attention and the pre-norm that fed it are absent)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conformer = ConformerConvModule(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conformer(x)


class _Encoder(nn.Module):
    def __init__(self, config: FCPEConfig) -> None:
        super().__init__()
        self.encoder_layers = nn.ModuleList(EncoderLayer(config.hidden_dims) for _ in range(config.n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.encoder_layers:
            x = layer(x)
        return x


class FCPENet(nn.Module):
    """mel ``(B, T, n_mels)`` float32 -> salience ``(B, T, out_dims)``; ``cent_table`` gives each bin's cents."""

    cent_table: torch.Tensor

    def __init__(self, config: FCPEConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden_dims
        self.input_stack = nn.ModuleDict(
            {
                "0": nn.Conv1d(config.n_mels, hidden, 3, 1, 1),
                "1": nn.GroupNorm(4, hidden),
                "3": nn.Conv1d(hidden, hidden, 3, 1, 1),
            }
        )
        self.net = _Encoder(config)
        self.norm = nn.LayerNorm(hidden)
        self.output_proj = nn.Linear(hidden, config.out_dims)
        # cents relative to 10 Hz; the checkpoint carries the table torchfcpe computed, which is loaded over this
        low, high = (1200.0 * math.log2(f / 10.0) for f in (config.f0_min, config.f0_max))
        self.register_buffer("cent_table", torch.linspace(low, high, config.out_dims))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        hidden = self.input_stack["0"](mel.transpose(1, 2))
        hidden = nn.functional.leaky_relu(self.input_stack["1"](hidden))
        hidden = self.input_stack["3"](hidden).transpose(1, 2)
        hidden = self.norm(self.net(hidden))
        return torch.sigmoid(self.output_proj(hidden))
