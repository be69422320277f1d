"""BiCodec's feature encoder (wav2vec2 mix -> codec latent) and feature decoder (prenet/postnet)."""

from __future__ import annotations

import torch
from torch import nn

from sparktts.config import FeatDecoderConfig, FeatEncoderConfig
from sparktts.modules.vocos import SamplingBlock, VocosBackbone

__all__ = ["FeatDecoder", "FeatEncoder"]

# The resampling stages always use this many ConvNeXt blocks, whatever the config says.
_STAGE_LAYERS = 2


def _stage(dim: int, intermediate_dim: int, *, upsample: int = 1, downsample: int = 1) -> nn.Sequential:
    return nn.Sequential(
        SamplingBlock(dim, groups=dim, upsample_scale=upsample, downsample_scale=downsample),
        VocosBackbone(dim, dim, intermediate_dim, _STAGE_LAYERS),
    )


class FeatEncoder(nn.Module):
    """``encoder``: x (B, input_channels, T) -> z (B, out_channels, T // prod(sample_ratios))."""

    def __init__(self, config: FeatEncoderConfig) -> None:
        super().__init__()
        self.encoder = VocosBackbone(config.input_channels, config.vocos_dim,
                                     config.vocos_intermediate_dim, config.vocos_num_layers)
        self.downsample = nn.Sequential(
            *[_stage(config.vocos_dim, config.vocos_intermediate_dim, downsample=ratio)
              for ratio in config.sample_ratios]
        )
        self.project = nn.Linear(config.vocos_dim, config.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.downsample(self.encoder(x))).transpose(1, 2)


class FeatDecoder(nn.Module):
    """``prenet``/``postnet``: x (B, input_channels, T) -> (B, out_channels, T * prod(sample_ratios)).

    The prenet is conditioned on the d-vector ``condition`` (B, condition_dim) through
    AdaLayerNorm in its main backbone; the postnet takes no condition.
    """

    def __init__(self, config: FeatDecoderConfig) -> None:
        super().__init__()
        self.linear_pre = nn.Linear(config.input_channels, config.vocos_dim)
        self.downsample = nn.Sequential(  # named so by the checkpoint, although it upsamples
            *[_stage(config.vocos_dim, config.vocos_intermediate_dim, upsample=ratio)
              for ratio in config.sample_ratios]
        )
        self.vocos_backbone = VocosBackbone(config.vocos_dim, config.vocos_dim, config.vocos_intermediate_dim,
                                            config.vocos_num_layers, condition_dim=config.condition_dim)
        self.linear = nn.Linear(config.vocos_dim, config.out_channels)
        self.use_tanh_at_final = config.use_tanh_at_final

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        x = self.downsample(self.linear_pre(x.transpose(1, 2))).transpose(1, 2)
        x = self.linear(self.vocos_backbone(x, condition)).transpose(1, 2)
        return torch.tanh(x) if self.use_tanh_at_final else x
