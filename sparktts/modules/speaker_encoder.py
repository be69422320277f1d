"""Speaker encoder: mel of the 6 s reference clip -> 32 global tokens -> d-vector that conditions the prenet."""

from __future__ import annotations

import torch
from torch import nn

from sparktts.config import SpeakerEncoderConfig
from sparktts.modules.ecapa import EcapaTdnn
from sparktts.modules.fsq import ResidualFSQ
from sparktts.modules.perceiver import PerceiverResampler

__all__ = ["SpeakerEncoder"]


class SpeakerEncoder(nn.Module):
    """ECAPA-TDNN -> perceiver resampler -> residual FSQ (tokenize) and FSQ codes -> Linear (detokenize).

    With ``with_encoder=False`` only the detokenize half (FSQ projections and ``project``) is built;
    a vocoder-only process then holds no ECAPA or perceiver weights.
    """

    def __init__(self, config: SpeakerEncoderConfig, *, with_encoder: bool = True) -> None:
        super().__init__()
        self.config = config
        self.with_encoder = with_encoder
        if with_encoder:
            self.speaker_encoder = EcapaTdnn(config.input_dim, config.out_dim)
            self.perceiver_sampler = PerceiverResampler(
                dim=config.latent_dim, dim_context=self.speaker_encoder.latent_channels,
                num_latents=config.token_num,
            )
        self.quantizer = ResidualFSQ(config.fsq_levels, config.fsq_num_quantizers, config.latent_dim)
        self.project = nn.Linear(config.latent_dim * config.token_num, config.out_dim)

    def perceiver_latents(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, T, n_mels) -> perceiver output (B, latent_dim, token_num), the FSQ input."""
        if not self.with_encoder:
            raise RuntimeError("speaker encoder was built with with_encoder=False: it cannot tokenize")
        latent = self.speaker_encoder.latent(mel)
        return self.perceiver_sampler(latent.transpose(1, 2)).transpose(1, 2)

    def tokenize(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, T, n_mels) -> global tokens (B, num_quantizers, token_num) int32."""
        _, indices = self.quantizer(self.perceiver_latents(mel))
        return indices

    def detokenize(self, indices: torch.Tensor) -> torch.Tensor:
        """global tokens (B, num_quantizers, token_num) -> d-vector (B, out_dim)."""
        codes = self.quantizer.output_from_indices(indices).transpose(1, 2)  # (B, latent_dim, token_num)
        # channel-major flatten (c * token_num + t), as the released `project` weights expect
        return self.project(codes.reshape(codes.shape[0], -1))
