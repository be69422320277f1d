"""The check every RVC model loader passes: a missing path and a file that is not the format are
``AssetError``s that say which, so that the gateway's 503 tells an operator what to replace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rvc.errors import AssetError


def assert_absent_and_garbage_files_are_asset_errors(load: Callable[[Path], object], folder: Path, suffix: str) -> None:
    """``load`` refuses ``folder/absent<suffix>`` ("does not exist") and a garbage ``folder/garbage<suffix>``
    ("cannot be read")."""
    with pytest.raises(AssetError, match="does not exist"):
        load(folder / f"absent{suffix}")
    garbage = folder / f"garbage{suffix}"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(AssetError, match="cannot be read"):
        load(garbage)
