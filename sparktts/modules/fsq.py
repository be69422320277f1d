"""Finite scalar quantisation (FSQ) and its residual stack: BiCodec's 32 global (speaker) tokens.

Each code dimension with L levels is bounded by a shifted tanh and rounded to one of L values;
the token index packs the per-dimension digits least-significant first
(``index = sum(digit_i * prod(levels[:i]))``), so levels [4]*6 give ids 0..4095.
The arithmetic follows the official module tensor-op by tensor-op in float32, because a token is
a rounding decision and the reference margins are ~5e-4.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

__all__ = ["FSQ", "ResidualFSQ"]

_BOUND_EPS = 1e-3


class FSQ(nn.Module):
    """One FSQ layer without projections: z (..., d) -> (codes in [-1, 1] (..., d), indices (...,) int32)."""

    _levels: torch.Tensor
    _basis: torch.Tensor

    def __init__(self, levels: tuple[int, ...]) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.register_buffer("_levels", torch.empty(len(levels), dtype=torch.int32), persistent=False)
        self.register_buffer("_basis", torch.empty(len(levels), dtype=torch.int32), persistent=False)
        self.reset_buffers()
        self.codebook_size = math.prod(levels)

    def reset_buffers(self) -> None:
        """(Re)compute the level and digit-basis tables, e.g. after a ``meta`` build + ``to_empty``."""
        device = self._levels.device
        self._levels = torch.tensor(self.levels, dtype=torch.int32, device=device)
        basis = torch.cumprod(torch.tensor([1, *self.levels[:-1]], device=device), dim=0, dtype=torch.int32)
        self._basis = basis

    def _half_width(self) -> torch.Tensor:
        return self._levels // 2

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        half_l = (self._levels - 1) * (1 + _BOUND_EPS) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = (offset / half_l).atanh()
        return (z + shift).tanh() * half_l - offset

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = self.bound(z.float()).round() / self._half_width()
        digits = codes * self._half_width() + self._half_width()
        indices = (digits * self._basis).sum(dim=-1).to(torch.int32)
        return codes.to(z.dtype), indices

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (...,) -> codes (..., d) float32 in [-1, 1]."""
        digits = (indices.unsqueeze(-1) // self._basis) % self._levels
        return (digits - self._half_width()) / self._half_width()


class ResidualFSQ(nn.Module):
    """Linear in -> ``num_quantizers`` FSQ layers on the running residual -> Linear out.

    Channel-first: x (B, dim, N) -> (quantised (B, dim, N), indices (B, num_quantizers, N) int32).
    Layer i works at scale (L - 1) ** -i, so the first layer has scale 1.
    """

    scales: torch.Tensor

    def __init__(self, levels: tuple[int, ...], num_quantizers: int, dim: int) -> None:
        super().__init__()
        codebook_dim = len(levels)
        if dim != codebook_dim:
            self.project_in: nn.Module = nn.Linear(dim, codebook_dim)
            self.project_out: nn.Module = nn.Linear(codebook_dim, dim)
        else:
            self.project_in = nn.Identity()
            self.project_out = nn.Identity()
        self.layers = nn.ModuleList([FSQ(levels) for _ in range(num_quantizers)])
        self.levels = tuple(levels)
        self.register_buffer("scales", torch.empty(num_quantizers, codebook_dim), persistent=False)
        self.reset_buffers()
        self.codebook_size = self.layers[0].codebook_size

    def reset_buffers(self) -> None:
        """(Re)compute the per-quantizer scales (L - 1) ** -i."""
        level_tensor = torch.tensor(self.levels, dtype=torch.float32, device=self.scales.device)
        self.scales = torch.stack([(level_tensor - 1) ** -index for index in range(len(self.layers))])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        residual = self.project_in(x.transpose(1, 2))
        quantized_out = torch.zeros_like(residual)
        all_indices = []
        for layer, scale in zip(self.layers, self.scales, strict=True):
            codes, indices = layer(residual / scale)
            quantized = codes * scale
            residual = residual - quantized
            quantized_out = quantized_out + quantized
            all_indices.append(indices)
        quantized_out = self.project_out(quantized_out).transpose(1, 2)
        return quantized_out, torch.stack(all_indices, dim=1)

    def output_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, num_quantizers, N) -> projected codes (B, N, dim), summed over quantizers."""
        if indices.shape[1] != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} quantizer rows, got indices of shape {tuple(indices.shape)}")
        total: torch.Tensor | None = None
        for row, (layer, scale) in enumerate(zip(self.layers, self.scales, strict=True)):
            codes = cast(FSQ, layer).indices_to_codes(indices[:, row].long()) * scale
            total = codes if total is None else total + codes
        if total is None:
            raise ValueError("a ResidualFSQ needs at least one quantizer layer")
        weight = next((p for p in self.project_out.parameters()), None)
        return self.project_out(total.to(weight.dtype) if weight is not None else total)
