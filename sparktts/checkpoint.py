"""Strict loading of a BiCodec ``model.safetensors`` into a (possibly partial) BiCodec.

The on-disk layout is the official one: weight-normed convs as ``X.weight_g`` / ``X.weight_v``
(plain ``X.weight`` is accepted too, since some ports ship it folded), BatchNorm running stats,
``quantizer.cluster_size``, and optionally the recomputable ``mel_transformer.*`` buffers.

The checkpoint is always checked against the **full** model layout, so a vocoder-only process
still rejects a truncated or foreign file; only the tensors the partial model holds are loaded.
Any missing or unexpected key or shape mismatch raises :class:`CheckpointError` naming them all.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from sparktts.errors import CheckpointError
from sparktts.modules.weight_norm import fold_weight_norm, is_weight_normed

__all__ = [
    "OPTIONAL_PREFIXES",
    "checkpoint_layout",
    "checkpoint_state",
    "key_problems",
    "load_checkpoint_into",
    "runtime_state_from_checkpoint",
]

# Buffers that the official loader tolerates being absent, because they are recomputed.
OPTIONAL_PREFIXES = ("mel_transformer.",)

_MAX_NAMES = 40


def _weight_normed_prefixes(model: nn.Module) -> set[str]:
    return {name for name, module in model.named_modules() if is_weight_normed(module)}


def checkpoint_layout(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The state-dict layout ``model`` is stored in on disk: {key: shape}, weight norm unfolded.

    Works on a ``meta``-device model, so the full-size layout costs no memory.
    """
    wn = _weight_normed_prefixes(model)
    layout: dict[str, tuple[int, ...]] = {}
    for key, tensor in model.state_dict().items():
        prefix, _, leaf = key.rpartition(".")
        if leaf == "weight" and prefix in wn:
            layout[f"{prefix}.weight_g"] = (tensor.shape[0],) + (1,) * (tensor.dim() - 1)
            layout[f"{prefix}.weight_v"] = tuple(tensor.shape)
        else:
            layout[key] = tuple(tensor.shape)
    return layout


def checkpoint_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state in the on-disk form: each folded weight split back into g = ||w||, v = w.

    ``mel_transformer.*`` is left out (recomputed on load). Tensors are contiguous CPU float32
    copies, ready for ``safetensors.torch.save_file``.
    """
    wn = _weight_normed_prefixes(model)
    state: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        if key.startswith(OPTIONAL_PREFIXES):
            continue
        tensor = tensor.detach().cpu()
        tensor = tensor.float() if tensor.is_floating_point() else tensor
        prefix, _, leaf = key.rpartition(".")
        if leaf == "weight" and prefix in wn:
            norm = tensor.reshape(tensor.shape[0], -1).norm(dim=1)
            state[f"{prefix}.weight_g"] = norm.reshape((-1,) + (1,) * (tensor.dim() - 1)).contiguous()
            state[f"{prefix}.weight_v"] = tensor.clone().contiguous()
        else:
            state[key] = tensor.clone().contiguous()
    return state


def _names(keys: list[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_NAMES])
    return shown + (f", ... ({len(keys) - _MAX_NAMES} more)" if len(keys) > _MAX_NAMES else "")


def runtime_state_from_checkpoint(
    state: Mapping[str, torch.Tensor], full_model: nn.Module, *, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Check ``state`` against ``full_model`` and return it in runtime form (float32, norm folded).

    ``full_model`` may live on the ``meta`` device: only its names and shapes are read.
    """
    wn = _weight_normed_prefixes(full_model)
    expected = {key: tuple(t.shape) for key, t in full_model.state_dict().items()}
    runtime: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for key, tensor in state.items():
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32)  # fold and load in float32, as the reference does
        prefix, _, leaf = key.rpartition(".")
        if prefix in wn and leaf in ("weight_g", "weight_v"):
            continue  # handled below, pairwise
        runtime[key] = tensor
    for prefix in sorted(wn):
        g_key, v_key, w_key = f"{prefix}.weight_g", f"{prefix}.weight_v", f"{prefix}.weight"
        has_g, has_v = g_key in state, v_key in state
        if has_g != has_v:
            problems.append(f"weight norm pair incomplete: {g_key if has_g else v_key} without its partner")
            continue
        if not has_g:
            continue  # plain weight (or missing: reported below)
        if w_key in state:
            problems.append(f"both {w_key} and {g_key}/{v_key} present")
            continue
        g, v = state[g_key].to(torch.float32), state[v_key].to(torch.float32)
        want_v = expected[w_key]
        want_g = (want_v[0],) + (1,) * (len(want_v) - 1)
        if tuple(v.shape) != want_v or tuple(g.shape) != want_g:
            problems.append(f"shape mismatch: {g_key} {tuple(g.shape)} / {v_key} {tuple(v.shape)}, "
                            f"expected {want_g} / {want_v}")
            continue
        runtime[w_key] = fold_weight_norm(g, v)

    missing = [k for k in expected if k not in runtime and not k.startswith(OPTIONAL_PREFIXES)]
    missing = [f"{k} (or {k}_g/{k}_v)" if k.rpartition(".")[0] in wn else k for k in missing]
    unexpected = [k for k in runtime if k not in expected]
    mismatched = [f"{k} {tuple(runtime[k].shape)} (expected {expected[k]})"
                  for k in runtime if k in expected and tuple(runtime[k].shape) != expected[k]]
    problems += key_problems(missing, unexpected, mismatched)
    if problems:
        raise CheckpointError(f"{source} does not fit the BiCodec config: " + "; ".join(problems))
    return runtime


def key_problems(missing: list[str], unexpected: list[str], mismatched: list[str]) -> list[str]:
    """One readable phrase per non-empty list of offending keys (for a CheckpointError message)."""
    named = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
    return [f"{label}: {_names(keys)}" for label, keys in named if keys]


def load_checkpoint_into(model: nn.Module, runtime_state: Mapping[str, torch.Tensor]) -> None:
    """Copy the tensors ``model`` holds from an already-validated runtime state dict."""
    own = model.state_dict()
    subset = {k: v for k, v in runtime_state.items() if k in own}
    missing, unexpected = model.load_state_dict(subset, strict=False)
    not_optional = [k for k in missing if not k.startswith(OPTIONAL_PREFIXES)]
    if not_optional or unexpected:  # cannot happen after validation; guards against layout drift
        raise CheckpointError(f"internal layout mismatch: missing {_names(not_optional)}, "
                              f"unexpected {_names(list(unexpected))}")
