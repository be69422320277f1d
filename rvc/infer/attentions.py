"""The VITS-style transformer inside RVC's text (content) encoder.

Post-LayerNorm layers of relative-position self-attention (window 10, one table of relative
embeddings shared by all heads) and a 2-conv feed-forward block, all on channels-first tensors
``(B, C, T)`` with a ``(B, 1, T)`` float mask. Module and parameter names mirror the reference
(``attn_layers.{i}.conv_q``, ``emb_rel_k``, ``norm_layers_1.{i}.gamma``, ``ffn_layers.{i}.conv_1``)
so checkpoints load without a rename table.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ChannelLayerNorm", "FeedForward", "RelativeSelfAttention", "TransformerEncoder"]

RELATIVE_WINDOW = 10
MASKED_SCORE = -1e4


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a ``(B, C, T)`` tensor (parameters ``gamma``/``beta``)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), self.gamma.shape, self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


def _diagonal_rows(offset: int, length: int) -> slice:
    """Rows i of a (length × length) matrix that have a column j = i + offset."""
    return slice(max(-offset, 0), length - max(offset, 0))


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with learned relative-position terms for |j − i| ≤ window.

    For query i and key j inside the window, the score gains q_i·emb_rel_k[j − i + window]/√d and the
    output gains p_ij·emb_rel_v[j − i + window]; outside the window both terms are zero. The band
    is applied one diagonal at a time (2·window + 1 strided views), so no (T × T) index tensor is
    built and the extra cost stays linear in T.
    """

    def __init__(self, channels: int, n_heads: int, window: int = RELATIVE_WINDOW) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels {channels} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_channels = channels // n_heads
        self.window = window
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        scale = self.head_channels**-0.5
        self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window + 1, self.head_channels) * scale)
        self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window + 1, self.head_channels) * scale)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, length = x.shape
        return x.view(batch, self.n_heads, self.head_channels, length).transpose(2, 3)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T); attn_mask: (B, 1, T, T), 0 where a query/key pair is padding."""
        batch, channels, length = x.shape
        query = self._heads(self.conv_q(x)) / math.sqrt(self.head_channels)
        key = self._heads(self.conv_k(x))
        value = self._heads(self.conv_v(x))

        scores = torch.matmul(query, key.transpose(-2, -1))
        relative_logits = torch.matmul(query, self.emb_rel_k.transpose(-2, -1).unsqueeze(0))
        offsets = range(-min(self.window, length - 1), min(self.window, length - 1) + 1)
        for offset in offsets:
            rows = _diagonal_rows(offset, length)
            scores.diagonal(offset, -2, -1).add_(relative_logits[..., rows, offset + self.window])
        scores = scores.masked_fill(attn_mask == 0, MASKED_SCORE)
        probs = F.softmax(scores, dim=-1)

        output = torch.matmul(probs, value)
        relative_weights = probs.new_zeros(batch, self.n_heads, length, 2 * self.window + 1)
        for offset in offsets:
            rows = _diagonal_rows(offset, length)
            relative_weights[..., rows, offset + self.window] = probs.diagonal(offset, -2, -1)
        output = output + torch.matmul(relative_weights, self.emb_rel_v.unsqueeze(0))
        output = output.transpose(2, 3).reshape(batch, channels, length)
        return self.conv_o(output)


class FeedForward(nn.Module):
    """conv(k) → ReLU → conv(k), "same" padding, the input masked before each conv."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.padding = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(x * x_mask, self.padding)))
        x = self.conv_2(F.pad(x * x_mask, self.padding))
        return x * x_mask


class TransformerEncoder(nn.Module):
    """n post-LN layers: x = LN(x + Attn(x)); x = LN(x + FFN(x)); dropout is inference-irrelevant."""

    def __init__(
        self, channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int
    ) -> None:
        super().__init__()
        self.attn_layers = nn.ModuleList(RelativeSelfAttention(channels, n_heads) for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            FeedForward(channels, filter_channels, kernel_size) for _ in range(n_layers)
        )
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T) float; x_mask: (B, 1, T) float of 0/1 -> (B, C, T), zero where masked."""
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)
        x = x * x_mask
        for attention, norm_1, ffn, norm_2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = norm_1(x + attention(x, attn_mask))
            x = norm_2(x + ffn(x, x_mask))
        return x * x_mask
