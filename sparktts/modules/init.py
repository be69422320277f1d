"""The reference's random initialisation, for random-weight builds (demo models, tests).

Loading a checkpoint overwrites all of it, and :meth:`sparktts.bicodec.BiCodec.from_pretrained`
builds on the ``meta`` device, so a real load never pays for it.
"""

from __future__ import annotations

from torch import nn

__all__ = ["init_conv_linear"]


def init_conv_linear(module: nn.Module) -> None:
    """Truncated normal (std 0.02) weights and zero biases for Conv1d and Linear (not transposed convs)."""
    if isinstance(module, nn.Conv1d | nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
