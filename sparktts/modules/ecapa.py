"""ECAPA-TDNN (512 channels, global-context attentive pooling): the speaker encoder's trunk.

Only the frame-level ``latent`` (B, 1536, T) feeds the global tokens; the pooled x-vector head
(``pool``, ``bn``, ``linear``) is kept for the checkpoint layout and for parity checks.
Every conv block runs conv -> ReLU -> BatchNorm (eval running statistics, eps 1e-5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EcapaTdnn"]

_CHANNELS = 512  # hard-coded by the official speaker encoder, whatever the config says
_SE_BOTTLENECK = 128
_RES2_SCALE = 8
_POOL_BOTTLENECK = 128


class Conv1dReluBn(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding)
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    """Split channels into ``scale`` groups; each group but the last is convolved after adding the
    previous group's output (a growing receptive field); the last group passes through."""

    def __init__(self, channels: int, kernel_size: int, padding: int, dilation: int, scale: int) -> None:
        super().__init__()
        self.width = channels // scale
        self.convs = nn.ModuleList(
            [nn.Conv1d(self.width, self.width, kernel_size, padding=padding, dilation=dilation)
             for _ in range(scale - 1)]
        )
        self.bns = nn.ModuleList([nn.BatchNorm1d(self.width) for _ in range(scale - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.split(x, self.width, dim=1)
        outputs = []
        current = groups[0]
        for index, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            if index:
                current = current + groups[index]
            current = bn(F.relu(conv(current)))
            outputs.append(current)
        outputs.append(groups[len(self.convs)])
        return torch.cat(outputs, dim=1)


class SEConnect(nn.Module):
    """Squeeze-excitation over the time mean."""

    def __init__(self, channels: int, bottleneck: int = _SE_BOTTLENECK) -> None:
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(x.mean(dim=2)))))
        return x * gate.unsqueeze(2)


class SERes2Block(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int) -> None:
        super().__init__()
        self.se_res2block = nn.Sequential(
            Conv1dReluBn(channels, channels),
            Res2Conv1dReluBn(channels, kernel_size, padding=dilation, dilation=dilation, scale=scale),
            Conv1dReluBn(channels, channels),
            SEConnect(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.se_res2block(x)


class AttentiveStatsPool(nn.Module):
    """ASTP with global context: attention over time from cat(x, mean, std), then weighted mean and std.

    x (B, C, T) -> (B, 2C).
    """

    def __init__(self, in_dim: int, bottleneck: int = _POOL_BOTTLENECK) -> None:
        super().__init__()
        self.linear1 = nn.Conv1d(in_dim * 3, bottleneck, kernel_size=1)
        self.linear2 = nn.Conv1d(bottleneck, in_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context_mean = x.mean(dim=-1, keepdim=True).expand_as(x)
        context_std = torch.sqrt(torch.var(x, dim=-1, keepdim=True) + 1e-7).expand_as(x)
        weights = torch.tanh(self.linear1(torch.cat((x, context_mean, context_std), dim=1)))
        weights = torch.softmax(self.linear2(weights), dim=2)
        mean = torch.sum(weights * x, dim=2)
        var = torch.sum(weights * x**2, dim=2) - mean**2
        return torch.cat([mean, torch.sqrt(var.clamp(min=1e-7))], dim=1)


class EcapaTdnn(nn.Module):
    """mel (B, T, feat_dim) -> (x_vector (B, embed_dim), latent (B, 1536, T))."""

    def __init__(self, feat_dim: int, embed_dim: int, *, with_head: bool = True) -> None:
        super().__init__()
        self.layer1 = Conv1dReluBn(feat_dim, _CHANNELS, kernel_size=5, padding=2)
        self.layer2 = SERes2Block(_CHANNELS, kernel_size=3, dilation=2, scale=_RES2_SCALE)
        self.layer3 = SERes2Block(_CHANNELS, kernel_size=3, dilation=3, scale=_RES2_SCALE)
        self.layer4 = SERes2Block(_CHANNELS, kernel_size=3, dilation=4, scale=_RES2_SCALE)
        latent_channels = _CHANNELS * 3
        self.latent_channels = latent_channels
        self.conv = nn.Conv1d(latent_channels, latent_channels, kernel_size=1)
        self.with_head = with_head
        if with_head:
            self.pool = AttentiveStatsPool(latent_channels)
            self.bn = nn.BatchNorm1d(latent_channels * 2)
            self.linear = nn.Linear(latent_channels * 2, embed_dim)

    def latent(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, T, feat_dim) -> frame-level latent (B, 1536, T)."""
        out1 = self.layer1(mel.permute(0, 2, 1))
        out2 = self.layer2(out1)
        out3 = self.layer3(out2)
        out4 = self.layer4(out3)
        return F.relu(self.conv(torch.cat([out2, out3, out4], dim=1)))

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.latent(mel)
        if not self.with_head:
            raise RuntimeError("this ECAPA was built without its x-vector head")
        return self.linear(self.bn(self.pool(latent))), latent
