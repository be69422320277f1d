"""Spark-TTS model code: BiCodec, wav2vec2 features, prompts, the LLM and SparkTTS inference.

Model code only: no HTTP, Triton or process concerns live here.
"""

from __future__ import annotations

import importlib.util
import sys

# A bare `triton/` folder on sys.path (the repo root) would be taken for OpenAI's Triton by torch.
if "triton" not in sys.modules and (spec := importlib.util.find_spec("triton")) is not None and spec.origin is None:
    sys.modules["triton"] = None  # type: ignore[assignment]  # None there makes `import triton` raise ImportError, as documented
