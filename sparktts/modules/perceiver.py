"""Perceiver resampler: a variable-length ECAPA latent -> a fixed number of speaker latents."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PerceiverResampler"]


class CrossAttention(nn.Module):
    """Latents attend over cat(latents, context); no bias anywhere, no mask, softmax(q k^T / sqrt(d))."""

    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head
        inner = dim_head * heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, latents: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        context = torch.cat((latents, context), dim=-2)
        key, value = self.to_kv(context).chunk(2, dim=-1)
        query, key, value = (self._split_heads(t) for t in (self.to_q(latents), key, value))
        scores = torch.matmul(query, key.transpose(-1, -2)) * self.dim_head**-0.5
        out = torch.matmul(scores.softmax(dim=-1), value)
        batch, _, length, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(batch, length, self.heads * self.dim_head))


class GegluFeedForward(nn.Sequential):
    """Linear(dim, 2 * inner) -> GEGLU (gelu(gate) * x) -> Linear(inner, dim); inner = int(dim * mult * 2/3).

    A Sequential so that the checkpoint keys are ``0.*`` and ``2.*``.
    """

    def __init__(self, dim: int, mult: int) -> None:
        inner = int(dim * mult * 2 / 3)
        super().__init__(nn.Linear(dim, inner * 2), _Geglu(), nn.Linear(inner, dim))


class _Geglu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = x.chunk(2, dim=-1)
        return F.gelu(gate) * x


class RMSNorm(nn.Module):
    """F.normalize(x) * sqrt(dim) * gamma."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class PerceiverResampler(nn.Module):
    """context (B, T, dim_context) -> latents (B, num_latents, dim)."""

    def __init__(self, dim: int, dim_context: int, num_latents: int, *, depth: int = 2,
                 dim_head: int = 64, heads: int = 8, ff_mult: int = 4) -> None:
        super().__init__()
        self.proj_context = nn.Linear(dim_context, dim) if dim_context != dim else nn.Identity()
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * 0.02)
        self.layers = nn.ModuleList(
            [nn.ModuleList([CrossAttention(dim, dim_head, heads), GegluFeedForward(dim, ff_mult)])
             for _ in range(depth)]
        )
        self.norm = RMSNorm(dim)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        context = self.proj_context(context)
        latents = self.latents.unsqueeze(0).expand(context.shape[0], -1, -1)
        for block in self.layers:
            attention, feed_forward = cast(nn.ModuleList, block)
            latents = attention(latents, context) + latents
            latents = feed_forward(latents) + latents
        return self.norm(latents)
