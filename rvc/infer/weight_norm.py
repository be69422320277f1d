"""Weight normalisation as RVC checkpoints store it, folded into plain weights at load time.

RVC trains with the legacy ``torch.nn.utils.weight_norm`` (dim 0), so a checkpoint holds
``<name>.weight_g`` (the gain, shape ``(weight.shape[0], 1, 1)``) and ``<name>.weight_v`` (the
direction, the weight's shape) instead of ``<name>.weight``. At inference the effective weight
``g * v / ||v||`` never changes, so it is computed once while loading and the modules here are
plain convolutions: no per-call norm, no deprecated hook. For ``ConvTranspose1d`` dim 0 is the
*input* channel, which the ``weight.shape[0]`` rule covers without a special case.

``WeightNormConv1d`` / ``WeightNormConvTranspose1d`` behave exactly like their torch parents
(plus the planar input of ``rvc.infer.planar``);
the subclass only records that the checkpoint splits this module's weight into g and v.
"""

from __future__ import annotations

import torch
from torch import nn

from rvc.infer.planar import PlanarConv1d, PlanarConvTranspose1d

__all__ = [
    "WeightNormConv1d",
    "WeightNormConvTranspose1d",
    "checkpoint_layout",
    "fold_weight_norm",
    "normalize_weight_norm_names",
    "split_weight_norm",
    "weight_norm_prefixes",
]

# torch.nn.utils.parametrizations.weight_norm spells g and v this way; accept it too.
_PARAMETRIZED_G = ".parametrizations.weight.original0"
_PARAMETRIZED_V = ".parametrizations.weight.original1"


class WeightNormConv1d(PlanarConv1d):
    """A ``Conv1d`` whose checkpoint weight is stored as ``weight_g`` / ``weight_v`` (dim 0)."""


class WeightNormConvTranspose1d(PlanarConvTranspose1d):
    """A ``ConvTranspose1d`` whose checkpoint weight is stored as ``weight_g`` / ``weight_v`` (dim 0)."""


_WEIGHT_NORM_TYPES = (WeightNormConv1d, WeightNormConvTranspose1d)


def weight_norm_prefixes(model: nn.Module) -> list[str]:
    """Dotted names of every module in ``model`` whose checkpoint weight is weight-normed."""
    return [name for name, module in model.named_modules() if isinstance(module, _WEIGHT_NORM_TYPES)]


def checkpoint_layout(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The key -> shape map a checkpoint of ``model`` holds, with ``weight`` split into g and v."""
    split = {f"{prefix}.weight" for prefix in weight_norm_prefixes(model)}
    layout: dict[str, tuple[int, ...]] = {}
    for key, tensor in model.state_dict().items():
        shape = tuple(tensor.shape)
        if key in split:
            stem = key[: -len("weight")]
            layout[stem + "weight_g"] = (shape[0],) + (1,) * (len(shape) - 1)
            layout[stem + "weight_v"] = shape
        else:
            layout[key] = shape
    return layout


def normalize_weight_norm_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``parametrizations.weight.original0/1`` keys to the legacy ``weight_g/weight_v``."""
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith(_PARAMETRIZED_G):
            key = key[: -len(_PARAMETRIZED_G)] + ".weight_g"
        elif key.endswith(_PARAMETRIZED_V):
            key = key[: -len(_PARAMETRIZED_V)] + ".weight_v"
        renamed[key] = tensor
    return renamed


def fold_weight_norm(state: dict[str, torch.Tensor], prefixes: list[str]) -> dict[str, torch.Tensor]:
    """Replace each ``<prefix>.weight_g`` / ``.weight_v`` pair by ``<prefix>.weight`` = g·v/‖v‖.

    g and v are widened to float32 first (checkpoints store fp16), and the product is computed by
    ``torch._weight_norm``, the same kernel the legacy hook and the parametrization run, so the
    folded weight equals what the reference model computes on every forward, bit for bit.
    Keys that are not part of a pair pass through unchanged; callers check completeness first.
    """
    folded = dict(state)
    for prefix in prefixes:
        g = folded.pop(f"{prefix}.weight_g").float()
        v = folded.pop(f"{prefix}.weight_v").float()
        folded[f"{prefix}.weight"] = torch._weight_norm(v, g, 0)
    return folded


def split_weight_norm(state: dict[str, torch.Tensor], prefixes: list[str]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`fold_weight_norm` for writing checkpoints: v = w, g = ‖w‖ over dims ≠ 0."""
    split = dict(state)
    for prefix in prefixes:
        weight = split.pop(f"{prefix}.weight")
        dims = tuple(range(1, weight.dim()))
        split[f"{prefix}.weight_g"] = torch.linalg.vector_norm(weight.float(), dim=dims, keepdim=True).to(
            weight.dtype
        )
        split[f"{prefix}.weight_v"] = weight
    return split
