"""Errors raised by the Spark-TTS model code.

``sparktts`` is model code and must not depend on the service's ``rvc.errors`` tree, so it keeps
to two kinds of failure:

    ValueError
    ├── (plain)          bad input: an empty or non-finite waveform, out-of-range token ids
    └── CheckpointError  a checkpoint or config on disk does not fit the model it should build

The service maps ``CheckpointError`` to its ``AssetError`` and plain ``ValueError`` to
``InvalidInput`` at the one boundary where it calls into ``sparktts``.
"""

from __future__ import annotations

__all__ = ["CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint or model folder is unusable; the message names every offending key or file."""
