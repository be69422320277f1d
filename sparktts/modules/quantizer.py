"""Factorized vector quantiser: BiCodec's semantic tokens (one per 20 ms frame)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparktts.config import FactorizedVQConfig
from sparktts.modules.weight_norm import WNConv1d

__all__ = ["FactorizedVectorQuantize"]


class FactorizedVectorQuantize(nn.Module):
    """Project the latent to a small code space, match by cosine similarity, project back.

    Matching uses L2-normalised codes and codebook rows; dequantisation looks up the **raw**
    (un-normalised) codebook rows. ``cluster_size`` is a training statistic kept for the
    checkpoint layout only.
    """

    def __init__(self, config: FactorizedVQConfig) -> None:
        super().__init__()
        self.codebook_size = config.codebook_size
        if config.input_dim != config.codebook_dim:
            self.in_project: nn.Module = WNConv1d(config.input_dim, config.codebook_dim, kernel_size=1)
            self.out_project: nn.Module = WNConv1d(config.codebook_dim, config.input_dim, kernel_size=1)
        else:
            self.in_project = nn.Identity()
            self.out_project = nn.Identity()
        self.codebook = nn.Embedding(config.codebook_size, config.codebook_dim)
        self.register_buffer("cluster_size", torch.zeros(config.codebook_size))

    def project_in(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, input_dim, T) -> z_e (B, codebook_dim, T)."""
        return self.in_project(z)

    def tokenize(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, input_dim, T) -> indices (B, T) int64."""
        z_e = self.in_project(z).float()
        batch, dim, frames = z_e.shape
        encodings = F.normalize(z_e.transpose(1, 2).reshape(batch * frames, dim))
        codebook = F.normalize(self.codebook.weight.float())
        # Same expression as the official squared distance; on unit vectors it ranks by cosine.
        distance = (encodings.pow(2).sum(1, keepdim=True) - 2 * encodings @ codebook.t()
                    + codebook.pow(2).sum(1, keepdim=True).t())
        return (-distance).max(1)[1].reshape(batch, frames)

    def detokenize(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, T) int -> z_q (B, input_dim, T)."""
        codes = F.embedding(indices.long(), self.codebook.weight).transpose(1, 2)
        return self.out_project(codes)
