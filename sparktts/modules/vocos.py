"""Vocos-style ConvNeXt backbone and the sampling block that BiCodec's encoder and prenet stack.

Layout conventions (they matter because the official modules flip between them):

* :class:`VocosBackbone` takes channels-first (B, C_in, T) and returns **channels-last** (B, T, dim).
* :class:`SamplingBlock` takes channels-last (B, T, C) and returns channels-first (B, C, T').
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparktts.modules.init import init_conv_linear

__all__ = ["AdaLayerNorm", "ConvNeXtBlock", "SamplingBlock", "VocosBackbone"]

_LN_EPS = 1e-6


class AdaLayerNorm(nn.Module):
    """Layer norm without affine parameters, then ``x * scale(c) + shift(c)``.

    x: (B, T, dim); condition: (B, condition_dim), the speaker d-vector.
    """

    def __init__(self, condition_dim: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.scale = nn.Linear(condition_dim, dim)
        self.shift = nn.Linear(condition_dim, dim)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale = self.scale(condition).unsqueeze(1)
        shift = self.shift(condition).unsqueeze(1)
        return F.layer_norm(x, (self.dim,), eps=_LN_EPS) * scale + shift


def _norm(dim: int, condition_dim: int | None) -> nn.Module:
    return AdaLayerNorm(condition_dim, dim) if condition_dim else nn.LayerNorm(dim, eps=_LN_EPS)


def _apply_norm(norm: nn.Module, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
    if isinstance(norm, AdaLayerNorm):
        if condition is None:
            raise ValueError("this backbone is conditioned: pass the d-vector as `condition`")
        return norm(x, condition)
    return norm(x)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv k7 -> (Ada)LayerNorm -> Linear -> exact GELU -> Linear -> layer scale, residual.

    x: (B, dim, T) -> (B, dim, T).
    """

    def __init__(self, dim: int, intermediate_dim: int, condition_dim: int | None = None,
                 layer_scale: float = 1.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = _norm(dim, condition_dim)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = _apply_norm(self.norm, y, condition)
        y = self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + (self.gamma * y).transpose(1, 2)


class VocosBackbone(nn.Module):
    """embed conv k7 -> norm -> ConvNeXt blocks -> final LayerNorm.

    x: (B, input_channels, T) -> (B, T, dim). With ``condition_dim`` every norm but the final one
    is an :class:`AdaLayerNorm` driven by ``condition`` (B, condition_dim).
    """

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int,
                 condition_dim: int | None = None) -> None:
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = _norm(dim, condition_dim)
        self.convnext = nn.ModuleList(
            [ConvNeXtBlock(dim, intermediate_dim, condition_dim, layer_scale=1 / num_layers)
             for _ in range(num_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=_LN_EPS)
        self.apply(init_conv_linear)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        x = _apply_norm(self.norm, self.embed(x).transpose(1, 2), condition).transpose(1, 2)
        for block in self.convnext:
            x = block(x, condition)
        return self.final_layer_norm(x.transpose(1, 2))


class SamplingBlock(nn.Module):
    """Sum of three resampling paths: learned (de)conv, and two repeat/average-pool skips.

    x: (B, T, dim) -> (B, dim, T * up // down).

    With both scales 1 (the shipped config) all three paths are the identity, so the block
    returns ``3 * x``. That factor is what the released weights were trained with; keep it.
    """

    def __init__(self, dim: int, groups: int = 1, upsample_scale: int = 1, downsample_scale: int = 1) -> None:
        super().__init__()
        self.upsample_scale = upsample_scale
        self.downsample_scale = downsample_scale
        if upsample_scale > 1:
            self.de_conv_upsampler = nn.Sequential(
                nn.LeakyReLU(0.2),
                nn.ConvTranspose1d(dim, dim, kernel_size=upsample_scale * 2, stride=upsample_scale,
                                   padding=upsample_scale // 2 + upsample_scale % 2,
                                   output_padding=upsample_scale % 2, groups=groups),
            )
        if downsample_scale > 1:
            self.conv_downsampler = nn.Sequential(
                nn.LeakyReLU(0.2),
                nn.Conv1d(dim, dim, kernel_size=2 * downsample_scale, stride=downsample_scale,
                          padding=downsample_scale // 2 + downsample_scale % 2, groups=groups),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        if self.upsample_scale == 1 and self.downsample_scale == 1:
            return 3 * x
        repeated = merged = x
        if self.upsample_scale > 1:
            repeated = x.repeat_interleave(self.upsample_scale, dim=2)
            merged = repeated + self.de_conv_upsampler(x)
        if self.downsample_scale > 1:
            scale = self.downsample_scale
            return (self.conv_downsampler(merged)
                    + F.avg_pool1d(repeated, kernel_size=scale, stride=scale)
                    + F.avg_pool1d(merged, kernel_size=scale, stride=scale))
        return merged + repeated + merged
