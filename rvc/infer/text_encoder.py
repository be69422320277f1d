"""RVC's prior encoder (``enc_p``): content features (+ coarse pitch) -> prior mean and log-std.

"Text" is the VITS name; in RVC the tokens are HuBERT frames at 100 frames/s (the 50 Hz
features repeated twice), and f0 voices add an embedding of the coarse pitch bin (1..255).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rvc.infer.attentions import TransformerEncoder

__all__ = ["TextEncoder", "sequence_mask"]

INPUT_LRELU_SLOPE = 0.1
PITCH_BINS = 256


def sequence_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """lengths: (B,) int -> (B, max_length) bool, True for positions < length."""
    positions = torch.arange(max_length, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


class TextEncoder(nn.Module):
    """(B, T, content_dim) features -> (m_p, logs_p) each (B, inter, T'), and the mask (B, 1, T')."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        *,
        with_pitch: bool,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.emb_phone = nn.Linear(in_channels, hidden_channels)
        self.emb_pitch = nn.Embedding(PITCH_BINS, hidden_channels) if with_pitch else None
        self.encoder = TransformerEncoder(hidden_channels, filter_channels, n_heads, n_layers, kernel_size)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self,
        phone: torch.Tensor,
        pitch: torch.Tensor | None,
        lengths: torch.Tensor,
        skip_frames: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """phone (B, T, C) float; pitch (B, T) int64 in [0, 255] or None; lengths (B,) int64.

        ``skip_frames`` drops that many leading frames after the transformer (which still sees
        all of them as context) and before the projection, so T' = T − skip_frames.
        """
        x = self.emb_phone(phone)
        if self.emb_pitch is not None:
            if pitch is None:
                raise ValueError("this encoder embeds pitch: pass the coarse pitch (B, T) int64")
            x = x + self.emb_pitch(pitch)
        x = F.leaky_relu(x * math.sqrt(self.hidden_channels), INPUT_LRELU_SLOPE)
        x = x.transpose(1, -1)
        x_mask = sequence_mask(lengths, x.shape[2]).unsqueeze(1).to(x.dtype)
        x = self.encoder(x * x_mask, x_mask)
        if skip_frames:
            x = x[:, :, skip_frames:]
            x_mask = x_mask[:, :, skip_frames:]
        stats = self.proj(x) * x_mask
        m_p, logs_p = torch.split(stats, self.out_channels, dim=1)
        return m_p, logs_p, x_mask
