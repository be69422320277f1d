"""Voice service: RVC inference, worker pool, Triton client, pipeline and HTTP gateway."""

from __future__ import annotations

import importlib.util
import sys


def _shadow_local_triton_folder() -> None:
    # The repo's `triton/` model-repository folder looks like a namespace package
    # when the repo root is on sys.path, and torch then mistakes it for OpenAI's
    # Triton (docs/triton_runtime.md). The real package has an origin; a bare folder has none.
    if "triton" in sys.modules:
        return
    spec = importlib.util.find_spec("triton")
    if spec is not None and spec.origin is None:
        sys.modules["triton"] = None  # type: ignore[assignment]  # None there makes `import triton` raise ImportError, as documented


_shadow_local_triton_folder()
