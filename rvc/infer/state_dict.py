"""Reading and named key checks shared by the checkpoint loaders (voice ``.pth``, RMVPE, FCPE, HuBERT, ...)."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from rvc.errors import AssetError

__all__ = ["check_state_dict", "read_tensor_file"]

_MAX_LISTED_KEYS = 12


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    more = len(keys) - _MAX_LISTED_KEYS
    return shown + (f" (+{more} more)" if more > 0 else "")


def _all_finite(tensor: torch.Tensor) -> bool:
    # A NaN/inf element makes the sum NaN/inf; a finite tensor's sum is finite unless it overflows,
    # which the exact (and about 20x slower) element test then settles.
    if bool(torch.isfinite(tensor.sum(dtype=torch.float32))):
        return True
    return bool(tensor.isfinite().all())


def read_tensor_file(path: Path, *, source: str) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU: plain tensors, lists and dicts, no code run.

    An absent file, a foreign one or one that needs a class to unpickle is an AssetError starting
    with ``source`` ("does not exist" / "cannot be read"), so a bad asset fails the load by name.
    """
    if not path.is_file():
        raise AssetError(f"{source} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise AssetError(f"{source} cannot be read as a torch file of plain tensors and lists: {exc}") from exc


def check_state_dict(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], *, source: str
) -> None:
    """Raise AssetError naming the missing, unexpected and wrongly shaped keys of ``state``.

    Also refuses NaN/inf values: a file with them would load "fine" and produce silence or noise.
    ``source`` starts the message ("voice checkpoint /path/x.pth").
    """
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{key} {tuple(state[key].shape)} != {tuple(expected[key])}"
        for key in set(state) & set(expected)
        if tuple(state[key].shape) != tuple(expected[key])
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_listing(mismatched)}")
    if problems:
        raise AssetError(f"{source} does not match the model it describes; " + "; ".join(problems))
    not_finite = sorted(
        key for key, value in state.items() if value.is_floating_point() and not _all_finite(value)
    )
    if not_finite:
        raise AssetError(f"{source} has non-finite (NaN/inf) values in: {_listing(not_finite)}")
