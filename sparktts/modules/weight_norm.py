"""Convolutions whose checkpoint form is old-style weight norm (``weight_g`` / ``weight_v``, dim 0).

The modules hold a plain ``weight``: the norm is folded once at load time
(``weight = g * v / ||v||``, the norm taken over every dim but 0), which is what the official
loader's ``remove_weight_norm`` leaves behind, so inference pays nothing for it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["WNConv1d", "WNConvTranspose1d", "fold_weight_norm", "is_weight_normed"]


class WNConv1d(nn.Conv1d):
    """A Conv1d stored on disk as ``weight_g`` [out, 1, 1] and ``weight_v`` [out, in, k]."""


class WNConvTranspose1d(nn.ConvTranspose1d):
    """A ConvTranspose1d stored as ``weight_g`` [in, 1, 1] and ``weight_v`` [in, out, k].

    dim 0 of a transposed-conv weight is in_channels, so g has one entry per *input* channel.
    """


def is_weight_normed(module: nn.Module) -> bool:
    return isinstance(module, WNConv1d | WNConvTranspose1d)


def fold_weight_norm(weight_g: torch.Tensor, weight_v: torch.Tensor) -> torch.Tensor:
    """g * v / ||v|| with the L2 norm over all dims but 0.

    Uses the kernel behind ``torch.nn.utils.weight_norm`` (and so behind the reference's
    ``remove_weight_norm``), which makes the folded weight bit-identical to the reference's.
    """
    return torch._weight_norm(weight_v, weight_g, 0)
