"""RVC's normalising flow (mean-only residual coupling layers), run in the reverse direction only.

Inference maps the prior sample z_p to the decoder latent z. The flow is [C0, F, C1, F, C2, F,
C3, F] (C = coupling layer, F = channel flip, which has no parameters but keeps the reference's
``flow.flows.{0,2,4,6}`` key numbering) and is traversed backwards. Each coupling layer conditions
a gated WaveNet on the speaker embedding g.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from rvc.infer.weight_norm import WeightNormConv1d

__all__ = ["ChannelFlip", "ResidualCouplingBlock", "ResidualCouplingLayer", "WaveNet"]


class WaveNet(nn.Module):
    """Non-causal gated WaveNet (the reference's ``WN``) with global conditioning.

    Layer i: a = in_layer(x) + cond_layer(g)[2h·i : 2h·(i+1)]; acts = tanh(a[:h])·sigmoid(a[h:]);
    res_skip(acts) adds its first h channels to x (except in the last layer) and the rest to the
    output.
    """

    def __init__(
        self, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"WaveNet kernel_size must be odd, got {kernel_size}")
        self.hidden_channels = hidden_channels
        self.cond_layer = WeightNormConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate**i
            self.in_layers.append(
                WeightNormConv1d(
                    hidden_channels,
                    2 * hidden_channels,
                    kernel_size,
                    dilation=dilation,
                    padding=(kernel_size * dilation - dilation) // 2,
                )
            )
            out_channels = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(WeightNormConv1d(hidden_channels, out_channels, 1))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """x: (B, h, T); x_mask: (B, 1, T); g: (B, gin, 1) -> (B, h, T)."""
        hidden = self.hidden_channels
        output = torch.zeros_like(x)
        conditioning = self.cond_layer(g)
        last = len(self.in_layers) - 1
        for i, (in_layer, res_skip_layer) in enumerate(
            zip(self.in_layers, self.res_skip_layers, strict=True)
        ):
            activations = in_layer(x) + conditioning[:, 2 * hidden * i : 2 * hidden * (i + 1)]
            acts = torch.tanh(activations[:, :hidden]) * torch.sigmoid(activations[:, hidden:])
            res_skip = res_skip_layer(acts)
            if i < last:
                x = (x + res_skip[:, :hidden]) * x_mask
                output = output + res_skip[:, hidden:]
            else:
                output = output + res_skip
        return output * x_mask


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: x1 ← (x1 − post(WN(pre(x0)))) in reverse."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int,
    ) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"coupling channels must be even, got {channels}")
        self.half_channels = channels // 2
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = WaveNet(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels)
        self.post = nn.Conv1d(hidden_channels, self.half_channels, 1)

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x0, x1 = torch.split(x, [self.half_channels, self.half_channels], dim=1)
        hidden = self.pre(x0) * x_mask
        hidden = self.enc(hidden, x_mask, g)
        mean = self.post(hidden) * x_mask
        x1 = (x1 - mean) * x_mask
        return torch.cat([x0, x1], dim=1)


class ChannelFlip(nn.Module):
    """Reverses the channel order; its own inverse."""

    def reverse(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.flip(x, [1])


class ResidualCouplingBlock(nn.Module):
    """n_flows coupling layers, each followed by a flip; only the reverse (sampling) pass exists."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int = 5,
        dilation_rate: int = 1,
        n_layers: int = 3,
        n_flows: int = 4,
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(
                ResidualCouplingLayer(
                    channels, hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels
                )
            )
            self.flows.append(ChannelFlip())

    def reverse(self, z_p: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """z_p: (B, inter, T) prior sample -> z: (B, inter, T) decoder latent."""
        x = z_p
        for flow in reversed(self.flows):
            x = cast(ResidualCouplingLayer | ChannelFlip, flow).reverse(x, x_mask, g)
        return x
